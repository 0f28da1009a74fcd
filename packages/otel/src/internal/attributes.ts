/**
 * Attribute values as OTLP carries them: the small readers the mapping uses, and the attribute list of one span
 * (first value wins, a cap, texts redacted and cut).
 */
import type { AnyValue, KeyValue } from "@effect/opentelemetry/OtlpResource"
import type { EndedSpan } from "@sg/trace/TraceExporter"

/** A non-empty string (or a number as one). */
export const str = (value: unknown): string | undefined =>
  typeof value === "string" && value !== "" ? value : typeof value === "number" ? String(value) : undefined

/** A non-negative whole count, from a number or a numeric string. */
export const count = (value: unknown): number | undefined => {
  const n = typeof value === "number" ? value : typeof value === "string" ? Number(value) : NaN
  return Number.isFinite(n) && n >= 0 ? Math.round(n) : undefined
}

/** The first set value of any of `names` over `spans`, in order. */
export const first = (spans: ReadonlyArray<EndedSpan>, ...names: ReadonlyArray<string>): unknown => {
  for (const span of spans) {
    for (const name of names) {
      const value = span.attributes.get(name)
      if (value !== undefined && value !== null && value !== "") return value
    }
  }
  return undefined
}

/** A string, number or boolean. */
export const isPrimitive = (value: unknown): boolean =>
  typeof value === "string" || typeof value === "number" || typeof value === "boolean"

/** Attributes whose values sg itself sets (names, ids, enums): cut, but not run through redaction. */
export const plainAttributes: ReadonlySet<string> = new Set([
  "gen_ai.operation.name",
  "gen_ai.provider.name",
  "gen_ai.agent.name",
  "gen_ai.agent.id",
  "gen_ai.conversation.id",
  "gen_ai.request.model",
  "gen_ai.response.model",
  "gen_ai.response.id",
  "gen_ai.response.finish_reasons",
  "gen_ai.tool.name",
  "gen_ai.tool.call.id",
  "gen_ai.tool.type",
  "error.type",
  "http.request.method",
  "http.route",
  "sg.parent_run_id",
  "sg.breaker.name",
  "sg.breaker.state",
  "sg.sampling.reason",
  "sg.trace.status"
])

/** The attributes of one span: the first value set for a key wins; past `max`, counted as dropped. */
export class AttributeList {
  readonly list: Array<KeyValue> = []
  dropped = 0
  constructor(
    readonly max: number,
    readonly text: (value: unknown) => string,
    readonly plain: (value: string) => string
  ) {}

  /** Whether `key` is set (a span has a few dozen attributes at most: a scan beats a set). */
  has(key: string): boolean {
    for (const kv of this.list) if (kv.key === key) return true
    return false
  }

  set(key: string, value: unknown): void {
    if (value === undefined || value === null || this.has(key)) return
    this.put(key, this.convert(value, plainAttributes.has(key) ? this.plain : this.text))
  }

  /** A text that is already cut where it should be (a JSON document of cut texts): kept whole. */
  setJson(key: string, json: string | undefined): void {
    if (json === undefined || this.has(key)) return
    this.put(key, { stringValue: json })
  }

  private put(key: string, value: AnyValue | undefined): void {
    if (value === undefined) return
    if (this.list.length >= this.max) this.dropped++
    else this.list.push({ key, value })
  }

  /** Safe integers as `intValue`, other numbers as `doubleValue`, arrays of primitives as arrays, the rest as text. */
  convert(value: unknown, text: (value: string) => string): AnyValue | undefined {
    switch (typeof value) {
      case "string":
        return { stringValue: text(value) }
      case "boolean":
        return { boolValue: value }
      case "number":
        return Number.isSafeInteger(value)
          ? { intValue: value }
          : Number.isFinite(value)
          ? { doubleValue: value }
          : { stringValue: String(value) }
      case "bigint":
        return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
          ? { intValue: Number(value) }
          : { stringValue: value.toString() }
      case "object":
        if (Array.isArray(value) && value.every(isPrimitive)) {
          const values: Array<AnyValue> = []
          for (const item of value.slice(0, 64)) values.push(this.convert(item, text)!)
          return { arrayValue: { values } }
        }
        return { stringValue: this.text(value) }
      default:
        return undefined
    }
  }
}
