/**
 * The ways an `ExecutionStore` call is refused (the store itself failing is `TraceStoreUnavailable` /
 * `TraceStoreCommandError`), in a module of their own so the stores' internals import them without a cycle.
 */
import * as Schema from "effect/Schema"

/** A stored value is not an execution record (or a record to save is not valid). */
export class ExecutionRecordCorrupt
  extends Schema.TaggedError<ExecutionRecordCorrupt>("@sg/trace/ExecutionRecordCorrupt")("ExecutionRecordCorrupt", {
    trace_id: Schema.String,
    message: Schema.String,
    cause: Schema.optional(Schema.Defect)
  })
{}

/** A listing's options are not acceptable; `field` names the one (`limit`, `status`, `agent`, `tenant` or `cursor`). */
export class InvalidExecutionQuery extends Schema.TaggedError<InvalidExecutionQuery>("@sg/trace/InvalidExecutionQuery")(
  "InvalidExecutionQuery",
  {
    field: Schema.String,
    message: Schema.String
  }
) {}
