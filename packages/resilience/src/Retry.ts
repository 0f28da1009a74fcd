/**
 * Retrying failed calls with exponential backoff and jitter, built on `Schedule`. It never retries a
 * `CircuitOpenError`, and it goes outside `protect`, so each retry is a call the breaker sees and counts:
 *
 * ```ts
 * breaker.protect("search")(callSearch).pipe(Retry.retry({ isTransient: (e) => e._tag === "Unavailable" }))
 * ```
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as Schedule from "effect/Schedule"
import { isCircuitOpenError } from "./CircuitBreakerError.js"

/** How to retry. */
export interface Options<E> {
  /** Attempts in all, the first included; defaults to 3. Values below 1 mean 1 (no retry). */
  readonly maxAttempts?: number | undefined
  /** The delay before the first retry; defaults to 100 milliseconds. */
  readonly base?: Duration.DurationInput | undefined
  /** Each retry waits `factor` times longer than the one before; defaults to 2. */
  readonly factor?: number | undefined
  /** No delay is longer than this, jitter included; defaults to 10 seconds. */
  readonly maxDelay?: Duration.DurationInput | undefined
  /** Scale each delay by a random factor in [0.8, 1.2] (or the given range); on by default. */
  readonly jitter?: boolean | { readonly min: number; readonly max: number } | undefined
  /** Which failures are worth another attempt; defaults to all. A `CircuitOpenError` never is. */
  readonly isTransient?: ((error: E) => boolean) | undefined
}

/** The retry schedule: its input is the failure, its output the delay before the next attempt. */
export const schedule = <E>(options: Options<E> = {}): Schedule.Schedule<Duration.Duration, E> => {
  const retries = Math.max(0, Math.floor((options.maxAttempts ?? 3) - 1)) || 0
  const maxDelay = Duration.decode(options.maxDelay ?? Duration.seconds(10))
  const jitter = options.jitter ?? true
  const isTransient = options.isTransient
  return Schedule.exponential(options.base ?? Duration.millis(100), options.factor ?? 2).pipe(
    jitter === false ? identity : Schedule.jitteredWith(jitter === true ? {} : jitter),
    Schedule.modifyDelay((_, delay) => Duration.min(delay, maxDelay)),
    Schedule.intersect(Schedule.recurs(retries)),
    Schedule.map(([delay]) => Duration.min(delay, maxDelay)),
    Schedule.whileInput((error: E) => !isCircuitOpenError(error) && (isTransient === undefined || isTransient(error)))
  )
}

/**
 * Retries `effect` by `schedule(options)`: only transient failures, never a `CircuitOpenError`, at most
 * `maxAttempts` attempts in all. The last failure is the one returned.
 */
export const retry = <E0 = unknown>(options?: Options<E0>) => {
  const policy = schedule(options)
  return <A, E extends E0, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.retry(effect, policy as Schedule.Schedule<Duration.Duration, E>)
}
