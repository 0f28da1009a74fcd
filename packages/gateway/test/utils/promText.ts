/**
 * A strict reader of the Prometheus text exposition format (0.0.4), to check what `/metrics` serves.
 */

/** One sample line. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** What a text exposition holds. */
export interface Exposition {
  readonly types: ReadonlyMap<string, string>
  readonly help: ReadonlyMap<string, string>
  readonly samples: ReadonlyArray<Sample>
}

const metricName = "[a-zA-Z_:][a-zA-Z0-9_:]*"
const labelName = "[a-zA-Z_][a-zA-Z0-9_]*"
const labelValue = "\"(?:[^\"\\\\\\n]|\\\\[\\\\n\"])*\""
const sampleLine = new RegExp(
  `^(${metricName})(?:\\{((?:${labelName}=${labelValue})(?:,${labelName}=${labelValue})*)?\\})? (\\S+)$`
)
const labelPair = new RegExp(`(${labelName})=(${labelValue})`, "g")
const typeLine = new RegExp(`^# TYPE (${metricName}) (counter|gauge|histogram|summary|untyped)$`)
const helpLine = new RegExp(`^# HELP (${metricName}) (.*)$`)

const parseValue = (text: string): number => {
  if (text === "+Inf") return Infinity
  if (text === "-Inf") return -Infinity
  if (text === "NaN") return NaN
  const value = Number(text)
  if (text.trim() === "" || Number.isNaN(value)) throw new Error(`not a sample value: ${text}`)
  return value
}

const unescape = (quoted: string): string =>
  quoted.slice(1, -1).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c))

/** Parses an exposition; throws on the first line that is not valid. */
export const parse = (text: string): Exposition => {
  if (text !== "" && !text.endsWith("\n")) throw new Error("an exposition ends with a newline")
  const types = new Map<string, string>()
  const help = new Map<string, string>()
  const samples: Array<Sample> = []
  for (const line of text.split("\n")) {
    if (line === "") continue
    if (line.startsWith("#")) {
      const type = typeLine.exec(line)
      const helpMatch = helpLine.exec(line)
      if (type !== null) {
        if (types.has(type[1]!)) throw new Error(`two TYPE lines for ${type[1]}`)
        types.set(type[1]!, type[2]!)
      } else if (helpMatch !== null) help.set(helpMatch[1]!, helpMatch[2]!)
      else if (line.startsWith("# TYPE") || line.startsWith("# HELP")) throw new Error(`bad comment line: ${line}`)
      continue
    }
    const match = sampleLine.exec(line)
    if (match === null) throw new Error(`bad sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? "").matchAll(labelPair)) labels[pair[1]!] = unescape(pair[2]!)
    samples.push({ name: match[1]!, labels, value: parseValue(match[3]!) })
  }
  return { types, help, samples }
}

/** The samples named `name` whose labels include `labels`. */
export const find = (
  exposition: Exposition,
  name: string,
  labels: Readonly<Record<string, string>> = {}
): ReadonlyArray<Sample> =>
  exposition.samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value)
  )
