/**
 * The ways a `TraceStore` or `ExecutionStore` call fails: the store itself failing (`TraceStoreUnavailable`,
 * `TraceStoreCommandError`, whatever backs it), and the refusals a caller can act on.
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * The store could not be reached in time: connection refused or lost, a command queue full, or a call timed out.
 * `operation` names the call; `cause` is the backend's own error.
 */
export class TraceStoreUnavailable extends Schema.TaggedError<TraceStoreUnavailable>("@sg/trace/TraceStoreUnavailable")(
  "TraceStoreUnavailable",
  {
    operation: Schema.String,
    message: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {}

/**
 * The store answered, but the call failed: a key of the wrong type, a script error, a reply that did not decode.
 * `operation` names the call; `cause` is the backend's own error.
 */
export class TraceStoreCommandError
  extends Schema.TaggedError<TraceStoreCommandError>("@sg/trace/TraceStoreCommandError")("TraceStoreCommandError", {
    operation: Schema.String,
    message: Schema.String,
    cause: Schema.optional(Schema.Defect)
  })
{}

/** The store itself failed, either way: what a breaker around the store counts (refusals are the store working). */
export type TraceStoreFailure = TraceStoreUnavailable | TraceStoreCommandError

/** True for a `TraceStoreFailure`, by its tag (so also for one decoded from JSON). */
export const isTraceStoreFailure = (u: unknown): u is TraceStoreFailure =>
  Predicate.isTagged(u, "TraceStoreUnavailable") || Predicate.isTagged(u, "TraceStoreCommandError")

/** The trace's hash does not exist: never created, or expired (its failsafe or terminal TTL ran out). */
export class TraceNotFound extends Schema.TaggedError<TraceNotFound>("@sg/trace/TraceNotFound")("TraceNotFound", {
  trace_id: Schema.String,
  message: Schema.String
}) {}

/** The trace is already `COMPLETED` or `ERRORED`: nothing moves a trace out of a terminal state. */
export class TraceAlreadyTerminal extends Schema.TaggedError<TraceAlreadyTerminal>("@sg/trace/TraceAlreadyTerminal")(
  "TraceAlreadyTerminal",
  {
    trace_id: Schema.String,
    state: Schema.String,
    message: Schema.String
  }
) {}

/** A state, a metadata field or an option given to the store is not acceptable; `field` names it. */
export class InvalidTraceInput extends Schema.TaggedError<InvalidTraceInput>("@sg/trace/InvalidTraceInput")(
  "InvalidTraceInput",
  {
    field: Schema.String,
    message: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {}

/** A stored trace hash cannot be read as a record (no state, or a timestamp in no known form); `field` names it. */
export class InvalidTraceRecord extends Schema.TaggedError<InvalidTraceRecord>("@sg/trace/InvalidTraceRecord")(
  "InvalidTraceRecord",
  {
    trace_id: Schema.String,
    field: Schema.String,
    message: Schema.String
  }
) {}

/** A fenced sweep found its lease held by someone else or at a newer epoch, and wrote nothing more. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>("@sg/trace/LeaseLost")("LeaseLost", {
  lease: Schema.String,
  epoch: Schema.Number,
  message: Schema.String
}) {}

/**
 * A write of a request that belongs to an earlier opening of the trace: the trace went terminal and a newer request
 * reopened it, so a slow or paused worker's late write is refused rather than rewriting the new opening.
 */
export class StaleTraceWrite extends Schema.TaggedError<StaleTraceWrite>("@sg/trace/StaleTraceWrite")(
  "StaleTraceWrite",
  {
    trace_id: Schema.String,
    /** The opening the write belonged to. */
    opening: Schema.Number,
    /** The trace's current opening. */
    current: Schema.String,
    message: Schema.String
  }
) {}
