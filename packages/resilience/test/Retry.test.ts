import { describe, expect, it } from "@effect/vitest"
import { CircuitBreaker, CircuitOpenError, Retry } from "@sg/resilience"
import { Clock, Effect, Fiber, Ref, TestClock } from "effect"
import { BadRequest, countOf, freshName, Unavailable } from "./utils/breaker.js"

/** An effect that records the time of each attempt and fails the first `failures` of them with `error`. */
const flaky = <E>(attempts: Ref.Ref<Array<number>>, failures: number, error: E) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const seen = yield* Ref.updateAndGet(attempts, (times) => [...times, now])
    if (seen.length <= failures) return yield* Effect.fail(error)
    return seen.length
  })

/** Runs `effect` in a fiber and moves the test clock on a minute, which wakes every sleep due on the way in order. */
const drive = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust("1 minute")
    return yield* Fiber.join(fiber)
  })

describe("Retry", () => {
  it.effect("retries transient failures with exponential backoff", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make<Array<number>>([])
      const result = yield* drive(
        flaky(attempts, 3, new Unavailable()).pipe(Retry.retry({ maxAttempts: 5, jitter: false }))
      )
      expect(result).toBe(4)
      expect(yield* Ref.get(attempts)).toEqual([0, 100, 300, 700])
    }))

  it.effect("gives up after maxAttempts and returns the last failure", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make<Array<number>>([])
      const error = yield* drive(
        Effect.flip(flaky(attempts, 10, new Unavailable()).pipe(Retry.retry({ maxAttempts: 3, jitter: false })))
      )
      expect(error).toBeInstanceOf(Unavailable)
      expect(yield* Ref.get(attempts)).toEqual([0, 100, 300])
    }))

  it.effect("caps each delay at maxDelay", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make<Array<number>>([])
      yield* drive(
        flaky(attempts, 4, new Unavailable()).pipe(
          Retry.retry({ maxAttempts: 5, base: "1 second", factor: 10, maxDelay: "2 seconds", jitter: false })
        )
      )
      expect(yield* Ref.get(attempts)).toEqual([0, 1000, 3000, 5000, 7000])
    }))

  it.effect("jitter keeps each delay within its range", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make<Array<number>>([])
      const fiber = yield* Effect.fork(flaky(attempts, 1, new Unavailable()).pipe(Retry.retry({ base: "1 second" })))
      yield* TestClock.adjust("799 millis")
      expect(yield* Ref.get(attempts)).toHaveLength(1)
      yield* TestClock.adjust("401 millis")
      expect(yield* Fiber.join(fiber)).toBe(2)
      const [, second] = yield* Ref.get(attempts)
      expect(second).toBeGreaterThanOrEqual(800)
      expect(second).toBeLessThanOrEqual(1200)
    }))

  it.effect("does not retry a failure the predicate does not call transient", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make<Array<number>>([])
      const error = yield* Effect.flip(
        flaky(attempts, 5, new BadRequest()).pipe(
          Retry.retry({ isTransient: (e: BadRequest | Unavailable) => e._tag === "Unavailable" })
        )
      )
      expect(error).toBeInstanceOf(BadRequest)
      expect(yield* Ref.get(attempts)).toEqual([0])
    }))

  it.effect("never retries a CircuitOpenError", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const name = freshName("retry-open")
      yield* breaker.isolate(name)
      const attempts = yield* Ref.make<Array<number>>([])
      const error = yield* Effect.flip(
        breaker.protect(name)(flaky(attempts, 0, new Unavailable())).pipe(Retry.retry({ maxAttempts: 5 }))
      )
      expect(error).toBeInstanceOf(CircuitOpenError)
      expect(yield* countOf(CircuitBreaker.metrics.calls, name)).toBe(1)
      expect(yield* Ref.get(attempts)).toEqual([])
    }).pipe(Effect.provide(CircuitBreaker.layer())))

  it.effect("each retry is a call the breaker counts; once it opens the retries stop", () =>
    Effect.gen(function*() {
      const breaker = yield* CircuitBreaker.CircuitBreaker
      const name = freshName("retry-counts")
      const attempts = yield* Ref.make<Array<number>>([])
      const error = yield* drive(Effect.flip(
        breaker.protect(name)(flaky(attempts, 10, new Unavailable())).pipe(
          Retry.retry({ maxAttempts: 6, jitter: false })
        )
      ))
      expect(error).toBeInstanceOf(CircuitOpenError)
      expect(yield* Ref.get(attempts)).toEqual([0, 100, 300])
      expect(yield* countOf(CircuitBreaker.metrics.calls, name)).toBe(4)
      expect(yield* countOf(CircuitBreaker.metrics.failures, name)).toBe(3)
      expect(yield* countOf(CircuitBreaker.metrics.rejections, name)).toBe(1)
    }).pipe(Effect.provide(CircuitBreaker.layer())))
})
