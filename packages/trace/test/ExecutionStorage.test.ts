import { describe, expect, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { ExecutionStore } from "@sg/trace"
import { Clock, ConfigProvider, Duration, Effect, Exit, Layer, Option, TestClock } from "effect"
import { makeMemoryExecutions } from "../src/internal/executionsMemory.js"
import { makeRedisExecutions } from "../src/internal/executionsRedis.js"
import { isolated, redisFactory } from "./utils/execRedisFactory.js"
import { ExecStoreFactory, executionStoreConformance, freshId, recordAt } from "./utils/execStoreConformance.js"

const memoryFactory = Layer.succeed(ExecStoreFactory, {
  fresh: (ttl, caps) =>
    Effect.sync(() => {
      const store = makeMemoryExecutions({ ttl, ...caps })
      return { store, ttl: Duration.decode(ttl), putRaw: store.putRaw, passTime: (d) => TestClock.adjust(d) }
    })
})

const redisStores = redisFactory.pipe(Layer.provideMerge(RedisTestServer.layerWithClient))

describe("ExecutionStore", () => {
  layer(memoryFactory)("memory, under TestClock", (it) => executionStoreConformance(it))

  layer(redisStores, { excludeTestServices: true })("Redis, against a real redis-server", (it) => {
    executionStoreConformance(it)

    it.effect("keeps DESIGN's layout: a hash at sg:exec:<id> (a field a run) with the TTL, indexes by start ms", () =>
      Effect.gen(function*() {
        const redis = isolated(yield* RedisClient.RedisClient)
        const store = makeRedisExecutions(redis, ExecutionStore.defaults)
        const now = yield* Clock.currentTimeMillis
        const record = recordAt(freshId(), now, { status: "timeout", agents: ["planner", "worker"] })
        yield* store.save(record)
        const c = redis.client
        const id = record.trace_id
        const hash = yield* Effect.promise(() => c.hgetall(`${redis.prefix}:exec:${id}`))
        expect(hash).toMatchObject({ v: "2", status: "timeout", started_at: record.started_at, runs: "2" })
        const runFields = Object.keys(hash).filter((field) => field.startsWith("run:")).sort()
        expect(runFields).toEqual([`run:${id}-0|planner|`, `run:${id}-1|worker|`])
        expect(JSON.parse(hash[runFields[0]!]!.slice(2))).toEqual(record.runs[0])
        expect(yield* store.get(id)).toEqual(Option.some(record))
        const pttl = yield* Effect.promise(() => c.pttl(`${redis.prefix}:exec:${id}`))
        expect(pttl).toBeGreaterThan(Duration.toMillis(Duration.days(7)) - 60_000)
        expect(pttl).toBeLessThanOrEqual(Duration.toMillis(Duration.days(7)))
        const indexes = [
          "exec:index",
          "exec:index:status:timeout",
          "exec:index:agent:planner",
          "exec:index:agent:worker"
        ]
        for (const index of indexes) {
          expect(yield* Effect.promise(() => c.zscore(`${redis.prefix}:${index}`, id))).toBe(String(now))
        }
        expect(yield* Effect.promise(() => c.zscore(`${redis.prefix}:exec:index:status:success`, id))).toBeNull()
      }))

    it.effect("a write trims every index it touches of entries past retention", () =>
      Effect.gen(function*() {
        const redis = isolated(yield* RedisClient.RedisClient)
        const store = makeRedisExecutions(redis, { ttl: "1 hour" })
        const now = yield* Clock.currentTimeMillis
        const old = recordAt(freshId(), now - Duration.toMillis(Duration.hours(2)), { agents: ["worker"] })
        const c = redis.client
        // As a replica with a slower clock, or one that wrote it two hours ago, would have left it.
        yield* Effect.promise(() =>
          c.multi()
            .zadd(`${redis.prefix}:exec:index`, Date.parse(old.started_at), old.trace_id)
            .zadd(`${redis.prefix}:exec:index:status:success`, Date.parse(old.started_at), old.trace_id)
            .zadd(`${redis.prefix}:exec:index:agent:worker`, Date.parse(old.started_at), old.trace_id)
            .exec()
        )
        yield* store.save(recordAt(freshId(), now, { agents: ["worker"] }))
        for (const index of ["exec:index", "exec:index:status:success", "exec:index:agent:worker"]) {
          expect(yield* Effect.promise(() => c.zcard(`${redis.prefix}:${index}`))).toBe(1)
        }
      }))

    it.effect("listing skips index entries whose record has expired", () =>
      Effect.gen(function*() {
        const redis = isolated(yield* RedisClient.RedisClient)
        const store = makeRedisExecutions(redis, { ttl: "1 hour" })
        const now = yield* Clock.currentTimeMillis
        const gone = recordAt(freshId(), now - 1000)
        const kept = recordAt(freshId(), now)
        yield* store.save(gone)
        yield* store.save(kept)
        yield* Effect.promise(() => redis.client.del(`${redis.prefix}:exec:${gone.trace_id}`))
        const page = yield* store.list({ limit: 1 })
        expect(page.items.map((i) => i.trace_id)).toEqual([kept.trace_id])
        expect(page.next_cursor).toBeNull()
      }))
  })

  describe("config", () => {
    layer(Layer.empty)("SG_EXEC_TTL", (it) => {
      it.effect("is 7 days by default, read as a duration, at least a second", () =>
        Effect.gen(function*() {
          const read = (entries: ReadonlyArray<[string, string]>) =>
            Effect.exit(Effect.withConfigProvider(ExecutionStore.config, ConfigProvider.fromMap(new Map(entries))))
          const ttl = (exit: Exit.Exit<ExecutionStore.Options, unknown>) =>
            Exit.isSuccess(exit) ? Duration.toMillis(exit.value.ttl) : -1
          expect(ttl(yield* read([]))).toBe(Duration.toMillis(Duration.days(7)))
          expect(ttl(yield* read([["SG_EXEC_TTL", "2 days"]]))).toBe(Duration.toMillis(Duration.days(2)))
          expect(Exit.isFailure(yield* read([["SG_EXEC_TTL", "10 millis"]]))).toBe(true)
          expect(Exit.isFailure(yield* read([["SG_EXEC_TTL", "forever"]]))).toBe(true)
        }))
    })
  })
})
