import { describe, expect, it } from "@effect/vitest"
import { BreakerPolicy, CircuitBreaker, CircuitOpenError, InvalidBreakerPolicy } from "@sg/resilience"
import {
  ConfigProvider,
  Duration,
  Effect,
  Either,
  Equal,
  Exit,
  Layer,
  Metric,
  type MetricState,
  Schema,
  TestClock
} from "effect"
import { rejected } from "../src/internal/rejection.js"
import { makeLabels, otherLabel } from "../src/internal/shell.js"
import { openError } from "./utils/conformance.js"
import { calls, freshName, stateOf, Unavailable } from "./utils/breaker.js"

const boom = Effect.fail(new Unavailable())

const provide = (options?: BreakerPolicy.Options) => Effect.provide(CircuitBreaker.layer(options))

const evictions = (reason: string) =>
  Metric.value(CircuitBreaker.metrics.evictions.pipe(Metric.tagged("reason", reason))).pipe(
    Effect.map((state: MetricState.MetricState.Counter<number>) => state.count)
  )

const withEnv = (vars: Record<string, string>) =>
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars)))))

describe("CircuitBreaker", () => {
  describe("status", () => {
    it.effect("snapshot reports every breaker, and encodes for /api/status (local: shared false)", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        yield* TestClock.adjust("1 second")
        yield* calls("b", 1, Effect.succeed(1))
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("10 seconds")
        yield* breaker.isolate("c")
        expect((yield* breaker.status("never-used")).state).toBe("closed")
        const snapshot = yield* breaker.snapshot
        const encoded = yield* Schema.encode(Schema.Array(CircuitBreaker.Status))(snapshot)
        expect(encoded).toEqual([
          {
            name: "a",
            state: "open",
            failures: 3,
            opened_at: "1970-01-01T00:00:01.000Z",
            retry_after: 20,
            shared: false
          },
          { name: "b", state: "closed", failures: 0, opened_at: null, retry_after: 0, shared: false },
          {
            name: "c",
            state: "isolated",
            failures: 0,
            opened_at: "1970-01-01T00:00:11.000Z",
            retry_after: null,
            shared: false
          }
        ])
        expect(yield* Schema.decodeUnknown(Schema.Array(CircuitBreaker.Status))(encoded)).toEqual(snapshot)
      }).pipe(provide()))

    it.effect("status says half_open once the cool-down is over, before any call admits the trial", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("29 seconds")
        const open = yield* breaker.status("a")
        expect([open.state, Duration.toMillis(open.retryAfter)]).toEqual(["open", 1_000])
        yield* TestClock.adjust("1 second")
        const due = yield* breaker.status("a")
        expect([due.state, Duration.toMillis(due.retryAfter)]).toEqual(["half_open", 0])
        expect((yield* breaker.snapshot).map((s) => s.state)).toEqual(["half_open"])
        // The trial it promised: one call is admitted, and its failure reopens the breaker for a new cool-down.
        yield* calls("a", 1, boom)
        const reopened = yield* breaker.status("a")
        expect([reopened.state, Duration.toMillis(reopened.retryAfter)]).toEqual(["open", 30_000])
        yield* breaker.isolate("a")
        yield* TestClock.adjust("1 hour")
        expect((yield* breaker.status("a")).state).toBe("isolated")
      }).pipe(provide()))
  })

  describe("bounds", () => {
    it.effect("an idle breaker is forgotten once idle for the idle timeout (status polled); one in use is not", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const [idle, busy] = [freshName("idle"), freshName("busy")]
        const before = yield* evictions("idle")
        yield* calls(idle, 2, boom)
        const names = Effect.map(breaker.snapshot, (all) => all.map((s) => s.name).sort())
        for (let i = 0; i < 3; i++) {
          yield* calls(busy, 1, Effect.succeed(1))
          yield* TestClock.adjust("20 seconds")
          expect(yield* names).toEqual([busy, idle].sort())
        }
        for (let i = 0; i < 3; i++) {
          yield* calls(busy, 1, Effect.succeed(1))
          yield* TestClock.adjust("20 seconds")
          yield* breaker.snapshot
        }
        expect(yield* names).toEqual([busy])
        expect((yield* evictions("idle")) - before).toBe(1)
        // Forgotten means a fresh start: its two failures are gone.
        yield* calls(idle, 2, boom)
        expect(yield* stateOf(idle)).toBe("closed")
      }).pipe(provide({ idleTimeout: "1 minute" })))

    it.effect("an open breaker is kept until its cool-down is over, an isolated one until reset", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const [open, isolated] = [freshName("open"), freshName("isolated")]
        yield* calls(open, 3, boom)
        yield* breaker.isolate(isolated)
        yield* TestClock.adjust("4 minutes")
        expect((yield* breaker.snapshot).map((s) => s.name).sort()).toEqual([open, isolated].sort())
        yield* TestClock.adjust("3 minutes")
        expect((yield* breaker.snapshot).map((s) => s.name)).toEqual([isolated])
        yield* TestClock.adjust("1 hour")
        expect(yield* stateOf(isolated)).toBe("isolated")
      }).pipe(provide({ idleTimeout: "1 minute", cooldown: "5 minutes" })))

    it.effect("past the cap, a breaker not used lately makes room", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const names = Array.from({ length: 5 }, (_, i) => freshName(`cap${i}`))
        const before = yield* evictions("capacity")
        yield* calls(names[0]!, 3, boom)
        for (const name of names.slice(1)) yield* calls(name, 1, Effect.succeed(1))
        const kept = (yield* breaker.snapshot).map((s) => s.name)
        expect(kept).toHaveLength(3)
        expect(kept).toContain(names[4])
        expect((yield* evictions("capacity")) - before).toBe(2)
      }).pipe(provide({ maxBreakers: 3 })))

    it("past the label cap, breakers count under breaker=\"other\"", () => {
      const labels = makeLabels(2)
      const [a, b, c] = [freshName("l"), freshName("l"), freshName("l")]
      expect([labels(a).label, labels(b).label, labels(c).label, labels(a).label]).toEqual([a, b, otherLabel, a])
    })

    it.effect("idleTimeout and maxBreakers are checked", () =>
      Effect.gen(function*() {
        const build = (options: BreakerPolicy.Options) =>
          Effect.flip(Effect.scoped(Layer.build(CircuitBreaker.layer(options))))
        expect((yield* build({ idleTimeout: "0 millis" })).message).toContain("idleTimeout")
        expect((yield* build({ maxBreakers: 0 })).message).toContain("maxBreakers")
      }))
  })

  describe("errors", () => {
    it("a rejection's error equals one built with new, and encodes like one", () => {
      const fast = rejected("a", 1500)
      const built = new CircuitOpenError({ name: "a", retryAfter: Duration.millis(1500), message: fast.message })
      expect(fast).toBeInstanceOf(CircuitOpenError)
      expect(fast).toBeInstanceOf(Error)
      expect(fast._tag).toBe("CircuitOpenError")
      expect(fast.message).toBe("circuit breaker \"a\" is open; retry in 1500 ms")
      expect(fast.stack).toContain("CircuitOpenError: circuit breaker")
      expect(Equal.equals(fast, built)).toBe(true)
      expect(Schema.encodeSync(CircuitOpenError)(fast)).toEqual(Schema.encodeSync(CircuitOpenError)(built))
      expect(JSON.parse(JSON.stringify(fast))).toEqual(JSON.parse(JSON.stringify(built)))
    })
  })

  describe("layers", () => {
    it.effect("layerConfig reads SG_BREAKER_THRESHOLD and SG_BREAKER_COOLDOWN", () =>
      Effect.gen(function*() {
        yield* calls("a", 1, boom)
        expect(yield* stateOf("a")).toBe("closed")
        yield* calls("a", 1, boom)
        expect(yield* stateOf("a")).toBe("open")
        yield* TestClock.adjust("10 seconds")
        expect(yield* calls("a", 1, Effect.succeed(1))).toEqual([Exit.succeed(1)])
      }).pipe(
        Effect.provide(CircuitBreaker.layerConfig.pipe(
          Layer.provide(Layer.setConfigProvider(
            ConfigProvider.fromMap(new Map([["SG_BREAKER_THRESHOLD", "2"], ["SG_BREAKER_COOLDOWN", "10 seconds"]]))
          ))
        ))
      ))

    it.effect("layerConfig defaults to 3 failures and 30 seconds", () =>
      Effect.gen(function*() {
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("29999 millis")
        const [exit] = yield* calls("a", 1, Effect.succeed(1))
        expect(openError(exit!).retryAfter).toEqual(Duration.millis(1))
      }).pipe(
        Effect.provide(CircuitBreaker.layerConfig.pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))
        ))
      ))

    it.effect("SG_BREAKER_COOLDOWN_MAX caps the doubling of the cool-down after each failed trial", () =>
      Effect.gen(function*() {
        const retryAfter = Effect.map(calls("a", 1, Effect.succeed(1)), ([exit]) => openError(exit!).retryAfter)
        yield* calls("a", 3, boom)
        for (const seconds of [10, 20, 25, 25]) {
          expect(yield* retryAfter).toEqual(Duration.seconds(seconds))
          yield* TestClock.adjust(yield* retryAfter)
          yield* calls("a", 1, boom)
        }
      }).pipe(
        Effect.provide(CircuitBreaker.layerConfig.pipe(
          withEnv({ SG_BREAKER_COOLDOWN: "10 seconds", SG_BREAKER_COOLDOWN_MAX: "25 seconds" })
        ))
      ))

    it.effect("SG_BREAKER_COOLDOWN_MAX defaults to 5 minutes, or the cool-down when that is longer", () =>
      Effect.gen(function*() {
        const read = (vars: Record<string, string>) =>
          BreakerPolicy.config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars)))))
        expect((yield* read({})).backoff).toEqual({ factor: 2, max: Duration.minutes(5) })
        expect((yield* read({ SG_BREAKER_COOLDOWN: "10 minutes" })).backoff.max).toEqual(Duration.minutes(10))
        const error = yield* Effect.flip(
          read({ SG_BREAKER_COOLDOWN: "1 minute", SG_BREAKER_COOLDOWN_MAX: "30 seconds" })
        )
        expect(String(error)).toContain("SG_BREAKER_COOLDOWN_MAX")
      }))

    it.effect("a bad SG_BREAKER_THRESHOLD is a ConfigError naming it", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Layer.build(CircuitBreaker.layerConfig).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_BREAKER_THRESHOLD", "0"]]))),
          Effect.scoped
        ))
        expect(String(error)).toContain("SG_BREAKER_THRESHOLD")
      }))

    it.effect("an invalid policy fails the layer with InvalidBreakerPolicy naming the breaker and field", () =>
      Effect.gen(function*() {
        const build = (options: BreakerPolicy.Options) =>
          Effect.flip(Effect.scoped(Layer.build(CircuitBreaker.layer(options))))
        const named = yield* build({ policies: { search: { failureRate: { threshold: 1.5, window: 10 } } } })
        expect(named).toBeInstanceOf(InvalidBreakerPolicy)
        expect(named.breaker).toBe("search")
        expect(named.message).toContain("failureRate.threshold")
        expect((yield* build({ threshold: 0 })).message).toContain("threshold must be an integer >= 1")
        expect((yield* build({ cooldown: "soon" as Duration.DurationInput })).message).toContain("cooldown")
        expect((yield* build({ halfOpenTrials: 1.5 })).message).toContain("halfOpenTrials")
        expect((yield* build({ failureRate: { threshold: 0.5, window: 5, minimumCalls: 6 } })).message).toContain(
          "minimumCalls"
        )
        expect((yield* build({ backoff: { max: "1 second" } })).message).toContain("backoff.max")
        expect(Either.isRight(BreakerPolicy.validate({ threshold: 5, backoff: { max: "5 minutes" } }))).toBe(true)
      }))
  })
})
