import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Option, TestClock } from "effect"
import * as TraceStore from "../src/TraceStore.js"
import { nextTraceId } from "./utils/ids.js"

describe("TraceStore in memory", () => {
  it.effect("a trace whose failsafe TTL ran out under TestClock is gone, and the sweep drops its id", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "INFERRING")
      yield* TestClock.adjust(Duration.subtract(Duration.hours(24), Duration.millis(1)))
      expect(Option.isSome(yield* store.get(id))).toBe(true)
      expect(yield* store.ttl(id)).toEqual(Option.some(Duration.millis(1)))
      yield* TestClock.adjust("1 millis")
      expect(yield* store.get(id)).toEqual(Option.none())
      expect(yield* store.ttl(id)).toEqual(Option.none())
      expect((yield* Effect.flip(store.transition(id, "EGRESS")))._tag).toBe("TraceNotFound")
      expect(yield* store.isActive(id)).toBe(true)
      expect(yield* store.sweepOrphans()).toMatchObject({ scanned: 1, removed_missing: 1, orphaned: 0 })
      expect(yield* store.activeCount).toBe(0)
    }).pipe(Effect.provide(TraceStore.layerMemory)))

  it.effect("a finished trace is gone once its terminal TTL has passed", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "INFERRING")
      yield* TestClock.adjust("10 hours")
      yield* store.finish(id, "COMPLETED")
      yield* TestClock.adjust("59 minutes")
      expect(Option.getOrThrow(yield* store.get(id)).state).toBe("COMPLETED")
      yield* TestClock.adjust("1 minute")
      expect(yield* store.get(id)).toEqual(Option.none())
    }).pipe(Effect.provide(TraceStore.layerMemory)))

  it.effect("an orphan retired by the sweep expires after the terminal TTL", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "INFERRING")
      yield* TestClock.adjust("31 minutes")
      expect((yield* store.sweepOrphans()).orphaned).toBe(1)
      yield* TestClock.adjust("1 hour")
      expect(yield* store.get(id)).toEqual(Option.none())
    }).pipe(Effect.provide(TraceStore.layerMemory)))

  it.effect("options and configuration set the TTLs and the threshold", () =>
    Effect.gen(function*() {
      const custom = yield* TraceStore.makeMemory({ failsafeTtl: "1 minute", orphanThreshold: "10 seconds" })
      const id = nextTraceId()
      yield* custom.create(id, "RECEIVED")
      yield* TestClock.adjust("11 seconds")
      expect((yield* custom.sweepOrphans()).orphaned).toBe(1)

      const configured = yield* TraceStore.TraceStore.pipe(
        Effect.provide(TraceStore.layerMemoryConfig),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_FAILSAFE_TTL", "90 seconds"]])))
      )
      const other = nextTraceId()
      yield* configured.create(other, "RECEIVED")
      expect(yield* configured.ttl(other)).toEqual(Option.some(Duration.seconds(90)))
      expect(configured.backend).toBe("memory")
    }))
})
