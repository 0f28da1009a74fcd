/**
 * The two ways leader election fails: it was configured wrongly, or its lease store could not be asked.
 */
import * as Schema from "effect/Schema"

/** Lease options or a lease name that cannot work (e.g. a renew deadline not shorter than the lease TTL). */
export class InvalidLeaseConfig extends Schema.TaggedError<InvalidLeaseConfig>("@sg/leader/InvalidLeaseConfig")(
  "InvalidLeaseConfig",
  {
    message: Schema.String,
    problems: Schema.Array(Schema.String)
  }
) {}

/** The lease store could not be asked: unreachable, too slow, or an unexpected reply. */
export class LeaseStoreError extends Schema.TaggedError<LeaseStoreError>("@sg/leader/LeaseStoreError")(
  "LeaseStoreError",
  {
    message: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {}
