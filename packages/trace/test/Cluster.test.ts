import { describe, expect, layer } from "@effect/vitest"
import type { Lease } from "@sg/leader"
import { RedisClient } from "@sg/redis"
import { RedisTestCluster, RedisTestServer } from "@sg/redis/testing"
import { Clock, Context, Effect, Layer, Logger, LogLevel, TestContext } from "effect"
import { makeRedisExecutions } from "../src/internal/executionsRedis.js"
import { SweepHooks } from "../src/internal/sweepHooks.js"
import { fnv1a32, type Layout, layoutFor } from "../src/internal/layout.js"
import * as TraceStore from "../src/TraceStore.js"
import * as TraceStoreRedis from "../src/TraceStore/Redis.js"
import { redisFactory } from "./utils/execRedisFactory.js"
import { executionStoreConformance, freshId, recordAt } from "./utils/execStoreConformance.js"
import { nextTraceId } from "./utils/ids.js"
import * as StoreKit from "./utils/StoreKit.js"
import { conformance } from "./utils/TraceStoreConformance.js"

// One cluster for the whole file (it takes a few seconds to start): every block below shares it, each test under a
// key prefix of its own.
const cluster = RedisTestCluster.layerWithClient()

const slotOf = (redis: RedisClient.Service, key: string) =>
  Effect.orDie(redis.use("CLUSTER KEYSLOT", (c) => c.call("CLUSTER", "KEYSLOT", key) as Promise<number>))

const staleLease = (name: string, epoch: number): Lease.Service => ({
  name,
  token: `paused-host:1:${epoch}`,
  epoch,
  // A paused leader's view: its last check said it held the lease, and it has not looked since.
  stillHeld: Effect.succeed(true)
})

/** Kinds of the 100,000-trace sweep, by `i % 5`: two orphans, a ghost, a terminal id, one in flight and fresh. */
const kindOf = (i: number) => (["orphan", "orphan", "ghost", "terminal", "fresh"] as const)[i % 5]!

/**
 * Plants `count` traces straight into the keyspace, as writers long gone left them, pipelined per shard (every key
 * of a pipeline in one slot, as a cluster requires). Timestamps are now or an hour ago by the real clock.
 */
const plant = (redis: RedisClient.Service, layout: Layout, count: number) =>
  Effect.gen(function*() {
    const now = (yield* Clock.currentTimeMillis) / 1000
    const byShard = new Map<number, Array<number>>()
    for (let i = 0; i < count; i++) {
      const shard = layout.shardOf(idOf(i))
      const list = byShard.get(shard) ?? []
      list.push(i)
      byShard.set(shard, list)
    }
    const chunks: Array<{ readonly shard: number; readonly items: ReadonlyArray<number> }> = []
    for (const [shard, items] of byShard) {
      for (let at = 0; at < items.length; at += 2000) chunks.push({ shard, items: items.slice(at, at + 2000) })
    }
    yield* Effect.forEach(chunks, ({ items, shard }) =>
      Effect.orDie(redis.use("plant", (c) => {
        const pipeline = c.pipeline()
        for (const i of items) {
          const id = idOf(i)
          const kind = kindOf(i)
          if (kind !== "ghost") {
            const at = (kind === "orphan" ? now - 3600 : now).toFixed(3)
            pipeline.hset(layout.trace(id), {
              state: kind === "terminal" ? "COMPLETED" : "INFERRING",
              created_at: at,
              updated_at: at
            })
          }
          pipeline.sadd(layout.active(shard), id)
        }
        return pipeline.exec()
      })), { concurrency: 4, discard: true })
  })

const idOf = (i: number) => `0190a000-0000-7000-8000-${i.toString(16).padStart(12, "0")}`

