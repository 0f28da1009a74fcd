/**
 * The trace store in Redis: lifecycle hashes under `<prefix>:trace:<id>` and the active set, every write one Lua
 * script (DESIGN.md's keyspace, shared with the Python `core.trace` module). On a Redis Cluster (a `RedisClient` in
 * cluster mode) the same split into `indexShards` shards by hash tag (`internal/layout.ts`). With
 * `@sg/trace/ExecutionStore/Redis` the one module of `@sg/trace` that needs `@sg/redis` (and ioredis): import it by
 * path, `@sg/trace/TraceStore/Redis`.
 */
import { RedisClient } from "@sg/redis"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { layoutFor } from "../internal/layout.js"
import { makeRedisBackend } from "../internal/redisBackend.js"
import { makeService } from "../internal/service.js"
import { config, layerMemoryConfig, type Options, resolve, type Service, TraceStore } from "../TraceStore.js"

/** A store over the `RedisClient` in context (keys under its prefix; sharded on a cluster). */
export const make = (options?: Partial<Options>): Effect.Effect<Service, never, RedisClient.RedisClient> =>
  Effect.map(RedisClient.RedisClient, (redis) => {
    const resolved = resolve(options)
    return makeService(makeRedisBackend(redis, layoutFor(redis, resolved.indexShards)), resolved)
  })
/** The Redis store with the given options (DESIGN.md's defaults for the rest). */
export const layer = (options?: Partial<Options>): Layer.Layer<TraceStore, never, RedisClient.RedisClient> =>
  Layer.effect(TraceStore, make(options))

/** The Redis store configured from the environment (see `TraceStore.config`). */
export const layerConfig: Layer.Layer<TraceStore, ConfigError.ConfigError, RedisClient.RedisClient> = Layer.effect(
  TraceStore,
  Effect.flatMap(config, make)
)

/**
 * The store `REDIS_URL` selects: Redis (over a `RedisClient` configured from the environment) when it is set and not
 * empty, else the memory store, with a warning that nothing is shared with other replicas.
 */
export const layerFromEnv: Layer.Layer<TraceStore, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("REDIS_URL")), (url) =>
    Option.isSome(url) && url.value !== ""
      ? Layer.provide(layerConfig, RedisClient.layerConfig)
      : Layer.effectDiscard(
        Effect.logWarning("REDIS_URL is not set: using the in-memory trace store; nothing is shared with other replicas")
      ).pipe(Layer.provideMerge(layerMemoryConfig)))
)
