/**
 * The trace store in Redis: lifecycle hashes under `<prefix>:trace:<id>`, the active set, execution records and
 * their indexes, every write one Lua script (DESIGN.md's keyspace, shared with the Python `core.trace` module). The
 * one module of `@sg/trace` that needs `@sg/redis` (and ioredis): import it by path, `@sg/trace/TraceStore/Redis`.
 */
import { RedisClient } from "@sg/redis"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { makeRedisExecutions } from "../internal/executionsRedis.js"
import { makeRedisBackend } from "../internal/redisBackend.js"
import { makeService } from "../internal/service.js"
import { config, type Options, resolve, type Service, TraceStore } from "../TraceStore.js"

/** A store over the `RedisClient` in context (keys under its prefix). */
export const make = (options?: Partial<Options>): Effect.Effect<Service, never, RedisClient.RedisClient> =>
  Effect.map(RedisClient.RedisClient, (redis) => {
    const resolved = resolve(options)
    return makeService(makeRedisBackend(redis), resolved, makeRedisExecutions(redis, { ttl: resolved.execTtl }))
  })

/** The Redis store with the given options (DESIGN.md's defaults for the rest). */
export const layer = (options?: Partial<Options>): Layer.Layer<TraceStore, never, RedisClient.RedisClient> =>
  Layer.effect(TraceStore, make(options))

/** The Redis store configured from the environment (see `TraceStore.config`). */
export const layerConfig: Layer.Layer<TraceStore, ConfigError.ConfigError, RedisClient.RedisClient> = Layer.effect(
  TraceStore,
  Effect.flatMap(config, make)
)

/** The Redis store configured from the environment, over a `RedisClient` configured from it too (`REDIS_URL`). */
export const layerFromEnv: Layer.Layer<TraceStore, ConfigError.ConfigError> = Layer.provide(
  layerConfig,
  RedisClient.layerConfig
)
