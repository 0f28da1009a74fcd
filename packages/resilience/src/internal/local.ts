/**
 * A breaker whose state lives in this process: admission, trials and outcomes over `machine.ts`, announcing each
 * change of public state. The local layer is made of these; the shared layer falls back to them while its store is
 * out of reach, and keeps the breakers it must not share (the trace store's own) in them.
 */
import type * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as PubSub from "effect/PubSub"
import type { State, StateChange, Status } from "../CircuitBreaker.js"
import type { CircuitOpenError, CircuitTimeoutError } from "../CircuitBreakerError.js"
import * as Machine from "./machine.js"
import { announce, type BreakerMetrics, classify, handlers, publicState, reject, withTimeout } from "./shell.js"

/** One breaker kept in this process. */
export interface LocalBreaker {
  readonly name: string
  readonly policy: Machine.Policy
  readonly metrics: BreakerMetrics
  /** Read and replaced only inside synchronous sections: JS runs one at a time, so each read-modify-write is atomic. */
  state: Machine.State
  /** The public state last announced. */
  view: State
  seen: number
  activeAt: number
  /** Whether `state` decides (and its changes are announced); a shared breaker's is inactive until it falls back. */
  active: boolean
}

/** A new, closed breaker. */
export const makeBreaker = (name: string, policy: Machine.Policy, metrics: BreakerMetrics): LocalBreaker => {
  metrics.state(0)
  // Every series of the breaker exists from its first call on, at 0 until something happens.
  metrics.successes(0)
  metrics.failures(0)
  metrics.rejections(0)
  metrics.timeouts(0)
  return { name, policy, metrics, state: Machine.initial(policy), view: "closed", seen: 0, activeAt: 0, active: true }
}

/** Whether forgetting the breaker loses nothing: closed, or open or half-open with nothing pending and past due. */
export const evictable = (breaker: LocalBreaker, now: number): boolean => {
  const state = breaker.state
  if (state._tag === "Closed") return true
  return state._tag === "Open" ? !state.isolated && now >= state.until : state.admitted === 0
}

/** Whether trials are in flight. */
export const busy = (breaker: LocalBreaker): boolean => breaker.state._tag === "HalfOpen" && breaker.state.admitted > 0

/** The breaker's status; `shared` as the caller says. */
export const statusOf = (breaker: LocalBreaker, now: number, shared: boolean): Status => statusOfState(
  breaker.name,
  breaker.state,
  now,
  shared
)

/**
 * A status from a machine state. An open breaker whose cool-down is over admits a trial on its next call: it is
 * half-open already, and says so without waiting for that call.
 */
export const statusOfState = (name: string, state: Machine.State, now: number, shared: boolean): Status => ({
  name,
  state: state._tag === "Open" && !state.isolated && now >= state.until ? "half_open" : publicState(state),
  failures: Machine.failuresOf(state),
  openedAt: state._tag === "Closed" ? Option.none() : Option.some(DateTime.unsafeMake(state.openedAt)),
  retryAfter: Duration.millis(Machine.retryAfter(state, now)),
  shared
})

/** Guarding calls with local breakers, announcing changes on `hub`. */
export const make = (hub: PubSub.PubSub<StateChange>) => {
  /** Moves `breaker` to `next`; on a change of public state, announces it and returns the log to emit. */
  const moveTo = (breaker: LocalBreaker, next: Machine.State, now: number): Effect.Effect<void> | undefined => {
    breaker.state = next
    if (!breaker.active) return undefined
    const to = publicState(next)
    if (to === breaker.view) return undefined
    const from = breaker.view
    breaker.view = to
    return announce(hub, breaker.name, breaker.metrics, from, to, now, Machine.failuresOf(next))
  }

  /** Records how a call admitted under `generation` ended; returns the log effect of a state change, if any. */
  const settle = (
    breaker: LocalBreaker,
    clock: Clock.Clock,
    generation: number,
    outcome: Machine.Outcome
  ): Effect.Effect<void> | undefined => {
    const state = breaker.state
    if (outcome === "ignored" && state._tag === "Closed") return undefined
    if (outcome === "success" && state._tag === "Closed" && state.consecutive === 0 && state.window === undefined) {
      return undefined
    }
    const now = clock.unsafeCurrentTimeMillis()
    const next = Machine.complete(state, breaker.policy, now, generation, outcome)
    return next === state ? undefined : moveTo(breaker, next, now)
  }

  /** Runs an admitted call and records how it ended. */
  const observe = <A, E, R>(
    breaker: LocalBreaker,
    clock: Clock.Clock,
    generation: number,
    call: Effect.Effect<A, E, R>,
    isFailure: ((error: unknown) => boolean) | undefined
  ): Effect.Effect<A, E, R> =>
    Effect.matchCauseEffect(
      call,
      handlers(
        (a: A) => {
          breaker.metrics.successes(1)
          const log = settle(breaker, clock, generation, "success")
          return log === undefined ? Effect.succeed(a) : Effect.as(log, a)
        },
        (cause) => {
          const { outcome, timedOut } = classify(breaker.name, cause, isFailure)
          if (outcome === "failure") breaker.metrics.failures(1)
          if (timedOut) breaker.metrics.timeouts(1)
          const log = settle(breaker, clock, generation, outcome)
          return log === undefined ? Effect.failCause(cause) : Effect.zipRight(log, Effect.failCause(cause))
        }
      )
    )

  /** Guards `effect` with `breaker` (its call already counted). */
  const guard = <A, E, R>(
    breaker: LocalBreaker,
    clock: Clock.Clock,
    effect: Effect.Effect<A, E, R>,
    isFailure: ((error: unknown) => boolean) | undefined,
    timeout: Duration.Duration | undefined
  ): Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError, R> => {
    const state = breaker.state
    // Closed: nothing to hand back if the call is interrupted, so no uninterruptible region is needed.
    if (state._tag === "Closed") {
      return observe(breaker, clock, state.generation, withTimeout(breaker.name, effect, timeout), isFailure)
    }
    const now = clock.unsafeCurrentTimeMillis()
    if (Machine.admit(state, breaker.policy, now) === undefined) {
      return reject(breaker.name, breaker.metrics, Machine.retryAfter(state, now))
    }
    // A trial: take its slot and install the slot's release with no interruption in between.
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend((): Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError, R> => {
        const now = clock.unsafeCurrentTimeMillis()
        const next = Machine.admit(breaker.state, breaker.policy, now)
        if (next === undefined) return reject(breaker.name, breaker.metrics, Machine.retryAfter(breaker.state, now))
        const log = moveTo(breaker, next, now)
        const call = restore(withTimeout(breaker.name, effect, timeout))
        const observed = observe(breaker, clock, next.generation, call, isFailure)
        return log === undefined ? observed : Effect.zipRight(log, observed)
      })
    )
  }

  return { moveTo, guard }
}
