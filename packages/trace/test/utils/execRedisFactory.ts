/**
 * The execution store conformance suite's factory over the `RedisClient` in context (standalone or cluster): each
 * store under a key prefix of its own, in the client's keyspace.
 */
import { RedisClient } from "@sg/redis"
import { Duration, Effect, Layer } from "effect"
import { makeRedisExecutions } from "../../src/internal/executionsRedis.js"
import { layoutFor } from "../../src/internal/layout.js"
import { ExecStoreFactory } from "./execStoreConformance.js"

let prefixes = 0
/** The client under a prefix of its own, so each test starts from an empty keyspace. */
export const isolated = (redis: RedisClient.Service): RedisClient.Service => {
  const prefix = `${redis.prefix}:t${process.pid}x${++prefixes}`
  return { ...redis, prefix, key: (...parts) => [prefix, ...parts].join(":") }
}

/** Fresh Redis execution stores, each under a prefix of its own, with `putRaw` writing where the layout says. */
export const redisFactory: Layer.Layer<ExecStoreFactory, never, RedisClient.RedisClient> = Layer.effect(
  ExecStoreFactory,
  Effect.map(RedisClient.RedisClient, (shared) => ({
    fresh: (ttl: Duration.DurationInput, caps?: { readonly maxRuns: number; readonly maxBytes: number }) =>
      Effect.sync(() => {
        const redis = isolated(shared)
        const k = layoutFor(redis, 16)
        const ttlMs = Duration.toMillis(ttl)
        return {
          store: makeRedisExecutions(redis, { ttl, ...caps }, k),
          ttl: Duration.decode(ttl),
          passTime: (d: Duration.DurationInput) => Effect.sleep(d),
          putRaw: (id, raw, index) => {
            const shard = k.shardOf(id)
            return redis.multi("putRaw", (m) => {
              m.set(k.record(id), raw, "PX", ttlMs)
              m.zadd(k.index(shard), index.score, id).zadd(k.status(shard, index.status), index.score, id)
              for (const agent of index.agents) m.zadd(k.agent(shard, agent), index.score, id)
              return m
            }).pipe(Effect.orDie, Effect.asVoid)
          }
        }
      })
  }))
)
