import { describe, expect, it } from "@effect/vitest"
import { CircuitBreaker, Health } from "@sg/resilience"
import { TraceLifecycle, TraceStore, TraceStoreUnavailable } from "@sg/trace"
import { ConfigProvider, Context, Effect, Either, Layer, Option, Ref, TestClock } from "effect"
import * as Readiness from "../src/Readiness.js"

type Ping = "answers" | "refused" | "hangs"

class PingMode extends Context.Tag("test/PingMode")<PingMode, Ref.Ref<Ping>>() {}

/** The memory store, its PING answering as the test says. */
const store = Layer.effect(
  TraceStore.TraceStore,
  Effect.gen(function*() {
    const memory = yield* TraceStore.makeMemory()
    const mode = yield* PingMode
    return {
      ...memory,
      ping: Effect.flatMap(Ref.get(mode), (now) =>
        now === "answers"
          ? Effect.void
          : now === "refused"
          ? Effect.fail(new TraceStoreUnavailable({ operation: "PING", message: "connect ECONNREFUSED 127.0.0.1:6399" }))
          : Effect.never)
    }
  })
).pipe(Layer.provideMerge(Layer.effect(PingMode, Ref.make<Ping>("answers"))))

const services = Layer.mergeAll(store, CircuitBreaker.layer({ policies: { "trace-store": { cooldown: "1 second" } } }))
  .pipe(Layer.orDie, Layer.provideMerge(Health.layer))

/** Readiness over `services`, which the caller provides (so it can reach them before readiness starts). */
const withReadiness = (options?: Readiness.Options) => Effect.provide(Readiness.layer(options))

const provide = (options?: Readiness.Options) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(withReadiness(options), Effect.provide(services))

const report = Effect.flatMap(Readiness.Readiness, (readiness) => readiness.report)

/** Lets the forked check run until it has answered once (no time passes under TestClock). */
const firstCheck = Effect.flatMap(Readiness.Readiness, (readiness) =>
  Effect.zipRight(Effect.yieldNow(), readiness.store).pipe(Effect.repeat({ until: Option.isSome, times: 100 })))

const failWrites = (n: number) =>
  Effect.flatMap(CircuitBreaker.CircuitBreaker, (breakers) =>
    Effect.forEach(
      Array.from({ length: n }),
      () => breakers.protect(TraceLifecycle.breakerName)(Effect.fail("OOM command not allowed")).pipe(Effect.ignore)
    ))

