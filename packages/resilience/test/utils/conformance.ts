import type { Vitest } from "@effect/vitest"
import { expect } from "@effect/vitest"
import { CircuitBreaker, CircuitOpenError, CircuitTimeoutError } from "@sg/resilience"
import {
  Cause,
  Chunk,
  DateTime,
  Deferred,
  Duration,
  Effect,
  Equal,
  Exit,
  Fiber,
  type Layer,
  Option,
  Queue,
  Ref,
  Schema,
  Stream
} from "effect"
import {
  BadRequest,
  calls,
  countOf,
  counting,
  freshName,
  gaugeOf,
  stateOf,
  transitionsOf,
  Unavailable
} from "./breaker.js"

/** A layer of breakers under test, and how time passes for it. */
export interface Backend<R> {
  /** The service with these options (a fresh instance each time). */
  readonly layer: (options?: CircuitBreaker.SharedOptions) => Layer.Layer<CircuitBreaker.CircuitBreaker, never, R>
  /** The cool-down the suite gives its breakers. */
  readonly cooldownMs: number
  /** Lets `ms` pass: `TestClock.adjust`, or a real sleep. */
  readonly advance: (ms: number) => Effect.Effect<void>
  /** Lets background work land (change feeds, reports): yields under `TestClock`, a short sleep in real time. */
  readonly settle: Effect.Effect<void>
  /** Whether time is exact (`TestClock`): deadlines are checked to the millisecond. */
  readonly exact: boolean
  /** What `status` says in `shared`. */
  readonly shared: boolean
}

const { metrics } = CircuitBreaker
const boom = Effect.fail(new Unavailable())

/** The `CircuitOpenError` an exit failed with. */
export const openError = <A>(exit: Exit.Exit<A, unknown>): CircuitOpenError => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure) || !(failure.value instanceof CircuitOpenError)) {
    throw new Error(`expected CircuitOpenError, got ${Cause.pretty(exit.cause)}`)
  }
  return failure.value
}

/** Settles until `condition` holds; dies naming `what` after 200 rounds. */
export const eventually = (settle: Effect.Effect<void>, condition: Effect.Effect<boolean>, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200; i++) {
      if (yield* condition) return
      yield* settle
    }
    return yield* Effect.dieMessage(`${what} did not happen`)
  })

/**
 * Every transition of a breaker, for any layer of the service: the local one and the shared ones pass the same
 * suite. Names are fresh in every test, so a store shared by a suite's tests does not matter.
 */
