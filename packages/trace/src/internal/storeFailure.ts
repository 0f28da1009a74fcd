/**
 * Redis' errors as the store's own: the Redis backends map every call through `fromRedis`, so no `RedisError`
 * reaches a caller of `@sg/trace`.
 */
import type { RedisClient, RedisScript } from "@sg/redis"
import type { RedisError } from "@sg/redis/RedisError"
import * as Effect from "effect/Effect"
import { TraceStoreCommandError, type TraceStoreFailure, TraceStoreUnavailable } from "../TraceStoreError.js"

/** The store failure a Redis error is, keeping it as the cause. */
export const fromRedisError = (error: RedisError): TraceStoreFailure =>
  error._tag === "RedisUnavailable"
    ? new TraceStoreUnavailable({ operation: error.command, message: error.message, cause: error })
    : new TraceStoreCommandError({ operation: error.command, message: error.message, cause: error })

/** A Redis call failing with the store's errors. */
export const fromRedis = <A, R>(self: Effect.Effect<A, RedisError, R>): Effect.Effect<A, TraceStoreFailure, R> =>
  Effect.mapError(self, fromRedisError)

/** The calls of a `RedisClient` the stores make, failing with the store's errors. */
export interface StoreRedis {
  readonly key: RedisClient.Service["key"]
  readonly use: <A>(command: string, f: (client: RedisClient.Connection) => Promise<A>) => Effect.Effect<A, TraceStoreFailure>
  readonly eval: <A, I>(
    script: RedisScript.RedisScript<A, I>,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string | number>
  ) => Effect.Effect<A, TraceStoreFailure>
  readonly ping: Effect.Effect<void, TraceStoreFailure>
}

/** `client` with its errors mapped by `fromRedisError`. */
export const storeRedis = (client: RedisClient.Service): StoreRedis => ({
  key: client.key,
  use: (command, f) => fromRedis(client.use(command, f)),
  eval: (script, keys, args) => fromRedis(client.eval(script, keys, args)),
  ping: fromRedis(client.ping)
})
