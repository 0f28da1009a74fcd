/**
 * Turning span payloads into the short, redacted texts a record stores.
 */
import * as Cause from "effect/Cause"
import type { Redactor } from "../Redaction.js"

/** The marker appended to a cut text. */
export const cutMarker = (cut: number): string => `…[${cut} more chars cut]`

/** The first `limit` characters of `text` (never half a surrogate pair) and a marker saying how many were cut. */
export const cut = (text: string, limit: number, alreadyCut = 0): string => {
  if (text.length <= limit && alreadyCut === 0) return text
  let end = Math.min(limit, text.length)
  const last = text.charCodeAt(end - 1)
  if (end > 0 && last >= 0xd800 && last <= 0xdbff) end--
  return text.slice(0, end) + cutMarker(text.length - end + alreadyCut)
}

/** A value as text: strings as they are, anything else as JSON (cycles, bigints and functions handled). */
export const stringify = (value: unknown): string => {
  if (typeof value === "string") return value
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value)
  if (value === undefined) return "undefined"
  const seen = new WeakSet<object>()
  try {
    const json = JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === "bigint") return v.toString()
      if (typeof v === "function" || typeof v === "symbol") return undefined
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[Circular]"
        seen.add(v)
      }
      return v
    })
    return json ?? String(value)
  } catch {
    return String(value)
  }
}

/**
 * `value` as text, redacted, then cut to `limit` characters. Only a window a little longer than `limit` is redacted,
 * so a megabyte of output costs little; the window grows until redaction leaves enough text to fill `limit`.
 */
export const clip = (value: unknown, limit: number, redact: Redactor): string => {
  const text = stringify(value)
  let window = Math.min(text.length, limit * 2 + 256)
  for (;;) {
    const redacted = redact(window === text.length ? text : text.slice(0, window))
    const rest = text.length - window
    if (redacted.length > limit || rest === 0) return cut(redacted, limit, rest)
    window = Math.min(text.length, window * 2)
  }
}

const tagOf = (error: object): string | undefined => {
  const tag = (error as { readonly _tag?: unknown })._tag
  if (typeof tag === "string") return tag
  const name = (error as { readonly name?: unknown }).name
  return typeof name === "string" ? name : undefined
}

/** An error as `<type>: <message>`. */
export const describeError = (error: unknown): string => {
  if (typeof error === "string") return error
  if (typeof error === "object" && error !== null) {
    const tag = tagOf(error)
    const message = (error as { readonly message?: unknown }).message
    if (typeof message === "string" && message !== "") return tag === undefined ? message : `${tag}: ${message}`
    if (tag !== undefined) return `${tag}: ${stringify(error)}`
  }
  return stringify(error)
}

/** Whether a failure is a timeout: Effect's `TimeoutException`, or an error whose `_tag` says timeout. */
export const isTimeout = (error: unknown): boolean => {
  if (Cause.isTimeoutException(error)) return true
  if (typeof error !== "object" || error === null) return false
  const tag = (error as { readonly _tag?: unknown })._tag
  return typeof tag === "string" && /timeout|timedout/i.test(tag)
}

/** The breaker named by a `CircuitOpenError` (from `@sg/resilience`: `_tag` and `name`, or `circuit`/`breaker`). */
export const circuitOf = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const fields = error as {
    readonly _tag?: unknown
    readonly name?: unknown
    readonly circuit?: unknown
    readonly breaker?: unknown
  }
  if (fields._tag !== "CircuitOpenError") return undefined
  for (const candidate of [fields.circuit, fields.breaker, fields.name]) {
    if (typeof candidate === "string" && candidate !== "" && candidate !== "CircuitOpenError") return candidate
  }
  return undefined
}
