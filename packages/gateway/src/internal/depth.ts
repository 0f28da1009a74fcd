/**
 * Finds JSON text that nests deeper than a limit, before it is parsed: deep nesting costs the parser and every later
 * recursive step (schema decoding, formatting an error about the value) stack, and past a few thousand levels one of
 * them overflows. Hand-written: a linear scan over the text, aware of strings, that keeps the path it is at.
 */

/** The object keys (and array indexes) down to the container that went past the limit. */
export type Path = ReadonlyArray<string | number>

interface Frame {
  readonly object: boolean
  /** The last key read in this object (`[start, end]` of its quoted text), or the index in this array. */
  keyStart: number
  keyEnd: number
  index: number
}

const keyOf = (text: string, frame: Frame): string | number => {
  if (!frame.object) return frame.index
  if (frame.keyStart < 0) return ""
  const quoted = text.slice(frame.keyStart, frame.keyEnd + 1)
  try {
    const key: unknown = JSON.parse(quoted)
    return typeof key === "string" ? key : quoted
  } catch {
    return quoted.slice(1, -1)
  }
}

/**
 * The path to the first container nested more than `limit` levels deep (the outermost value is level 1), or
 * `undefined` when the text stays within it. Text that is not JSON is scanned as far as it looks like JSON: the
 * parser refuses it afterwards.
 */
export const tooDeep = (text: string, limit: number): Path | undefined => {
  const stack: Array<Frame> = []
  let lastStart = -1
  let lastEnd = -1
  const length = text.length
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // A string: its closing quote is the next one not escaped (preceded by an even run of backslashes).
      let j = text.indexOf("\"", i + 1)
      while (j !== -1) {
        let backslashes = 0
        while (text.charCodeAt(j - 1 - backslashes) === 0x5c) backslashes++
        if (backslashes % 2 === 0) break
        j = text.indexOf("\"", j + 1)
      }
      if (j === -1) j = length
      lastStart = i
      lastEnd = j
      i = j
    } else if (c === 0x7b || c === 0x5b) {
      if (stack.length >= limit) return stack.map((frame) => keyOf(text, frame))
      stack.push({ object: c === 0x7b, keyStart: -1, keyEnd: -1, index: 0 })
    } else if (c === 0x7d || c === 0x5d) {
      stack.pop()
    } else if (c === 0x3a) {
      const top = stack[stack.length - 1]
      if (top !== undefined && top.object) {
        top.keyStart = lastStart
        top.keyEnd = lastEnd
      }
    } else if (c === 0x2c) {
      const top = stack[stack.length - 1]
      if (top !== undefined && !top.object) top.index++
    }
  }
  return undefined
}
