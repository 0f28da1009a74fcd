/**
 * The two ways a Redis call fails: the server cannot be reached, or it answered with an error.
 */
import * as Schema from "effect/Schema"

/** Redis could not be reached in time: connection refused or lost, offline queue full, or a command timed out. */
export class RedisUnavailable extends Schema.TaggedError<RedisUnavailable>("@sg/redis/RedisUnavailable")(
  "RedisUnavailable",
  {
    command: Schema.String,
    message: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {}

/** Redis answered, but the command failed (a wrong type, a script error, a reply that did not decode). */
export class RedisCommandError extends Schema.TaggedError<RedisCommandError>("@sg/redis/RedisCommandError")(
  "RedisCommandError",
  {
    command: Schema.String,
    message: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {}

/** Any failure of a Redis call. */
export type RedisError = RedisUnavailable | RedisCommandError

/** True for errors of this module, whichever kind. */
export const isRedisError = (u: unknown): u is RedisError =>
  u instanceof RedisUnavailable || u instanceof RedisCommandError
