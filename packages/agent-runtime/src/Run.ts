/**
 * What a run is asked, what it answers, and why it fails: the request and result schemas `POST /v1/runs` speaks and
 * the errors a run fails with. A leaf module (it imports nothing else of the runtime but `Budget`), so the runtime,
 * its runner and `RunContext` can all depend on it; `AgentRuntime` re-exports every name.
 */
import type { CircuitOpenError } from "@sg/resilience"
import { ExecutionRecord, TraceId } from "@sg/trace"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Budget from "./Budget.js"

/** How much metadata a run request may carry: 32 keys of 1 to 64 characters; longer values are cut to 500. */
export const metadataLimits = { maxKeys: 32, maxKeyLength: 64, maxValueLength: 500 } as const

const shown = (key: string): string =>
  key.length > metadataLimits.maxKeyLength ? `${key.slice(0, metadataLimits.maxKeyLength)}…` : key

/** The first `max` characters, never half a surrogate pair. */
const cutValue = (value: string, max: number): string => {
  if (value.length <= max) return value
  const last = value.charCodeAt(max - 1)
  return value.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max)
}

/**
 * A run's metadata: a JSON object of string values, at most `metadataLimits.maxKeys` keys of 1 to
 * `maxKeyLength` characters (`__proto__` refused), each value cut to `maxValueLength` characters. A problem with one
 * key is reported at that key (`metadata.<key>`). Read from the raw object, so that no key is silently lost.
 */
export const RunMetadata = Schema.transformOrFail(
  Schema.Unknown,
  Schema.Record({ key: Schema.String, value: Schema.String }),
  {
    strict: true,
    decode: (input, _, ast) => {
      if (typeof input !== "object" || input === null || Array.isArray(input)) {
        return ParseResult.fail(new ParseResult.Type(ast, input, "must be an object of string values"))
      }
      const keys = Object.keys(input)
      if (keys.length > metadataLimits.maxKeys) {
        return ParseResult.fail(
          new ParseResult.Type(ast, input, `must have at most ${metadataLimits.maxKeys} keys, not ${keys.length}`)
        )
      }
      const out: Array<[string, string]> = []
      for (const key of keys) {
        const value: unknown = (input as Record<string, unknown>)[key]
        const problem = key.length === 0
          ? "a key must not be empty"
          : key.length > metadataLimits.maxKeyLength
          ? `a key must be at most ${metadataLimits.maxKeyLength} characters, not ${key.length}`
          : key === "__proto__"
          ? "\"__proto__\" is not allowed as a key"
          : typeof value !== "string"
          ? `must be a string, not ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}`
          : undefined
        if (problem !== undefined) {
          return ParseResult.fail(new ParseResult.Pointer(shown(key), input, new ParseResult.Type(ast, value, problem)))
        }
        out.push([key, cutValue(value as string, metadataLimits.maxValueLength)])
      }
      return ParseResult.succeed(Object.fromEntries(out))
    },
    encode: ParseResult.succeed
  }
).annotations({
  identifier: "RunMetadata",
  description: "string values; at most 32 keys of 1 to 64 characters; values cut to 500 characters"
})

/** A run request, as `POST /v1/runs` takes it. */
export const RunRequest = Schema.Struct({
  input: Schema.String.pipe(
    Schema.minLength(1, { message: () => "input must not be empty" }),
    Schema.maxLength(100_000, { message: () => "input must be at most 100000 characters" })
  ),
  agent: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_.-]{1,64}$/, {
    message: () => "agent must be 1 to 64 letters, digits, '_', '.' or '-'"
  }))),
  conversation_id: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128))),
  metadata: Schema.optional(RunMetadata)
})

/** A run request. */
export type RunRequest = typeof RunRequest.Type

/** How a run ended, as far as its caller sees it. */
export const RunStatus = ExecutionRecord.Status

/** A run's answer. */
export const RunResult = Schema.Struct({
  trace_id: TraceId.TraceId,
  run_id: Schema.String,
  status: RunStatus,
  output: Schema.String,
  steps: Schema.Int
})

/** A run's answer. */
export type RunResult = typeof RunResult.Type

/** One provider's part in a model call that every provider of the chain failed. */
export const UpstreamAttempt = Schema.Struct({
  provider: Schema.String,
  /** The HTTP status it answered, when it answered one. */
  status: Schema.optional(Schema.Int),
  message: Schema.String
})

/**
 * The model provider failed (or answered something unusable): the run could not go on. `message` names the
 * provider, the status it answered and its own message; after a fallback chain, `provider` lists the chain and
 * `attempts` says how each provider failed.
 */
export class UpstreamError extends Schema.TaggedError<UpstreamError>("@sg/agent-runtime/UpstreamError")(
  "UpstreamError",
  {
    provider: Schema.String,
    message: Schema.String,
    status: Schema.optional(Schema.Int),
    /** How long the provider asked callers to wait (`Retry-After`), in milliseconds. */
    retry_after_ms: Schema.optional(Schema.Number),
    attempts: Schema.optional(Schema.Array(UpstreamAttempt)),
    cause: Schema.optional(Schema.Defect)
  }
) {}

/** The run took longer than its overall timeout. */
export class RunTimeout extends Schema.TaggedError<RunTimeout>("@sg/agent-runtime/RunTimeout")(
  "RunTimeout",
  { timeout_ms: Schema.Number, message: Schema.String }
) {}

/** The request named an agent this runtime does not have. */
export class UnknownAgent extends Schema.TaggedError<UnknownAgent>("@sg/agent-runtime/UnknownAgent")(
  "UnknownAgent",
  { agent: Schema.String, known: Schema.Array(Schema.String), message: Schema.String }
) {}

/** Why a run failed. `CircuitOpenError` means every model provider's breaker is open. */
export type RunError = UpstreamError | RunTimeout | UnknownAgent | CircuitOpenError | Budget.BudgetExceeded

/** A message before the run's input, as a chat's history gives it. */
export interface HistoryMessage {
  readonly role: "system" | "user" | "assistant"
  readonly content: string
}
