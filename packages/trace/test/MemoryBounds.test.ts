import { describe, expect, it } from "@effect/vitest"
import { Clock, ConfigProvider, Duration, Effect, Exit, Layer, Metric, Option, TestClock } from "effect"
import type { EvictingStore } from "../src/internal/evictions.js"
import { makeMemoryExecutions } from "../src/internal/executionsMemory.js"
import { makeMemoryBackend, MemoryKeyspace } from "../src/internal/memoryBackend.js"
import { makeService } from "../src/internal/service.js"
import * as ExecutionStore from "../src/ExecutionStore.js"
import * as TraceStore from "../src/TraceStore.js"
import { freshId, recordAt } from "./utils/execStoreConformance.js"
import { nextTraceId } from "./utils/ids.js"

/** A memory store capped at `maxTraces`, and its keyspace to look into. */
const bounded = (maxTraces: number) =>
  Effect.sync(() => {
    const keyspace = new MemoryKeyspace({ maxTraces })
    const options = { ...TraceStore.defaults, maxTraces }
    const store = makeService(makeMemoryBackend(keyspace), options)
    return { keyspace, store }
  })

const evicted = (store: EvictingStore) =>
  Effect.map(Metric.value(Metric.tagged(TraceStore.recordsEvicted, "store", store)), (state) => state.count)