describe("Redis Cluster", () => {
  layer(cluster, { excludeTestServices: true, timeout: 120_000 })("a three-master cluster, shared", (it) => {
    // TestClock for the lifecycle suite (it sets the time), the real clock for the execution store's TTLs.
    it.layer(TestContext.TestContext)("TraceStore conformance", (it) => {
      conformance(it, StoreKit.cluster)
    })

    it.layer(redisFactory)("ExecutionStore conformance", (it) => {
      executionStoreConformance(it)
    })

    it.layer(StoreKit.cluster)("the cluster keyspace", (it) => {
      it.effect("a trace's hash, its shard of the active set and of the exec indexes share one slot", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const store = yield* TraceStore.TraceStore
          const id = nextTraceId()
          yield* store.create(id, "RECEIVED")
          const shard = fnv1a32(id) % 16
          const tag = `${redis.prefix}:{${shard}}`
          expect(yield* Effect.orDie(redis.use("EXISTS", (c) => c.exists(`${tag}:trace:${id}`)))).toBe(1)
          expect(yield* Effect.orDie(redis.use("SISMEMBER", (c) => c.sismember(`${tag}:traces:active`, id)))).toBe(1)
          const layout = layoutFor(redis, 16)
          const slots = yield* Effect.forEach(
            [layout.trace(id), layout.active(shard), layout.record(id), layout.index(shard), layout.fence(shard, "w")],
            (key) => slotOf(redis, key)
          )
          expect(new Set(slots).size).toBe(1)
          expect(store.backend).toBe("redis-cluster")
          expect(yield* store.address!.masters).toHaveLength(3)
        }))

      it.effect("the shards spread over the masters: none serves more than half of them", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const layout = layoutFor(redis, 16)
          const nodes = yield* Effect.orDie(redis.use("CLUSTER SHARDS", (c) => c.call("CLUSTER", "SLOTS") as Promise<
            ReadonlyArray<[number, number, [string, number]]>
          >))
          const owners = yield* Effect.forEach(Array.from({ length: 16 }, (_, shard) => shard), (shard) =>
            Effect.map(slotOf(redis, layout.active(shard)), (slot) =>
              nodes.find(([from, to]) => slot >= from && slot <= to)![2][1]))
          const perMaster = new Map<number, number>()
          for (const port of owners) perMaster.set(port, (perMaster.get(port) ?? 0) + 1)
          expect(perMaster.size).toBe(3)
          for (const count of perMaster.values()) expect(count).toBeLessThanOrEqual(8)
        }))

      it.effect("a newer leader's fences stop a paused older one: it fails with LeaseLost and writes nothing", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const store = yield* TraceStore.TraceStore
          const layout = layoutFor(redis, 16)
          const now = (yield* Clock.currentTimeMillis) / 1000
          const plantOrphan = (id: string) =>
            Effect.orDie(redis.use("plant", (c) =>
              c.multi()
                .hset(layout.trace(id), { state: "INFERRING", created_at: (now - 3600).toFixed(3) })
                .sadd(layout.active(layout.shardOf(id)), id)
                .exec()))
          const first = nextTraceId()
          yield* plantOrphan(first)
          expect((yield* store.sweepOrphans({ fence: staleLease("w", 2) })).orphaned).toBe(1)
          const fences = yield* Effect.forEach(
            Array.from({ length: 16 }, (_, shard) => layout.fence(shard, "w")),
            (key) => Effect.orDie(redis.use("GET", (c) => c.get(key)))
          )
          expect(fences).toEqual(Array(16).fill("2"))

          const second = nextTraceId()
          yield* plantOrphan(second)
          const error = yield* Effect.flip(store.sweepOrphans({ fence: staleLease("w", 1) }))
          expect(error).toMatchObject({ _tag: "LeaseLost", lease: "w", epoch: 1 })
          expect(error.message).toContain("epoch: 2")
          expect(yield* store.isActive(second)).toBe(true)
          expect(yield* Effect.orDie(redis.use("HGET", (c) => c.hget(layout.trace(second), "state")))).toBe("INFERRING")
          expect((yield* store.sweepOrphans({ fence: staleLease("w", 3) })).orphaned).toBe(1)
        }))

      it.effect("a sweep fences every shard before it walks the first: an older leader is out of all of them at once", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const store = yield* TraceStore.TraceStore
          const layout = layoutFor(redis, 16)
          const now = (yield* Clock.currentTimeMillis) / 1000
          const id = nextTraceId()
          yield* Effect.orDie(redis.use("plant", (c) =>
            c.multi()
              .hset(layout.trace(id), { state: "INFERRING", created_at: (now - 3600).toFixed(3) })
              .sadd(layout.active(layout.shardOf(id)), id)
              .exec()))
          // While the first batch is being decided, every shard's fence already holds the sweep's epoch.
          const seen: Array<ReadonlyArray<string | null>> = []
          const hooks = SweepHooks.of({
            afterRead: () =>
              Effect.asVoid(Effect.flatMap(
                Effect.forEach(
                  Array.from({ length: 16 }, (_, shard) => layout.fence(shard, "all")),
                  (key) => Effect.orDie(redis.use("GET", (c) => c.get(key)))
                ),
                (fences) => Effect.sync(() => seen.push(fences))
              ))
          })
          yield* store.sweepOrphans({ fence: staleLease("all", 5) }).pipe(Effect.provideService(SweepHooks, hooks))
          expect(seen.length).toBeGreaterThan(0)
          expect(seen[0]).toEqual(Array(16).fill("5"))
        }))

      it.effect("the sweep script itself refuses a lower epoch: a fence raised between the read and the write", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const store = yield* TraceStore.TraceStore
          const layout = layoutFor(redis, 16)
          const id = nextTraceId()
          const created = ((yield* Clock.currentTimeMillis) / 1000 - 3600).toFixed(3)
          yield* Effect.orDie(redis.use("plant", (c) =>
            c.multi()
              .hset(layout.trace(id), { state: "INFERRING", created_at: created })
              .sadd(layout.active(layout.shardOf(id)), id)
              .exec()))
          // A newer leader (epoch 8) sweeps this shard after the older one (7) raised its fence and read the batch.
          const hooks = SweepHooks.of({
            afterRead: (ids) =>
              ids.includes(id)
                ? Effect.asVoid(Effect.orDie(redis.use("SET", (c) => c.set(layout.fence(layout.shardOf(id), "r"), "8"))))
                : Effect.void
          })
          const error = yield* Effect.flip(
            store.sweepOrphans({ fence: staleLease("r", 7) }).pipe(Effect.provideService(SweepHooks, hooks))
          )
          expect(error).toMatchObject({ _tag: "LeaseLost", epoch: 7 })
          expect(yield* Effect.orDie(redis.use("HGET", (c) => c.hget(layout.trace(id), "state")))).toBe("INFERRING")
          expect(yield* store.isActive(id)).toBe(true)
        }))

      it.effect("listing merges the shards newest first, one page after another", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const store = makeRedisExecutions(redis, { ttl: "1 hour" })
          expect(store.backend).toBe("redis-cluster")
          const start = (yield* Clock.currentTimeMillis) - 60_000
          const records = Array.from({ length: 45 }, (_, i) => recordAt(freshId(), start + Math.floor(i / 3)))
          yield* Effect.forEach(records, (record) => Effect.orDie(store.save(record)), { concurrency: 8 })
          expect(new Set(records.map((record) => fnv1a32(record.trace_id) % 16)).size).toBeGreaterThan(8)
          const seen: Array<string> = []
          let cursor: string | undefined
          do {
            const page = yield* Effect.orDie(store.list({ limit: 7, cursor }))
            seen.push(...page.items.map((item) => item.trace_id))
            cursor = page.next_cursor ?? undefined
          } while (cursor !== undefined)
          const expected = [...records].sort((a, b) =>
            b.started_at.localeCompare(a.started_at) || b.trace_id.localeCompare(a.trace_id)
          ).map((record) => record.trace_id)
          expect(seen).toEqual(expected)
        }))
    })

    it.effect(
      "a sweep over 100,000 traces reports what one standalone Redis reports, the keys spread over all three masters",
      () =>
        Effect.gen(function*() {
          const count = 100_000
          const expected = { scanned: count, removed_missing: 20_000, removed_terminal: 20_000, orphaned: 40_000 }
          const sweep = (redis: RedisClient.Service) =>
            Effect.gen(function*() {
              yield* plant(redis, layoutFor(redis, 16), count)
              const store = yield* TraceStoreRedis.make().pipe(Effect.provideService(RedisClient.RedisClient, redis))
              const report = yield* Effect.orDie(store.sweepOrphans())
              return { report, active: yield* Effect.orDie(store.activeCount) }
            }).pipe(Logger.withMinimumLogLevel(LogLevel.Error))

          const testCluster = yield* RedisTestCluster.RedisTestCluster
          const clusterClient = StoreKit.isolate(yield* RedisClient.RedisClient)
          const onCluster = yield* sweep(clusterClient)
          expect(onCluster.report).toMatchObject({ ...expected, skipped_unreadable: 0 })
          expect(onCluster.active).toBe(20_000)

          const onStandalone = yield* Effect.scoped(
            Effect.flatMap(Layer.build(RedisTestServer.layerWithClient), (context) =>
              sweep(StoreKit.isolate(Context.get(context, RedisClient.RedisClient))))
          )
          const { duration_ms: _a, ...standaloneCounts } = onStandalone.report
          const { duration_ms: _b, ...clusterCounts } = onCluster.report
          expect(clusterCounts).toEqual(standaloneCounts)
          expect(onStandalone.active).toBe(onCluster.active)

          // 80,000 hashes (every kind but the ghosts), over the masters.
          const perMaster = yield* testCluster.keysPerMaster(`${clusterClient.prefix}:{*}:trace:*`)
          expect(perMaster.size).toBe(3)
          const total = Array.from(perMaster.values()).reduce((a, b) => a + b, 0)
          expect(total).toBe(80_000)
          for (const keys of perMaster.values()) expect(keys).toBeLessThanOrEqual(total / 2)
        }),
      120_000
    )
  })
})