describe("Readiness", () => {
  it.effect("starting until the first check has answered, then ready with nothing degraded; draining is final", () =>
    Effect.gen(function*() {
      const readiness = yield* Readiness.Readiness
      // The check is forked; under TestClock it answers before any time passes.
      yield* firstCheck
      expect(yield* report).toEqual({ phase: "serving", ready: true, reason: undefined, degraded: [] })
      expect((yield* readiness.store)._tag).toBe("Some")
      yield* readiness.drain
      yield* TestClock.adjust("5 seconds")
      expect(yield* report).toMatchObject({ phase: "draining", ready: false, reason: expect.stringMatching(/^drain/) })
    }).pipe(provide()))

  it.effect("a store that hangs: not ready while starting, then ready and named once the PING times out", () =>
    Effect.gen(function*() {
      yield* Ref.set(yield* PingMode, "hangs")
      return yield* Effect.gen(function*() {
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        expect(yield* report).toMatchObject({ phase: "starting", ready: false, reason: expect.stringMatching(/^st/) })
        yield* TestClock.adjust("500 millis")
        expect(yield* report).toEqual({
          phase: "serving",
          ready: true,
          reason: undefined,
          degraded: [{ name: "store", message: "unreachable: no answer to a PING within 500ms" }]
        })
      }).pipe(withReadiness())
    }).pipe(Effect.provide(services)))

  it.effect("the store down and back: named within one interval each way; requiresStore makes it fatal", () =>
    Effect.gen(function*() {
      const mode = yield* PingMode
      const check = (options: Readiness.Options) =>
        Effect.gen(function*() {
          yield* firstCheck
          expect((yield* report).degraded).toEqual([])
          yield* Ref.set(mode, "refused")
          yield* TestClock.adjust("1 second")
          const down = yield* report
          expect(down.degraded).toEqual([
            { name: "store", message: "unreachable: connect ECONNREFUSED 127.0.0.1:6399" }
          ])
          yield* Ref.set(mode, "answers")
          yield* TestClock.adjust("1 second")
          expect((yield* report).degraded).toEqual([])
          return down
        }).pipe(withReadiness(options))
      expect(yield* check({})).toMatchObject({ ready: true, reason: undefined })
      expect(yield* check({ requiresStore: true })).toMatchObject({
        ready: false,
        reason: "the trace store is unreachable: connect ECONNREFUSED 127.0.0.1:6399, and SG_READY_REQUIRES_STORE is on"
      })
    }).pipe(Effect.provide(services)))

  it.effect("writes fail while PING answers (Redis out of memory): the breaker names the store until it closes", () =>
    Effect.gen(function*() {
      yield* firstCheck
      yield* failWrites(3)
      const failing = yield* report
      expect(failing).toMatchObject({ ready: true })
      expect(failing.degraded).toEqual([
        { name: "store", message: "failing writes: the trace-store breaker is open: calls are rejected for 1 s more" },
        { name: "breaker:trace-store", message: "open: calls are rejected for 1 s more" }
      ])
      // Once the cool-down is over the breaker is half-open, said at once with no call needed; whether writes fail is
      // not known any more (none was tried), so only the breaker is named.
      yield* TestClock.adjust("1 second")
      expect((yield* report).degraded).toEqual([
        { name: "breaker:trace-store", message: "half open: a trial call is due" }
      ])
      yield* failWrites(1)
      expect((yield* report).degraded.map((d) => d.name)).toEqual(["store", "breaker:trace-store"])
      yield* TestClock.adjust("1 second")
      const breakers = yield* CircuitBreaker.CircuitBreaker
      yield* breakers.protect(TraceLifecycle.breakerName)(Effect.void)
      expect((yield* report).degraded).toEqual([])
    }).pipe(provide()))

  it.effect("with requiresStore, failing writes are fatal too; other breakers never are", () =>
    Effect.gen(function*() {
      yield* firstCheck
      const breakers = yield* CircuitBreaker.CircuitBreaker
      yield* breakers.isolate("model:demo")
      expect(yield* report).toMatchObject({
        ready: true,
        degraded: [{ name: "breaker:model:demo", message: "isolated: held open until reset" }]
      })
      yield* failWrites(3)
      expect(yield* report).toMatchObject({ ready: false, reason: expect.stringMatching(/^the trace store is fail/) })
      // Never stuck out of its load balancer with no writes to find out: ready again once the cool-down is over.
      yield* TestClock.adjust("1 second")
      expect(yield* report).toMatchObject({ ready: true })
    }).pipe(provide({ requiresStore: true })))

  it.effect("Health indicators other services report: named; a critical one makes the replica not ready", () =>
    Effect.gen(function*() {
      yield* firstCheck
      const health = yield* Health.Health
      yield* health.degrade("otlp", "dropping spans: the collector does not answer", { ttl: "30 seconds" })
      expect(yield* report).toEqual({
        phase: "serving",
        ready: true,
        reason: undefined,
        degraded: [{ name: "otlp", message: "dropping spans: the collector does not answer" }]
      })
      yield* health.degrade("disk", "full", { critical: true })
      expect(yield* report).toMatchObject({ ready: false, reason: "disk is degraded: full" })
      yield* health.recover("disk")
      yield* TestClock.adjust("30 seconds")
      expect(yield* report).toMatchObject({ ready: true, degraded: [] })
    }).pipe(provide()))

  it.effect("config: SG_READY_REQUIRES_STORE takes on/off (off by default); anything else names the variable", () =>
    Effect.gen(function*() {
      const read = (value: string | undefined) =>
        Effect.either(Effect.withConfigProvider(
          Readiness.config,
          ConfigProvider.fromMap(new Map(value === undefined ? [] : [["SG_READY_REQUIRES_STORE", value]]))
        ))
      expect(yield* read(undefined)).toEqual(Either.right({ requiresStore: false }))
      expect(yield* read("on")).toEqual(Either.right({ requiresStore: true }))
      expect(yield* read("off")).toEqual(Either.right({ requiresStore: false }))
      const bad = yield* read("sometimes")
      expect(Either.isLeft(bad) && String(bad.left)).toContain("SG_READY_REQUIRES_STORE")
    }))
})