export const conformance = <R>(it: Vitest.MethodsNonLive<R, boolean>, backend: Backend<R>) => {
  const cd = backend.cooldownMs
  const provide = (options?: CircuitBreaker.SharedOptions) => Effect.provide(backend.layer(options))
  const withCooldown = (options: CircuitBreaker.SharedOptions = {}): CircuitBreaker.SharedOptions => ({
    cooldown: Duration.millis(cd),
    ...options
  })
  const pastCooldown = backend.advance(cd + (backend.exact ? 0 : 50))
  const retryAfterOf = (name: string) =>
    Effect.map(calls(name, 1, Effect.succeed(1)), ([exit]) => Duration.toMillis(openError(exit!).retryAfter))

  it.effect("opens on exactly the threshold, not before", () => {
    const a = freshName("threshold")
    return Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      yield* calls(a, 2, counting(runs, boom))
      expect(yield* stateOf(a)).toBe("closed")
      yield* calls(a, 1, counting(runs, boom))
      expect(yield* stateOf(a)).toBe("open")
      const [exit] = yield* calls(a, 1, counting(runs, Effect.succeed(1)))
      expect(openError(exit!).name).toBe(a)
      expect(yield* Ref.get(runs)).toBe(3)
    }).pipe(provide(withCooldown()))
  })

  it.effect("a success in between resets the consecutive count", () => {
    const a = freshName("reset-count")
    return Effect.gen(function*() {
      yield* calls(a, 2, boom)
      yield* calls(a, 1, Effect.succeed(1))
      yield* backend.settle
      yield* calls(a, 2, boom)
      expect(yield* stateOf(a)).toBe("closed")
      expect((yield* (yield* CircuitBreaker.CircuitBreaker).status(a)).failures).toBe(2)
      yield* calls(a, 1, boom)
      expect(yield* stateOf(a)).toBe("open")
    }).pipe(provide(withCooldown()))
  })

  it.effect("breakers are independent per name; a named policy applies to its breaker only", () => {
    const [a, b, fragile] = [freshName("a"), freshName("b"), freshName("fragile")]
    return Effect.gen(function*() {
      yield* calls(a, 3, boom)
      expect(yield* stateOf(a)).toBe("open")
      expect(yield* calls(b, 1, Effect.succeed("b"))).toEqual([Exit.succeed("b")])
      yield* calls(fragile, 1, boom)
      yield* calls(b, 1, boom)
      expect([yield* stateOf(fragile), yield* stateOf(b)]).toEqual(["open", "closed"])
    }).pipe(provide(withCooldown({ policies: { [fragile]: { threshold: 1 } } })))
  })

  it.effect("open: rejects at once, without running the call, with what is left of the cool-down", () => {
    const a = freshName("open")
    return Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      yield* calls(a, 3, boom)
      yield* backend.advance(cd / 4)
      const [exit] = yield* calls(a, 1, counting(runs, Effect.succeed(1)))
      const error = openError(exit!)
      const left = Duration.toMillis(error.retryAfter)
      if (backend.exact) expect(left).toBe(cd * 3 / 4)
      else {
        // Two clocks meet here (Node's timers, Redis TIME), each rounding to the millisecond: allow 2 ms between them.
        expect(left).toBeLessThanOrEqual(cd * 3 / 4 + 2)
        expect(left).toBeGreaterThan(cd / 4)
      }
      expect(error.message).toContain(`"${a}" is open`)
      expect(yield* Ref.get(runs)).toBe(0)
    }).pipe(provide(withCooldown()))
  })

  it.effect("turns half-open after the cool-down, and a successful trial closes it and forgets the failures", () => {
    const a = freshName("trial")
    return Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      yield* calls(a, 3, boom)
      if (backend.exact) {
        yield* backend.advance(cd - 1)
        expect(yield* retryAfterOf(a)).toBe(1)
        yield* backend.advance(1)
      } else {
        yield* backend.advance(cd / 2)
        expect(yield* retryAfterOf(a)).toBeGreaterThan(0)
        yield* backend.advance(cd / 2 + 50)
      }
      expect(yield* calls(a, 1, counting(runs, Effect.succeed(1)))).toEqual([Exit.succeed(1)])
      expect(yield* Ref.get(runs)).toBe(1)
      const status = yield* (yield* CircuitBreaker.CircuitBreaker).status(a)
      expect(status).toMatchObject({ state: "closed", failures: 0, openedAt: Option.none() })
      yield* calls(a, 2, boom)
      expect(yield* stateOf(a)).toBe("closed")
    }).pipe(provide(withCooldown()))
  })

  it.effect("a failed trial reopens for the same cool-down", () => {
    const a = freshName("reopen")
    return Effect.gen(function*() {
      yield* calls(a, 3, boom)
      yield* pastCooldown
      yield* calls(a, 1, boom)
      expect(yield* stateOf(a)).toBe("open")
      const left = yield* retryAfterOf(a)
      if (backend.exact) expect(left).toBe(cd)
      else expect(left).toBeGreaterThan(cd / 2)
      yield* pastCooldown
      expect(yield* calls(a, 1, Effect.succeed(1))).toEqual([Exit.succeed(1)])
    }).pipe(provide(withCooldown()))
  })

  it.effect("with backoff, each failed trial doubles the open time up to the cap; a success resets it", () => {
    const a = freshName("backoff")
    const slack = backend.exact ? 0 : cd / 4
    return Effect.gen(function*() {
      yield* calls(a, 3, boom)
      expect(yield* retryAfterOf(a)).toBeGreaterThan(cd - slack - 1)
      for (const factor of [2, 4, 4]) {
        yield* backend.advance((yield* retryAfterOf(a)) + (backend.exact ? 0 : 50))
        yield* calls(a, 1, boom)
        const left = yield* retryAfterOf(a)
        expect(left).toBeLessThanOrEqual(cd * factor)
        expect(left).toBeGreaterThan(cd * factor - slack - 1)
      }
      yield* backend.advance((yield* retryAfterOf(a)) + (backend.exact ? 0 : 50))
      yield* calls(a, 1, Effect.succeed(1))
      expect(yield* stateOf(a)).toBe("closed")
      yield* calls(a, 3, boom)
      expect(yield* retryAfterOf(a)).toBeLessThanOrEqual(cd)
    }).pipe(provide(withCooldown({ backoff: { factor: 2, max: Duration.millis(cd * 4) } })))
  })

  const concurrentTrials = (trials: number) => {
    const a = freshName("concurrent")
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const runs = yield* Ref.make(0)
      const gate = yield* Deferred.make<void>()
      yield* calls(a, 3, boom)
      yield* pastCooldown
      const fibers = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => Effect.fork(Effect.exit(breaker.protect(a)(counting(runs, Effect.as(Deferred.await(gate), i))))),
        { concurrency: "unbounded" }
      )
      yield* eventually(backend.settle, Effect.map(Ref.get(runs), (n) => n >= trials), `${trials} trials`)
      yield* backend.settle
      expect(yield* Ref.get(runs)).toBe(trials)
      expect(yield* stateOf(a)).toBe("half_open")
      yield* Deferred.succeed(gate, undefined)
      const exits = yield* Effect.forEach(fibers, Fiber.join)
      const rejections = exits.filter(Exit.isFailure).map(openError)
      expect(rejections).toHaveLength(100 - trials)
      expect(rejections.every((e) => Equal.equals(e.retryAfter, Duration.zero))).toBe(true)
      expect(exits.filter(Exit.isSuccess)).toHaveLength(trials)
      expect(yield* stateOf(a)).toBe("closed")
    })
  }

  it.effect("half-open: admits only one of 100 concurrent callers by default", () =>
    concurrentTrials(1).pipe(provide(withCooldown())))

  it.effect("half-open: admits only N of 100 concurrent callers, and closes when all N succeed", () =>
    concurrentTrials(3).pipe(provide(withCooldown({ halfOpenTrials: 3 }))))

  it.effect("stays half-open until every trial has succeeded; one failure reopens", () => {
    const a = freshName("two-trials")
    return Effect.gen(function*() {
      yield* calls(a, 3, boom)
      yield* pastCooldown
      yield* calls(a, 1, Effect.succeed(1))
      expect(yield* stateOf(a)).toBe("half_open")
      yield* calls(a, 1, boom)
      expect(yield* stateOf(a)).toBe("open")
    }).pipe(provide(withCooldown({ halfOpenTrials: 2 })))
  })

  it.effect("an interrupted trial gives its slot back without deciding", () => {
    const a = freshName("interrupted-trial")
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const started = yield* Deferred.make<void>()
      yield* calls(a, 3, boom)
      yield* pastCooldown
      const hold = Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
      const trial = yield* Effect.fork(breaker.protect(a)(hold))
      yield* Deferred.await(started)
      const [busy] = yield* calls(a, 1, Effect.succeed(1))
      expect(openError(busy!).retryAfter).toEqual(Duration.zero)
      yield* Fiber.interrupt(trial)
      expect(yield* stateOf(a)).toBe("half_open")
      expect(yield* calls(a, 1, Effect.succeed(2))).toEqual([Exit.succeed(2)])
      expect(yield* stateOf(a)).toBe("closed")
    }).pipe(provide(withCooldown()))
  })

  it.effect("calls admitted while closed that end while half-open decide nothing", () => {
    const a = freshName("stale")
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const [slowGate, lateGate, trialGate, trialStarted] = yield* Effect.all([
        Deferred.make<void>(),
        Deferred.make<void>(),
        Deferred.make<void>(),
        Deferred.make<void>()
      ])
      const slow = yield* Effect.fork(breaker.protect(a)(Deferred.await(slowGate)))
      const late = yield* Effect.fork(breaker.protect(a)(Effect.zipRight(Deferred.await(lateGate), boom)))
      yield* Effect.yieldNow()
      yield* calls(a, 3, boom)
      yield* pastCooldown
      const trial = yield* Effect.fork(
        breaker.protect(a)(Effect.zipRight(Deferred.succeed(trialStarted, undefined), Deferred.await(trialGate)))
      )
      yield* Deferred.await(trialStarted)
      yield* Deferred.succeed(slowGate, undefined)
      yield* Fiber.join(slow)
      yield* Deferred.succeed(lateGate, undefined)
      yield* Fiber.await(late)
      yield* backend.settle
      expect(yield* stateOf(a)).toBe("half_open")
      yield* Deferred.succeed(trialGate, undefined)
      yield* Fiber.join(trial)
      expect(yield* stateOf(a)).toBe("closed")
    }).pipe(provide(withCooldown()))
  })

  it.effect("interruption never counts; defects do", () => {
    const [a, b] = [freshName("interrupted"), freshName("defect")]
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      for (let i = 0; i < 5; i++) {
        const fiber = yield* Effect.fork(breaker.protect(a)(Effect.never))
        yield* Effect.yieldNow()
        yield* Fiber.interrupt(fiber)
      }
      expect(yield* stateOf(a)).toBe("closed")
      expect((yield* breaker.status(a)).failures).toBe(0)
      expect(yield* countOf(metrics.calls, a)).toBe(5)
      expect(yield* countOf(metrics.failures, a)).toBe(0)
      yield* calls(b, 3, Effect.dieMessage("bug"))
      expect(yield* stateOf(b)).toBe("open")
    }).pipe(provide(withCooldown()))
  })

  it.effect("the failure predicate decides which typed failures count; an uncounted one resets nothing", () => {
    const a = freshName("predicate")
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const guard = breaker.protect(a, { isFailure: (e: Unavailable | BadRequest) => e._tag === "Unavailable" })
      for (let i = 0; i < 5; i++) yield* Effect.exit(guard(Effect.fail(new BadRequest())))
      expect(yield* stateOf(a)).toBe("closed")
      yield* Effect.exit(guard(Effect.fail(new Unavailable())))
      yield* Effect.exit(guard(Effect.fail(new Unavailable())))
      yield* Effect.exit(guard(Effect.fail(new BadRequest())))
      expect(yield* stateOf(a)).toBe("closed")
      yield* Effect.exit(guard(Effect.fail(new Unavailable())))
      expect(yield* stateOf(a)).toBe("open")
    }).pipe(provide(withCooldown()))
  })

  it.effect("a call slower than the timeout fails as a timeout and counts", () => {
    const a = freshName("timeout")
    const limit = backend.exact ? 1_000 : 100
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const guard = breaker.protect(a, { timeout: Duration.millis(limit) })
      expect(yield* guard(Effect.succeed("fast"))).toBe("fast")
      for (let i = 0; i < 3; i++) {
        const fiber = yield* Effect.fork(guard(Effect.sleep(limit * 5)))
        yield* Effect.yieldNow()
        yield* backend.advance(limit)
        const error = yield* Effect.flip(Fiber.join(fiber))
        expect(error).toBeInstanceOf(CircuitTimeoutError)
        expect(error).toMatchObject({ name: a, timeout: Duration.millis(limit) })
      }
      expect(yield* stateOf(a)).toBe("open")
      expect(yield* countOf(metrics.timeouts, a)).toBe(3)
      expect(yield* countOf(metrics.failures, a)).toBe(3)
      expect(yield* countOf(metrics.successes, a)).toBe(1)
    }).pipe(provide(withCooldown()))
  })

  it.effect("openFor opens a closed breaker for the given time, then a trial decides", () => {
    const a = freshName("open-for")
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const runs = yield* Ref.make(0)
      yield* breaker.openFor(a, Duration.millis(cd * 2))
      yield* backend.settle
      expect(yield* stateOf(a)).toBe("open")
      const left = yield* retryAfterOf(a)
      expect(left).toBeLessThanOrEqual(cd * 2)
      expect(left).toBeGreaterThan(cd)
      yield* backend.advance(cd * 2 + (backend.exact ? 0 : 50))
      expect(yield* calls(a, 1, counting(runs, Effect.succeed(1)))).toEqual([Exit.succeed(1)])
      yield* backend.settle
      expect(yield* stateOf(a)).toBe("closed")
      expect(yield* Ref.get(runs)).toBe(1)
    }).pipe(provide(withCooldown()))
  })

  it.effect("openFor extends an open breaker's cool-down, never shortens it, and leaves an isolated one isolated", () => {
    const [a, b, c] = [freshName("open-for-open"), freshName("open-for-isolated"), freshName("open-for-zero")]
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      yield* calls(a, 3, boom)
      yield* breaker.openFor(a, Duration.millis(cd / 4))
      yield* backend.settle
      expect(yield* retryAfterOf(a)).toBeGreaterThan(cd / 2)
      yield* breaker.openFor(a, Duration.millis(cd * 3))
      yield* backend.settle
      expect(yield* retryAfterOf(a)).toBeGreaterThan(cd * 2)
      expect((yield* breaker.status(a)).failures).toBe(3)
      yield* breaker.isolate(b)
      yield* breaker.openFor(b, Duration.millis(cd))
      yield* backend.settle
      expect(yield* stateOf(b)).toBe("isolated")
      yield* breaker.openFor(c, Duration.zero)
      yield* breaker.openFor(c, Duration.infinity)
      expect(yield* stateOf(c)).toBe("closed")
    }).pipe(provide(withCooldown()))
  })

  it.effect("isolate holds the breaker open until reset; reset closes and forgets", () => {
    const [a, b] = [freshName("isolate"), freshName("reset")]
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const runs = yield* Ref.make(0)
      yield* breaker.isolate(a)
      yield* backend.advance(cd * 3)
      const [exit] = yield* calls(a, 1, counting(runs, Effect.succeed(1)))
      const error = openError(exit!)
      expect(Duration.isFinite(error.retryAfter)).toBe(false)
      expect(error.message).toContain("isolated")
      expect(yield* stateOf(a)).toBe("isolated")
      yield* breaker.reset(a)
      expect(yield* calls(a, 1, counting(runs, Effect.succeed(1)))).toEqual([Exit.succeed(1)])
      expect(yield* Ref.get(runs)).toBe(1)
      yield* calls(b, 3, boom)
      yield* breaker.reset(b)
      expect(yield* stateOf(b)).toBe("closed")
      yield* calls(b, 2, boom)
      expect(yield* stateOf(b)).toBe("closed")
    }).pipe(provide(withCooldown()))
  })

  it.effect("a trial in flight when the breaker is isolated decides nothing", () => {
    const a = freshName("isolated-trial")
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const [gate, started] = yield* Effect.all([Deferred.make<void>(), Deferred.make<void>()])
      yield* calls(a, 3, boom)
      yield* pastCooldown
      const trial = yield* Effect.fork(
        breaker.protect(a)(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)))
      )
      yield* Deferred.await(started)
      yield* breaker.isolate(a)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(trial)
      expect(yield* stateOf(a)).toBe("isolated")
    }).pipe(provide(withCooldown()))
  })

  const rate = { failureRate: { threshold: 0.5, window: 4, minimumCalls: 3 } }

  it.effect("failure rate: no verdict before the minimum number of calls", () => {
    const a = freshName("rate-minimum")
    return Effect.gen(function*() {
      yield* calls(a, 2, boom)
      expect(yield* stateOf(a)).toBe("closed")
      yield* calls(a, 1, boom)
      expect(yield* stateOf(a)).toBe("open")
      expect((yield* (yield* CircuitBreaker.CircuitBreaker).status(a)).failures).toBe(3)
    }).pipe(provide(withCooldown(rate)))
  })

  it.effect("failure rate: opens when the rate over the window reaches the threshold, consecutive or not", () => {
    const a = freshName("rate")
    return Effect.gen(function*() {
      const ok = Effect.succeed(1)
      yield* calls(a, 1, ok)
      yield* calls(a, 1, boom)
      yield* calls(a, 2, ok)
      // window [ok, boom, ok, ok]: 1 in 4
      expect(yield* stateOf(a)).toBe("closed")
      yield* calls(a, 1, boom)
      // window [boom, ok, ok, boom]: 2 in 4
      expect(yield* stateOf(a)).toBe("open")
    }).pipe(provide(withCooldown({ ...rate, threshold: 1 })))
  })

  it.effect("failure rate: old outcomes slide out of the window; a new window once it closes again", () => {
    const [a, b] = [freshName("rate-slide"), freshName("rate-new")]
    return Effect.gen(function*() {
      const ok = Effect.succeed(1)
      yield* calls(a, 1, boom)
      yield* calls(a, 4, ok)
      // the first failure has slid out: [ok, ok, ok, ok], then [ok, ok, ok, boom]
      yield* calls(a, 1, boom)
      expect(yield* stateOf(a)).toBe("closed")
      expect((yield* (yield* CircuitBreaker.CircuitBreaker).status(a)).failures).toBe(1)
      yield* calls(a, 1, boom)
      expect(yield* stateOf(a)).toBe("open")
      yield* calls(b, 3, boom)
      yield* pastCooldown
      yield* calls(b, 1, ok)
      expect(yield* stateOf(b)).toBe("closed")
      yield* calls(b, 2, boom)
      expect(yield* stateOf(b)).toBe("closed")
    }).pipe(provide(withCooldown(rate)))
  })

  it.effect("streams every state change in order", () => {
    const a = freshName("changes")
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const changes = yield* breaker.subscribe
      const streamed = yield* Effect.fork(Stream.runCollect(Stream.take(breaker.changes, 7)))
      // the stream has subscribed once its fiber waits for the first change
      while ((yield* Fiber.status(streamed))._tag !== "Suspended") yield* Effect.yieldNow()
      const start = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      yield* calls(a, 3, boom)
      yield* pastCooldown
      yield* calls(a, 1, boom)
      yield* pastCooldown
      yield* calls(a, 1, Effect.succeed(1))
      yield* breaker.isolate(a)
      yield* breaker.reset(a)
      yield* backend.settle
      const seen = Array.from(yield* Queue.takeAll(changes)).filter((c) => c.name === a)
      expect(seen.map((c) => [c.from, c.to])).toEqual([
        ["closed", "open"],
        ["open", "half_open"],
        ["half_open", "open"],
        ["open", "half_open"],
        ["half_open", "closed"],
        ["closed", "isolated"],
        ["isolated", "closed"]
      ])
      if (backend.exact) {
        const offsets = seen.map((c) => DateTime.toEpochMillis(c.at) - start)
        expect(offsets).toEqual([0, cd, cd, 2 * cd, 2 * cd, 2 * cd, 2 * cd])
      }
      expect(Chunk.toArray(yield* Fiber.join(streamed))).toEqual(seen)
    }).pipe(Effect.scoped, provide(withCooldown()))
  })

  it.effect("counts calls, successes, failures, rejections, transitions and keeps the state gauge", () => {
    const name = freshName("metrics")
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const transitions = (from: string, to: string) => transitionsOf(name, from, to)
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
      expect(yield* transitions("closed", "open")).toBe(1)
      yield* pastCooldown
      const [gate, started] = yield* Effect.all([Deferred.make<void>(), Deferred.make<void>()])
      const trial = yield* Effect.fork(
        breaker.protect(name)(Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(gate)))
      )
      yield* Deferred.await(started)
      expect(yield* gaugeOf(name)).toBe(1)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(trial)
      expect(yield* gaugeOf(name)).toBe(0)
      expect(yield* transitions("open", "half_open")).toBe(1)
      expect(yield* transitions("half_open", "closed")).toBe(1)
      yield* breaker.isolate(name)
      expect(yield* gaugeOf(name)).toBe(3)
      expect(yield* transitions("closed", "isolated")).toBe(1)
    }).pipe(provide(withCooldown()))
  })

  it.effect("snapshot reports every breaker used, and encodes for /api/status", () => {
    const [a, b, c] = [freshName("snap-a"), freshName("snap-b"), freshName("snap-c")]
    return Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      yield* calls(b, 1, Effect.succeed(1))
      yield* calls(a, 3, boom)
      yield* backend.advance(cd / 4)
      yield* breaker.isolate(c)
      expect((yield* breaker.status(freshName("never-used"))).state).toBe("closed")
      const snapshot = yield* breaker.snapshot
      expect(snapshot.map((s) => [s.name, s.state, s.failures, s.shared])).toEqual([
        [a, "open", 3, backend.shared],
        [b, "closed", 0, backend.shared],
        [c, "isolated", 0, backend.shared]
      ])
      const encoded = yield* Schema.encode(Schema.Array(CircuitBreaker.Status))(snapshot)
      expect(encoded.map((s) => [s.name, s.retry_after === null, s.opened_at === null])).toEqual([
        [a, false, false],
        [b, false, true],
        [c, true, false]
      ])
      expect(encoded[0]!.retry_after).toBeGreaterThan(0)
      expect(encoded[0]!.retry_after).toBeLessThanOrEqual((cd * 3 / 4 + (backend.exact ? 0 : 2)) / 1000)
      expect(yield* Schema.decodeUnknown(Schema.Array(CircuitBreaker.Status))(encoded)).toEqual(snapshot)
    }).pipe(provide(withCooldown()))
  })
}
