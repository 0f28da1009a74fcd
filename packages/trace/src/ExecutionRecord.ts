/**
 * An execution record: what one trace's spans reduce to. Every agent run of the request (root and sub-agents, each
 * its own run), with its model calls and tool calls, their timing, status, errors and tokens. Stored as JSON at
 * `sg:exec:<id>`; the schema decodes it back, so a value that is not a record is a typed error, never a crash.
 */
import * as DateTime from "effect/DateTime"
import * as Schema from "effect/Schema"
import { TraceId } from "./TraceId.js"

/** How a call, a run or a whole trace ended. A timeout is an error whose type is timeout, never an interruption. */
export const Status = Schema.Literal("success", "error", "timeout")

/** How a call, a run or a whole trace ended. */
export type Status = typeof Status.Type

/** An instant as ISO-8601 in UTC (`2025-11-23T03:53:20.123Z`). */
export const Timestamp = Schema.String.pipe(
  Schema.filter((s) => DateTime.make(s)._tag === "Some" || "an ISO-8601 timestamp"),
  Schema.annotations({ identifier: "Timestamp" })
)

/**
 * A tenant's name: what an API key's runs are filed under (`default` for a bare key). 1 to 64 characters, letters,
 * digits, `.`, `_` and `-`, starting with a letter or digit.
 */
export const Tenant = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
    message: () => "a tenant is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
  }),
  Schema.annotations({ identifier: "Tenant" })
)

/** Milliseconds, possibly fractional, never negative. */
const Millis = Schema.NonNegative

/** Token counts of a model call, or totals of a run. */
export const Tokens = Schema.Struct({
  input: Schema.NonNegativeInt,
  output: Schema.NonNegativeInt
})

/** Token counts. */
export type Tokens = typeof Tokens.Type

/** What every call carries. */
const callFields = {
  /** The tool call id the model gave, or else the span id: unique within the trace. */
  call_id: Schema.String,
  started_at: Timestamp,
  duration_ms: Millis,
  status: Status,
  /** The call's input as text, redacted and cut to `SG_TRUNCATE` characters; null when not known. */
  input: Schema.NullOr(Schema.String),
  /** The call's output as text, redacted and cut; null when not known or when the call failed. */
  output: Schema.NullOr(Schema.String),
  /** The error's type and message, redacted and cut. */
  error: Schema.optional(Schema.String),
  /** The circuit breaker that rejected the call (it never reached the service). */
  circuit: Schema.optional(Schema.String),
  /** Present when the call was interrupted (status `error`, error `interrupted`), e.g. it lost a race. */
  interrupted: Schema.optional(Schema.Literal(true))
}

/** One tool call. */
export const ToolCall = Schema.Struct({
  ...callFields,
  tool: Schema.String
}).annotations({ identifier: "ToolCall" })

/** One tool call. */
export type ToolCall = typeof ToolCall.Type

/** One model call (a step of its run). */
export const InferenceCall = Schema.Struct({
  ...callFields,
  /** The model asked for (`gen_ai.request.model`), else the one that answered. */
  model: Schema.NullOr(Schema.String),
  /** The provider asked (`gen_ai.provider.name`), when known. */
  provider: Schema.optional(Schema.String),
  /** Which try of its model call this was (1 for the first provider of a fallback chain), when known. */
  attempt: Schema.optional(Schema.Int.pipe(Schema.positive())),
  tokens: Tokens
}).annotations({ identifier: "InferenceCall" })

/** One model call. */
export type InferenceCall = typeof InferenceCall.Type

/** A sub-agent's result delivered to its parent run, recorded on the parent when the child run ended. */
export const ChildResult = Schema.Struct({
  type: Schema.Literal("child_result"),
  at: Timestamp,
  child_run_id: Schema.String,
  agent_id: Schema.String,
  status: Status,
  output: Schema.NullOr(Schema.String),
  error: Schema.optional(Schema.String)
}).annotations({ identifier: "ChildResult" })

/** A sub-agent's result delivered to its parent. */
export type ChildResult = typeof ChildResult.Type