describe("the memory stores are bounded", () => {
  it.effect("expired hashes are purged by later writes, without being read again", () =>
    Effect.gen(function*() {
      const { keyspace, store } = yield* bounded(1000)
      const finished = Array.from({ length: 40 }, () => nextTraceId())
      for (const id of finished) {
        yield* store.create(id, "RECEIVED")
        yield* store.finish(id, "COMPLETED")
      }
      const inFlight = Array.from({ length: 10 }, () => nextTraceId())
      for (const id of inFlight) yield* store.create(id, "INFERRING")
      expect(keyspace.hashes.size).toBe(50)

      // The terminal TTL (1 hour) passes: three writes of other traces purge the 40 finished hashes.
      yield* TestClock.adjust("1 hour")
      for (let i = 0; i < 3; i++) yield* store.create(nextTraceId(), "RECEIVED")
      expect(keyspace.hashes.stats()).toMatchObject({ size: 13, expired: 40, evicted: 0 })

      // The failsafe TTL (24 hours) passes for the ones in flight: purged too; their ids wait for the sweep, as in
      // Redis, and the sweep removes them as missing.
      yield* TestClock.adjust("24 hours")
      yield* store.create(nextTraceId(), "RECEIVED")
      expect(keyspace.hashes.size).toBe(1)
      expect(yield* store.activeCount).toBe(14)
      expect(yield* store.sweepOrphans()).toMatchObject({ removed_missing: 13, orphaned: 0 })
      expect(yield* store.activeCount).toBe(1)
    }))

  it.effect("past maxTraces the least recently written hash goes first, counted; its active id is swept as missing", () =>
    Effect.gen(function*() {
      const before = yield* evicted("lifecycle")
      const { keyspace, store } = yield* bounded(10)
      const old = Array.from({ length: 5 }, () => nextTraceId())
      for (const id of old) yield* store.create(id, "INFERRING")
      const recent = Array.from({ length: 10 }, () => nextTraceId())
      for (const id of recent) {
        yield* store.create(id, "RECEIVED")
        yield* store.finish(id, "COMPLETED")
      }
      expect(keyspace.hashes.size).toBe(10)
      expect((yield* evicted("lifecycle")) - before).toBe(5)
      for (const id of old) expect(yield* store.get(id)).toEqual(Option.none())
      for (const id of recent) expect(Option.getOrThrow(yield* store.get(id)).state).toBe("COMPLETED")
      expect((yield* Effect.flip(store.finish(old[0]!, "COMPLETED")))._tag).toBe("TraceNotFound")
      expect(yield* store.activeCount).toBe(5)
      expect(yield* store.sweepOrphans()).toMatchObject({ scanned: 5, removed_missing: 5 })
      expect(yield* store.activeCount).toBe(0)
    }))

  it.effect("a write moves a hash to the newest end: a trace in flight that keeps moving outlives older writes", () =>
    Effect.gen(function*() {
      const { store } = yield* bounded(3)
      const busy = nextTraceId()
      yield* store.create(busy, "RECEIVED")
      const others = Array.from({ length: 4 }, () => nextTraceId())
      for (const id of others) {
        yield* store.create(id, "RECEIVED")
        yield* store.transition(busy, "INFERRING")
      }
      expect(Option.isSome(yield* store.get(busy))).toBe(true)
      expect(yield* store.get(others[0]!)).toEqual(Option.none())
      expect(Option.isSome(yield* store.get(others[3]!))).toBe(true)
    }))

  it.effect("the active set stays within maxTraces: past it the first added id goes, counted", () =>
    Effect.gen(function*() {
      const before = yield* evicted("active_set")
      const { keyspace, store } = yield* bounded(10)
      const ids = Array.from({ length: 25 }, () => nextTraceId())
      for (const id of ids) yield* store.create(id, "INFERRING")
      expect(yield* store.activeCount).toBe(10)
      expect(keyspace.active.size).toBe(10)
      expect((yield* evicted("active_set")) - before).toBe(15)
      for (const id of ids.slice(0, 15)) expect(yield* store.isActive(id)).toBe(false)
      for (const id of ids.slice(15)) expect(yield* store.isActive(id)).toBe(true)
      yield* TestClock.adjust("31 minutes")
      expect(yield* store.sweepOrphans()).toMatchObject({ scanned: 10, orphaned: 10 })
    }))

  it.effect("execution records: expired ones purged by later saves, past the cap the oldest saved go, counted", () =>
    Effect.gen(function*() {
      const before = yield* evicted("execution")
      const store = makeMemoryExecutions({ ttl: "1 hour", maxTraces: 5 })
      const now = yield* Clock.currentTimeMillis
      const ids = Array.from({ length: 12 }, () => freshId())
      for (const [i, id] of ids.entries()) yield* store.save(recordAt(id, now + i))
      expect(yield* store.stats).toMatchObject({ size: 5, evicted: 7 })
      expect((yield* evicted("execution")) - before).toBe(7)
      for (const id of ids.slice(0, 7)) expect(yield* store.get(id)).toEqual(Option.none())
      expect((yield* store.list()).items.map((item) => item.trace_id)).toEqual(ids.slice(7).reverse())

      yield* TestClock.adjust("1 hour")
      yield* store.save(recordAt(freshId(), now + Duration.toMillis("1 hour")))
      expect(yield* store.stats).toMatchObject({ size: 1, expired: 5, evicted: 7 })
      expect((yield* evicted("execution")) - before).toBe(7)
    }))

  it.effect("SG_MEMORY_MAX_TRACES sets the cap of layerMemoryConfig; a bad value is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const withEnv = (value: string) =>
        Effect.zip(TraceStore.TraceStore, ExecutionStore.ExecutionStore).pipe(
          Effect.provide(Layer.merge(TraceStore.layerMemoryConfig, ExecutionStore.layerMemoryConfig)),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_MEMORY_MAX_TRACES", value]])))
        )
      const [store, executions] = yield* withEnv("3")
      const ids = Array.from({ length: 5 }, () => nextTraceId())
      for (const id of ids) yield* store.create(id, "RECEIVED")
      expect(yield* store.get(ids[1]!)).toEqual(Option.none())
      expect(Option.isSome(yield* store.get(ids[2]!))).toBe(true)
      expect(yield* store.activeCount).toBe(3)
      const now = yield* Clock.currentTimeMillis
      const records = Array.from({ length: 4 }, () => freshId())
      for (const [i, id] of records.entries()) yield* executions.save(recordAt(id, now + i))
      expect(yield* executions.get(records[0]!)).toEqual(Option.none())
      expect(Option.isSome(yield* executions.get(records[1]!))).toBe(true)

      for (const bad of ["0", "-5", "many"]) {
        const exit = yield* Effect.exit(withEnv(bad))
        expect(Exit.isFailure(exit)).toBe(true)
        expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("SG_MEMORY_MAX_TRACES")
      }
      expect(TraceStore.defaults.maxTraces).toBe(100_000)
    }))
})
