/**
 * Execution records in Redis: the record as a hash at `<prefix>:exec:<id>` with its TTL, and the sorted-set indexes
 * by start time, status and agent (DESIGN.md's keyspace), every save one Lua script. On a Redis Cluster (a
 * `RedisClient` in cluster mode) the record and its index entries live in its trace's shard, `indexShards` of them
 * (`internal/layout.ts`), and a listing merges the shards. With `@sg/trace/TraceStore/Redis`
 * the one module of `@sg/trace` that needs `@sg/redis` (and ioredis): import it by path,
 * `@sg/trace/ExecutionStore/Redis`.
 */
import { RedisClient } from "@sg/redis"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { config, defaults, ExecutionStore, layerMemoryConfig, type Options, type Service } from "../ExecutionStore.js"
import { makeRedisExecutions } from "../internal/executionsRedis.js"
import { defaultShards, layoutFor, shardsConfig } from "../internal/layout.js"

/** The Redis store's options: the store's, and on a cluster how many shards its indexes take (16). */
export interface RedisOptions extends Options {
  /** `SG_INDEX_SHARDS`: on a Redis Cluster, the shards of the indexes (the trace store's must be the same). */
  readonly indexShards: number
}

/** A store over the `RedisClient` in context (keys under its prefix; sharded on a cluster). */
export const make = (options?: Partial<RedisOptions>): Effect.Effect<Service, never, RedisClient.RedisClient> =>
  Effect.map(RedisClient.RedisClient, (redis) =>
    makeRedisExecutions(
      redis,
      { ...defaults, ...options },
      layoutFor(redis, options?.indexShards ?? defaultShards)
    ))

/** The Redis store with the given options (DESIGN.md's defaults for the rest). */
export const layer = (options?: Partial<RedisOptions>): Layer.Layer<ExecutionStore, never, RedisClient.RedisClient> =>
  Layer.effect(ExecutionStore, make(options))

/** The Redis store configured from the environment (`SG_EXEC_TTL`, `SG_INDEX_SHARDS`). */
export const layerConfig: Layer.Layer<ExecutionStore, ConfigError.ConfigError, RedisClient.RedisClient> = Layer
  .effect(
    ExecutionStore,
    Effect.flatMap(
      Config.all({ options: config, indexShards: shardsConfig }),
      ({ indexShards, options }) => make({ ...options, indexShards })
    )
  )

/**
 * The store `REDIS_URL` selects: Redis (over a `RedisClient` configured from the environment, the same layer
 * `TraceStore/Redis.layerFromEnv` uses, so both share one connection when built together) when it is set and not
 * empty, else the memory store.
 */
export const layerFromEnv: Layer.Layer<ExecutionStore, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("REDIS_URL")), (url) =>
    Option.isSome(url) && url.value !== ""
      ? Layer.provide(layerConfig, RedisClient.layerConfig)
      : layerMemoryConfig)
)
