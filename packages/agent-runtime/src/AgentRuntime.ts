/**
 * The agent runtime's contract: what a run is asked, what it answers, and why it fails. The gateway serves
 * `POST /v1/runs` through this service; `AgentRuntime.layer…` constructors build it over @effect/ai.
 */
import type { CircuitOpenError } from "@sg/resilience"
import { TraceId } from "@sg/trace"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

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
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})

/** A run request. */
export type RunRequest = typeof RunRequest.Type

/** How a run ended, as far as its caller sees it. */
export const RunStatus = Schema.Literal("success", "error", "timeout")

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

/** The model provider failed (or answered something unusable): the run could not go on. */
export class UpstreamError extends Schema.TaggedError<UpstreamError>("@sg/agent-runtime/UpstreamError")(
  "UpstreamError",
  { provider: Schema.String, message: Schema.String, cause: Schema.optional(Schema.Defect) }
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

/** Why a run failed. `CircuitOpenError` means the model provider's breaker is open. */
export type RunError = UpstreamError | RunTimeout | UnknownAgent | CircuitOpenError

/** Runs agents. */
export interface Service {
  /** Runs one agent (the default one when `agent` is absent) on `input`, under the current trace. */
  readonly run: (request: RunRequest) => Effect.Effect<RunResult, RunError>
  /** The agents this runtime knows. */
  readonly agents: ReadonlyArray<string>
}

/** The agent runtime. */
export class AgentRuntime extends Context.Tag("@sg/agent-runtime/AgentRuntime")<AgentRuntime, Service>() {}
