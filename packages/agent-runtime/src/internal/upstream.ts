/**
 * What went wrong with a model call, said the way an operator needs it: the HTTP status the provider answered, the
 * provider's own message (from its error body: OpenAI's and Anthropic's `{error: {message}}`, or a plain text), and
 * how long it asked callers to stay away (`retry-after-ms`, `retry-after` in seconds or as an HTTP date). Never a
 * schema dump: a response sg could not read is said in one line.
 */
import * as AiError from "@effect/ai/AiError"
import * as Duration from "effect/Duration"
import * as ParseResult from "effect/ParseResult"

/** A model call's failure, described. */
export interface Failure {
  /** The HTTP status the provider answered, when it answered one. */
  readonly status: number | undefined
  /** One line: `answered HTTP 429: Rate limit reached`, `could not be reached: ...`. */
  readonly message: string
  /** How long the provider asked to be left alone (a 429's or 503's `Retry-After`), at most `maxRetryAfter`. */
  readonly retryAfter: Duration.Duration | undefined
}

/** The longest `Retry-After` honoured: a provider asking for more is tried again after this long. */
export const maxRetryAfter: Duration.Duration = Duration.minutes(5)

const maxMessage = 300

/** `text` on one line, at most `max` characters. */
export const oneLine = (text: string, max = maxMessage): string => {
  const line = text.replace(/\s+/g, " ").trim()
  return line.length > max ? `${line.slice(0, max - 1)}…` : line
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

/** The message in an error body: `{error: {message}}`, `{error: "..."}`, `{message}`, `{detail}`, or the text. */
export const messageOfBody = (body: string | undefined): string | undefined => {
  if (body === undefined || body.trim() === "") return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return oneLine(body)
  }
  if (typeof parsed === "string") return oneLine(parsed)
  if (!isRecord(parsed)) return oneLine(body)
  const error = parsed["error"]
  if (typeof error === "string" && error !== "") return oneLine(error)
  if (isRecord(error) && typeof error["message"] === "string") return oneLine(error["message"])
  for (const key of ["message", "detail", "error_description"]) {
    const value = parsed[key]
    if (typeof value === "string" && value !== "") return oneLine(value)
  }
  return oneLine(body)
}

const headerOf = (headers: unknown, name: string): string | undefined => {
  if (!isRecord(headers)) return undefined
  const value = headers[name]
  return typeof value === "string" ? value : undefined
}

/** `retry-after-ms`, else `retry-after` (seconds, or an HTTP date read against `nowMillis`), capped. */
export const retryAfterOf = (headers: unknown, nowMillis: number): Duration.Duration | undefined => {
  const cap = Duration.toMillis(maxRetryAfter)
  const bounded = (millis: number) =>
    Number.isFinite(millis) && millis > 0 ? Duration.millis(Math.min(cap, Math.ceil(millis))) : undefined
  const ms = headerOf(headers, "retry-after-ms")
  if (ms !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return bounded(Number(ms))
  const value = headerOf(headers, "retry-after")
  if (value === undefined) return undefined
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return bounded(Number(value) * 1000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : bounded(date - nowMillis)
}

/** The deepest error message of a cause chain (`fetch failed` -> `connect ECONNREFUSED 127.0.0.1:1`). */
const rootMessage = (cause: unknown): string | undefined => {
  let message: string | undefined
  let current: unknown = cause
  for (let depth = 0; depth < 6 && current instanceof Error; depth++) {
    if (current.message !== "") message = current.message
    current = (current as { readonly cause?: unknown }).cause
  }
  return message
}

const detailOf = (error: { readonly description?: string | undefined; readonly cause?: unknown }): string => {
  const root = rootMessage(error.cause)
  if (error.description !== undefined && error.description !== "") {
    return oneLine(root === undefined ? error.description : `${error.description} (${root})`)
  }
  return root === undefined ? "no detail" : oneLine(root)
}

/** The first issue of a schema failure, as `path: message`, instead of the whole tree. */
const firstIssue = (error: AiError.MalformedOutput): string => {
  if (ParseResult.isParseError(error.cause)) {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(error.cause)[0]
    if (issue !== undefined) {
      const path = issue.path.map(String).join(".")
      return oneLine(path === "" ? issue.message : `at ${path}: ${issue.message}`, 200)
    }
  }
  return oneLine(error.description ?? "no detail", 200)
}

/** Describes a model call's failure (`nowMillis` reads an HTTP-date `Retry-After`). */
export const describe = (error: unknown, nowMillis: number): Failure => {
  if (error instanceof AiError.HttpResponseError) {
    const status = error.response.status
    const retryAfter = retryAfterOf(error.response.headers, nowMillis)
    if (error.reason === "StatusCode") {
      const said = messageOfBody(error.body)
      return { status, message: `answered HTTP ${status}${said === undefined ? "" : `: ${said}`}`, retryAfter }
    }
    if (error.reason === "EmptyBody") return { status, message: `answered HTTP ${status} with no body`, retryAfter }
    const detail = detailOf(error)
    return {
      status,
      message: `cut its response off (HTTP ${status})${detail === "no detail" ? "" : `: ${detail}`}`,
      retryAfter
    }
  }
  if (error instanceof AiError.HttpRequestError) {
    return { status: undefined, message: `could not be reached: ${detailOf(error)}`, retryAfter: undefined }
  }
  if (error instanceof AiError.MalformedOutput) {
    return {
      status: undefined,
      message: `answered something sg could not read: ${firstIssue(error)}`,
      retryAfter: undefined
    }
  }
  if (error instanceof AiError.MalformedInput) {
    const message = `could not be asked: ${oneLine(error.description ?? "")}`
    return { status: undefined, message, retryAfter: undefined }
  }
  if (isRecord(error) && typeof error["message"] === "string") {
    return { status: undefined, message: `failed: ${oneLine(error["message"])}`, retryAfter: undefined }
  }
  return { status: undefined, message: `failed: ${oneLine(String(error))}`, retryAfter: undefined }
}