/** One run of one agent: the root agent or a sub-agent, each run its own, even among concurrent siblings. */
export const Run = Schema.Struct({
  /** A UUIDv7 minted when the run started; the trace id for calls made outside any agent run. */
  run_id: Schema.String,
  parent_run_id: Schema.optional(Schema.String),
  /** The agent's name; `unattributed` for calls made outside any agent run. */
  agent_id: Schema.String,
  conversation_id: Schema.optional(Schema.String),
  status: Status,
  error: Schema.optional(Schema.String),
  interrupted: Schema.optional(Schema.Literal(true)),
  started_at: Timestamp,
  duration_ms: Millis,
  /**
   * Model calls made by this run (its own, not its sub-agents'), counted before any were dropped; the later tries of
   * a fallback chain belong to the step of their first.
   */
  steps: Schema.NonNegativeInt,
  /** Tokens of this run's own model calls, counted before any were dropped. */
  tokens: Tokens,
  tool_calls: Schema.Array(ToolCall),
  inference_calls: Schema.Array(InferenceCall),
  events: Schema.Array(ChildResult),
  /** Calls left out of this run to respect the cap (the first and the last ones are kept). */
  dropped_calls: Schema.optional(Schema.NonNegativeInt)
}).annotations({ identifier: "Run" })

/** One run of one agent. */
export type Run = typeof Run.Type

/** What a record left out to stay within its caps. */
export const Dropped = Schema.Struct({
  /** Calls left out across all runs (each run says how many of its own). */
  calls: Schema.NonNegativeInt,
  /** Whole runs left out to keep the record under its size cap (their results stay on their parents). */
  runs: Schema.NonNegativeInt,
  /** Child results left out of their parent runs, as a last resort to fit the size cap. */
  events: Schema.NonNegativeInt,
  /** Spans never buffered because the trace had too many. */
  spans: Schema.NonNegativeInt,
  /** Whether call inputs and outputs were removed to keep the record under its size cap. */
  payloads: Schema.Boolean
}).annotations({ identifier: "Dropped" })

/** What a record left out. */
export type Dropped = typeof Dropped.Type

/** What a record and its summary both say of the trace. */
const headerFields = {
  trace_id: TraceId,
  /** The tenant of the API key the trace's first saved request came with; absent when access was open. */
  tenant: Schema.optional(Tenant),
  conversation_id: Schema.optional(Schema.String),
  status: Status,
  started_at: Timestamp,
  ended_at: Timestamp,
  duration_ms: Millis,
  error: Schema.optional(Schema.String)
}

/** The execution record of one trace. */
export const ExecutionRecord = Schema.Struct({
  ...headerFields,
  runs: Schema.Array(Run),
  /** Present only when something was left out. */
  dropped: Schema.optional(Dropped)
}).annotations({ identifier: "ExecutionRecord" })

/** The execution record of one trace. */
export type ExecutionRecord = typeof ExecutionRecord.Type

/** The record as stored: a JSON string. */
export const ExecutionRecordJson = Schema.parseJson(ExecutionRecord)

/** What a listing shows of a record. */
export const ExecutionSummary = Schema.Struct({
  ...headerFields,
  /** The agents that ran, each once, in order of their first run. */
  agents: Schema.Array(Schema.String),
  runs: Schema.NonNegativeInt,
  tool_calls: Schema.NonNegativeInt,
  inference_calls: Schema.NonNegativeInt,
  tokens: Tokens
}).annotations({ identifier: "ExecutionSummary" })

/** What a listing shows of a record. */
export type ExecutionSummary = typeof ExecutionSummary.Type

/** The agents of a record's runs, each once (calls outside any run are not an agent). */
export const agentsOf = (record: ExecutionRecord): Array<string> => {
  const agents: Array<string> = []
  for (const run of record.runs) {
    if (run.agent_id !== UNATTRIBUTED && !agents.includes(run.agent_id)) agents.push(run.agent_id)
  }
  return agents
}

/** The agent id of the run that holds calls made outside any agent run. */
export const UNATTRIBUTED = "unattributed"

/** The start of a record in Unix milliseconds: the score of its index entries. */
export const startMillis = (record: ExecutionRecord): number => DateTime.unsafeMake(record.started_at).epochMillis

/** A record's summary for listings. */
export const summarize = (record: ExecutionRecord): ExecutionSummary => {
  let toolCalls = 0
  let inferenceCalls = 0
  let input = 0
  let output = 0
  for (const run of record.runs) {
    toolCalls += run.tool_calls.length
    inferenceCalls += run.steps
    input += run.tokens.input
    output += run.tokens.output
  }
  return {
    trace_id: record.trace_id,
    ...(record.tenant !== undefined ? { tenant: record.tenant } : {}),
    ...(record.conversation_id !== undefined ? { conversation_id: record.conversation_id } : {}),
    status: record.status,
    started_at: record.started_at,
    ended_at: record.ended_at,
    duration_ms: record.duration_ms,
    ...(record.error !== undefined ? { error: record.error } : {}),
    agents: agentsOf(record),
    runs: record.runs.length,
    tool_calls: toolCalls,
    inference_calls: inferenceCalls,
    tokens: { input, output }
  }
}
