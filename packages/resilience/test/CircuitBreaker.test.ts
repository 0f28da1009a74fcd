import { describe, expect, it } from "@effect/vitest"
import {
  BreakerPolicy,
  CircuitBreaker,
  CircuitOpenError,
  CircuitTimeoutError,
  InvalidBreakerPolicy
} from "@sg/resilience"
import {
  Cause,
  Chunk,
  ConfigProvider,
  DateTime,
  Deferred,
  Duration,
  Effect,
  Either,
  Equal,
  Exit,
  Fiber,
  Layer,
  Option,
  Queue,
  Ref,
  Schema,
  Stream,
  TestClock
} from "effect"
import { rejected } from "../src/internal/rejection.js"
import { BadRequest, calls, countOf, counting, freshName, gaugeOf, stateOf, Unavailable } from "./utils/breaker.js"

const { metrics } = CircuitBreaker
const boom = Effect.fail(new Unavailable())

/** The `CircuitOpenError` an exit failed with. */
const openError = <A>(exit: Exit.Exit<A, unknown>): CircuitOpenError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure) || !(failure.value instanceof CircuitOpenError)) {
    throw new Error(`expected CircuitOpenError, got ${Cause.pretty(exit.cause)}`)
  }
  return failure.value
}

const provide = (options?: BreakerPolicy.Options) => Effect.provide(CircuitBreaker.layer(options))

