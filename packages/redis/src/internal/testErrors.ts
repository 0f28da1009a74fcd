import * as Schema from "effect/Schema"

/** No `redis-server` binary on PATH and no `REDIS_URL`. */
export class RedisServerNotFound extends Schema.TaggedError<RedisServerNotFound>("@sg/redis/RedisServerNotFound")(
  "RedisServerNotFound",
  { message: Schema.String }
) {}

/** `redis-server` would not start. */
export class RedisServerFailed extends Schema.TaggedError<RedisServerFailed>("@sg/redis/RedisServerFailed")(
  "RedisServerFailed",
  { message: Schema.String }
) {}

/** The one line a test run prints when it has no Redis to use. */
export const notFoundMessage =
  "redis-server was not found on PATH: install it (sudo apt-get install -y redis-server) or set REDIS_URL to a Redis 7 the tests may use"

