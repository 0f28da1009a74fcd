import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric, TestClock } from "effect"
import * as Health from "../src/Health.js"

const provide = Effect.provide(Health.layer)

describe("Health", () => {
  it.effect("degrade names an indicator until recover; critical says whether it is fatal; sorted by name", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      expect(yield* health.current).toEqual([])
      yield* health.degrade("otlp", "dropping spans: the exporter's queue is full")
      yield* health.degrade("lifecycle-queue", "replaying 12 writes", { critical: true })
      expect(yield* health.current).toEqual([
        { name: "lifecycle-queue", message: "replaying 12 writes", critical: true },
        { name: "otlp", message: "dropping spans: the exporter's queue is full", critical: false }
      ])
      yield* health.degrade("otlp", "dropped 3 spans")
      yield* health.recover("lifecycle-queue")
      yield* health.recover("never-degraded")
      expect(yield* health.current).toEqual([{ name: "otlp", message: "dropped 3 spans", critical: false }])
    }).pipe(provide))

  it.effect("a ttl lapses by Clock unless said again", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      yield* health.degrade("otlp", "dropped a span", { ttl: "30 seconds" })
      yield* TestClock.adjust("20 seconds")
      yield* health.degrade("otlp", "dropped another", { ttl: "30 seconds" })
      yield* TestClock.adjust("20 seconds")
      expect((yield* health.current).map((d) => d.message)).toEqual(["dropped another"])
      yield* TestClock.adjust("10 seconds")
      expect(yield* health.current).toEqual([])
    }).pipe(provide))

  it.effect("bounded: past maxIndicators a new name is dropped and counted; lapsed ones make room", () =>
    Effect.gen(function*() {
      const health = yield* Health.Health
      const before = (yield* Metric.value(Health.dropped)).count
      for (let i = 0; i < Health.maxIndicators; i++) {
        yield* health.degrade(`i${String(i).padStart(3, "0")}`, "x", { ttl: i === 0 ? "1 second" : undefined })
      }
      yield* health.degrade("one-too-many", "x")
      expect((yield* Metric.value(Health.dropped)).count - before).toBe(1)
      expect((yield* health.current).some((d) => d.name === "one-too-many")).toBe(false)
      // A known name is updated in place, never dropped.
      yield* health.degrade("i001", "still")
      expect((yield* health.current).find((d) => d.name === "i001")?.message).toBe("still")
      yield* TestClock.adjust("1 second")
      yield* health.degrade("one-too-many", "now kept")
      expect((yield* health.current).find((d) => d.name === "one-too-many")?.message).toBe("now kept")
      expect(yield* health.current).toHaveLength(Health.maxIndicators)
    }).pipe(provide))
})