describe("CircuitBreaker", () => {
  describe("consecutive failures", () => {
    it.effect("opens on exactly the threshold, not before", () =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        yield* calls("a", 2, counting(runs, boom))
        expect(yield* stateOf("a")).toBe("closed")
        yield* calls("a", 1, counting(runs, boom))
        expect(yield* stateOf("a")).toBe("open")
        const [exit] = yield* calls("a", 1, counting(runs, Effect.succeed(1)))
        expect(openError(exit!).name).toBe("a")
        expect(yield* Ref.get(runs)).toBe(3)
      }).pipe(provide()))

    it.effect("a success in between resets the consecutive count", () =>
      Effect.gen(function*() {
        yield* calls("a", 2, boom)
        yield* calls("a", 1, Effect.succeed(1))
        yield* calls("a", 2, boom)
        expect(yield* stateOf("a")).toBe("closed")
        expect((yield* (yield* CircuitBreaker.CircuitBreaker).status("a")).failures).toBe(2)
        yield* calls("a", 1, boom)
        expect(yield* stateOf("a")).toBe("open")
      }).pipe(provide()))

    it.effect("breakers are independent per name", () =>
      Effect.gen(function*() {
        yield* calls("a", 3, boom)
        expect(yield* stateOf("a")).toBe("open")
        const [exit] = yield* calls("b", 1, Effect.succeed("b"))
        expect(exit).toEqual(Exit.succeed("b"))
        expect(yield* stateOf("b")).toBe("closed")
      }).pipe(provide()))

    it.effect("a named policy applies to its breaker only", () =>
      Effect.gen(function*() {
        yield* calls("fragile", 1, boom)
        yield* calls("sturdy", 1, boom)
        expect(yield* stateOf("fragile")).toBe("open")
        expect(yield* stateOf("sturdy")).toBe("closed")
      }).pipe(provide({ policies: { fragile: { threshold: 1 } } })))
  })

  describe("open", () => {
    it.effect("rejects at once with what is left of the cool-down", () =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("10 seconds")
        const [exit] = yield* calls("a", 1, counting(runs, Effect.succeed(1)))
        const error = openError(exit!)
        expect(error.retryAfter).toEqual(Duration.seconds(20))
        expect(error.message).toContain("\"a\" is open")
        expect(yield* Ref.get(runs)).toBe(0)
      }).pipe(provide()))

    it.effect("turns half-open after the cool-down, to the millisecond", () =>
      Effect.gen(function*() {
        const runs = yield* Ref.make(0)
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("29999 millis")
        const [early] = yield* calls("a", 1, counting(runs, Effect.succeed(1)))
        expect(openError(early!).retryAfter).toEqual(Duration.millis(1))
        expect(yield* Ref.get(runs)).toBe(0)
        yield* TestClock.adjust("1 millis")
        const [trial] = yield* calls("a", 1, counting(runs, Effect.succeed(1)))
        expect(trial).toEqual(Exit.succeed(1))
        expect(yield* Ref.get(runs)).toBe(1)
      }).pipe(provide()))

    it.effect("a successful trial closes the breaker and forgets the failures", () =>
      Effect.gen(function*() {
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("30 seconds")
        yield* calls("a", 1, Effect.succeed(1))
        const status = yield* (yield* CircuitBreaker.CircuitBreaker).status("a")
        expect(status.state).toBe("closed")
        expect(status.failures).toBe(0)
        expect(status.openedAt).toEqual(Option.none())
        yield* calls("a", 2, boom)
        expect(yield* stateOf("a")).toBe("closed")
      }).pipe(provide()))

    it.effect("a failed trial reopens for the same cool-down", () =>
      Effect.gen(function*() {
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("30 seconds")
        yield* calls("a", 1, boom)
        expect(yield* stateOf("a")).toBe("open")
        const [exit] = yield* calls("a", 1, Effect.succeed(1))
        expect(openError(exit!).retryAfter).toEqual(Duration.seconds(30))
        yield* TestClock.adjust("30 seconds")
        expect(yield* calls("a", 1, Effect.succeed(1))).toEqual([Exit.succeed(1)])
      }).pipe(provide()))

    it.effect("with backoff, each failed trial doubles the open time up to the cap; a success resets it", () =>
      Effect.gen(function*() {
        const retryAfterNow = Effect.map(calls("a", 1, Effect.succeed(1)), ([exit]) => openError(exit!).retryAfter)
        yield* calls("a", 3, boom)
        expect(yield* retryAfterNow).toEqual(Duration.seconds(30))
        for (const seconds of [60, 120, 120]) {
          yield* TestClock.adjust(yield* retryAfterNow)
          yield* calls("a", 1, boom)
          expect(yield* retryAfterNow).toEqual(Duration.seconds(seconds))
        }
        yield* TestClock.adjust("119999 millis")
        expect(yield* retryAfterNow).toEqual(Duration.millis(1))
        yield* TestClock.adjust("1 millis")
        yield* calls("a", 1, Effect.succeed(1))
        expect(yield* stateOf("a")).toBe("closed")
        yield* calls("a", 3, boom)
        expect(yield* retryAfterNow).toEqual(Duration.seconds(30))
      }).pipe(provide({ backoff: { factor: 2, max: "2 minutes" } })))
  })

  describe("half-open", () => {
    const concurrentTrials = (trials: number) =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const runs = yield* Ref.make(0)
        const gate = yield* Deferred.make<void>()
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("30 seconds")
        const fibers = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) => Effect.fork(Effect.exit(breaker.protect("a")(counting(runs, Effect.as(Deferred.await(gate), i))))),
          { concurrency: "unbounded" }
        )
        yield* Effect.yieldNow()
        expect(yield* Ref.get(runs)).toBe(trials)
        expect(yield* stateOf("a")).toBe("half_open")
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Effect.forEach(fibers, Fiber.join)
        const rejections = exits.filter(Exit.isFailure).map(openError)
        expect(rejections).toHaveLength(100 - trials)
        expect(rejections.every((e) => Equal.equals(e.retryAfter, Duration.zero))).toBe(true)
        expect(exits.filter(Exit.isSuccess)).toHaveLength(trials)
        expect(yield* stateOf("a")).toBe("closed")
      })

    it.effect("admits only one of 100 concurrent callers by default", () => concurrentTrials(1).pipe(provide()))

    it.effect("admits only N of 100 concurrent callers, and closes when all N succeed", () =>
      concurrentTrials(3).pipe(provide({ halfOpenTrials: 3 })))

    it.effect("stays half-open until every trial has succeeded; one failure reopens", () =>
      Effect.gen(function*() {
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("30 seconds")
        yield* calls("a", 1, Effect.succeed(1))
        expect(yield* stateOf("a")).toBe("half_open")
        yield* calls("a", 1, boom)
        expect(yield* stateOf("a")).toBe("open")
      }).pipe(provide({ halfOpenTrials: 2 })))

    it.effect("an interrupted trial gives its slot back without deciding", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("30 seconds")
        const trial = yield* Effect.fork(breaker.protect("a")(Effect.never))
        yield* Effect.yieldNow()
        const [busy] = yield* calls("a", 1, Effect.succeed(1))
        expect(openError(busy!).retryAfter).toEqual(Duration.zero)
        yield* Fiber.interrupt(trial)
        expect(yield* stateOf("a")).toBe("half_open")
        expect(yield* calls("a", 1, Effect.succeed(2))).toEqual([Exit.succeed(2)])
        expect(yield* stateOf("a")).toBe("closed")
      }).pipe(provide()))

    it.effect("a call admitted while closed that ends while half-open does not decide", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const slow = yield* Effect.fork(breaker.protect("a")(Effect.sleep("40 seconds")))
        const late = yield* Effect.fork(breaker.protect("a")(Effect.zipRight(Effect.sleep("35 seconds"), boom)))
        yield* Effect.yieldNow()
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("30 seconds")
        const trial = yield* Effect.fork(breaker.protect("a")(Effect.sleep("20 seconds")))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("10 seconds")
        yield* Fiber.join(slow)
        yield* Fiber.await(late)
        expect(yield* stateOf("a")).toBe("half_open")
        yield* TestClock.adjust("10 seconds")
        yield* Fiber.join(trial)
        expect(yield* stateOf("a")).toBe("closed")
      }).pipe(provide()))
  })

  describe("what counts", () => {
    it.effect("interruption never counts", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const name = freshName("interrupted")
        for (let i = 0; i < 5; i++) {
          const fiber = yield* Effect.fork(breaker.protect(name)(Effect.never))
          yield* Effect.yieldNow()
          yield* Fiber.interrupt(fiber)
        }
        yield* Effect.timeout(breaker.protect(name)(Effect.never), "1 second").pipe(
          Effect.fork,
          Effect.tap(() => TestClock.adjust("1 second")),
          Effect.flatMap(Fiber.await)
        )
        expect(yield* stateOf(name)).toBe("closed")
        expect((yield* breaker.status(name)).failures).toBe(0)
        expect(yield* countOf(metrics.calls, name)).toBe(6)
        expect(yield* countOf(metrics.failures, name)).toBe(0)
      }).pipe(provide({ threshold: 1 })))

    it.effect("the failure predicate decides which typed failures count", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const guard = breaker.protect("a", { isFailure: (e: Unavailable | BadRequest) => e._tag === "Unavailable" })
        for (let i = 0; i < 5; i++) yield* Effect.exit(guard(Effect.fail(new BadRequest())))
        expect(yield* stateOf("a")).toBe("closed")
        for (let i = 0; i < 3; i++) yield* Effect.exit(guard(Effect.fail(new Unavailable())))
        expect(yield* stateOf("a")).toBe("open")
      }).pipe(provide()))

    it.effect("an uncounted failure neither counts nor resets the consecutive count", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const guard = breaker.protect("a", { isFailure: (e: Unavailable | BadRequest) => e._tag === "Unavailable" })
        yield* Effect.exit(guard(Effect.fail(new Unavailable())))
        yield* Effect.exit(guard(Effect.fail(new Unavailable())))
        yield* Effect.exit(guard(Effect.fail(new BadRequest())))
        expect(yield* stateOf("a")).toBe("closed")
        yield* Effect.exit(guard(Effect.fail(new Unavailable())))
        expect(yield* stateOf("a")).toBe("open")
      }).pipe(provide()))

    it.effect("defects count by default", () =>
      Effect.gen(function*() {
        yield* calls("a", 3, Effect.dieMessage("bug"))
        expect(yield* stateOf("a")).toBe("open")
      }).pipe(provide()))

    it.effect("a call slower than the timeout fails as a timeout and counts", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const name = freshName("timeout")
        const guard = breaker.protect(name, { timeout: "1 second" })
        expect(yield* guard(Effect.as(Effect.sleep("999 millis"), "fast")).pipe(
          Effect.fork,
          Effect.tap(() => TestClock.adjust("999 millis")),
          Effect.flatMap(Fiber.join)
        )).toBe("fast")
        for (let i = 0; i < 3; i++) {
          const fiber = yield* Effect.fork(guard(Effect.sleep("5 seconds")))
          yield* TestClock.adjust("1 second")
          const error = yield* Effect.flip(Fiber.join(fiber))
          expect(error).toBeInstanceOf(CircuitTimeoutError)
          expect(error).toMatchObject({ name, timeout: Duration.seconds(1) })
        }
        expect(yield* stateOf(name)).toBe("open")
        expect(yield* countOf(metrics.timeouts, name)).toBe(3)
        expect(yield* countOf(metrics.failures, name)).toBe(3)
        expect(yield* countOf(metrics.successes, name)).toBe(1)
      }).pipe(provide()))
  })

  describe("isolate and reset", () => {
    it.effect("isolate holds the breaker open until reset", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const runs = yield* Ref.make(0)
        yield* breaker.isolate("a")
        yield* TestClock.adjust("1 hour")
        const [exit] = yield* calls("a", 1, counting(runs, Effect.succeed(1)))
        const error = openError(exit!)
        expect(Duration.isFinite(error.retryAfter)).toBe(false)
        expect(error.message).toContain("isolated")
        expect(yield* stateOf("a")).toBe("isolated")
        yield* breaker.reset("a")
        expect(yield* calls("a", 1, counting(runs, Effect.succeed(1)))).toEqual([Exit.succeed(1)])
        expect(yield* Ref.get(runs)).toBe(1)
      }).pipe(provide()))

    it.effect("reset closes an open breaker and forgets its failures", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        yield* calls("a", 3, boom)
        yield* breaker.reset("a")
        expect(yield* stateOf("a")).toBe("closed")
        yield* calls("a", 2, boom)
        expect(yield* stateOf("a")).toBe("closed")
      }).pipe(provide()))

    it.effect("a trial in flight when the breaker is isolated decides nothing", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("30 seconds")
        const trial = yield* Effect.fork(breaker.protect("a")(Effect.sleep("1 second")))
        yield* Effect.yieldNow()
        yield* breaker.isolate("a")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(trial)
        expect(yield* stateOf("a")).toBe("isolated")
      }).pipe(provide()))
  })

  describe("failure-rate policy", () => {
    const rate = { failureRate: { threshold: 0.5, window: 4, minimumCalls: 3 } }

    it.effect("judges no rate before the minimum number of calls", () =>
      Effect.gen(function*() {
        yield* calls("a", 2, boom)
        expect(yield* stateOf("a")).toBe("closed")
        yield* calls("a", 1, boom)
        expect(yield* stateOf("a")).toBe("open")
        expect((yield* (yield* CircuitBreaker.CircuitBreaker).status("a")).failures).toBe(3)
      }).pipe(provide(rate)))

    it.effect("opens when the rate over the window reaches the threshold, not on consecutive failures", () =>
      Effect.gen(function*() {
        const ok = Effect.succeed(1)
        yield* calls("a", 1, ok)
        yield* calls("a", 1, boom)
        yield* calls("a", 2, ok)
        // window [ok, boom, ok, ok]: 1 in 4
        expect(yield* stateOf("a")).toBe("closed")
        yield* calls("a", 1, boom)
        // window [boom, ok, ok, boom]: 2 in 4
        expect(yield* stateOf("a")).toBe("open")
      }).pipe(provide({ ...rate, threshold: 1 })))

    it.effect("old outcomes slide out of the window", () =>
      Effect.gen(function*() {
        const ok = Effect.succeed(1)
        yield* calls("a", 1, boom)
        yield* calls("a", 4, ok)
        // the first failure has slid out: [ok, ok, ok, ok]
        yield* calls("a", 1, boom)
        // [ok, ok, ok, boom]
        expect(yield* stateOf("a")).toBe("closed")
        expect((yield* (yield* CircuitBreaker.CircuitBreaker).status("a")).failures).toBe(1)
        yield* calls("a", 1, boom)
        expect(yield* stateOf("a")).toBe("open")
      }).pipe(provide(rate)))

    it.effect("starts a new window once the breaker closes again", () =>
      Effect.gen(function*() {
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("30 seconds")
        yield* calls("a", 1, Effect.succeed(1))
        expect(yield* stateOf("a")).toBe("closed")
        yield* calls("a", 2, boom)
        expect(yield* stateOf("a")).toBe("closed")
      }).pipe(provide(rate)))
  })

  describe("observability", () => {
    it.effect("streams every state change in order", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const changes = yield* breaker.subscribe
        const streamed = yield* Effect.fork(Stream.runCollect(Stream.take(breaker.changes, 7)))
        // the stream has subscribed once its fiber waits for the first change
        while ((yield* Fiber.status(streamed))._tag !== "Suspended") yield* Effect.yieldNow()
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("30 seconds")
        yield* calls("a", 1, boom)
        yield* TestClock.adjust("30 seconds")
        yield* calls("a", 1, Effect.succeed(1))
        yield* breaker.isolate("a")
        yield* breaker.reset("a")
        const seen = Array.from(yield* Queue.takeAll(changes))
        expect(seen.map((c) => [c.name, c.from, c.to, DateTime.toEpochMillis(c.at)])).toEqual([
          ["a", "closed", "open", 0],
          ["a", "open", "half_open", 30_000],
          ["a", "half_open", "open", 30_000],
          ["a", "open", "half_open", 60_000],
          ["a", "half_open", "closed", 60_000],
          ["a", "closed", "isolated", 60_000],
          ["a", "isolated", "closed", 60_000]
        ])
        expect(Chunk.toArray(yield* Fiber.join(streamed))).toEqual(seen)
      }).pipe(Effect.scoped, provide()))

    it.effect("counts calls, successes, failures, rejections and keeps the state gauge", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        const name = freshName("metrics")
        yield* calls(name, 1, Effect.succeed(1))
        expect(yield* gaugeOf(name)).toBe(0)
        yield* calls(name, 3, boom)
        expect(yield* gaugeOf(name)).toBe(2)
        yield* calls(name, 2, Effect.succeed(1))
        expect(yield* countOf(metrics.calls, name)).toBe(6)
        expect(yield* countOf(metrics.successes, name)).toBe(1)
        expect(yield* countOf(metrics.failures, name)).toBe(3)
        expect(yield* countOf(metrics.rejections, name)).toBe(2)
        expect(yield* countOf(metrics.timeouts, name)).toBe(0)
        yield* TestClock.adjust("30 seconds")
        const trial = yield* Effect.fork(breaker.protect(name)(Effect.sleep("1 second")))
        yield* Effect.yieldNow()
        expect(yield* gaugeOf(name)).toBe(1)
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(trial)
        expect(yield* gaugeOf(name)).toBe(0)
        yield* breaker.isolate(name)
        expect(yield* gaugeOf(name)).toBe(3)
      }).pipe(provide()))

    it.effect("snapshot reports every breaker, and encodes for /api/status", () =>
      Effect.gen(function*() {
        const breaker = yield* CircuitBreaker.CircuitBreaker
        yield* TestClock.adjust("1 second")
        yield* calls("b", 1, Effect.succeed(1))
        yield* calls("a", 3, boom)
        yield* TestClock.adjust("10 seconds")
        yield* breaker.isolate("c")
        expect((yield* breaker.status("never-used")).state).toBe("closed")
        const snapshot = yield* breaker.snapshot
        expect(snapshot.map((s) => [s.name, s.state, s.failures])).toEqual([
          ["a", "open", 3],
          ["b", "closed", 0],
          ["c", "isolated", 0]
        ])
        const encoded = yield* Schema.encode(Schema.Array(CircuitBreaker.Status))(snapshot)
        expect(encoded).toEqual([
          { name: "a", state: "open", failures: 3, opened_at: "1970-01-01T00:00:01.000Z", retry_after: 20, shared: false },
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
