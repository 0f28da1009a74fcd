/**
 * What both kinds of breaker (in this process, and shared through a store) do alike around the state they keep:
 * metrics under a bounded set of labels, the change hub and its logs, which outcomes count, timeouts, rejections.
 */
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as Option from "effect/Option"
import type * as PubSub from "effect/PubSub"
import type { State, StateChange } from "../CircuitBreaker.js"
import { type CircuitOpenError, CircuitTimeoutError } from "../CircuitBreakerError.js"
import type * as Machine from "./machine.js"
import { rejected } from "./rejection.js"

/** The label every per-breaker metric carries. */
export const metricLabel = "breaker"

/** The label value of breakers past the label cap. */
export const otherLabel = "other"

/** The metric keys. */
export const keys = {
  calls: MetricKey.counter("sg_breaker_calls_total", {
    description: "calls through a circuit breaker",
    incremental: true
  }),
  successes: MetricKey.counter("sg_breaker_successes_total", {
    description: "calls through a circuit breaker that succeeded",
    incremental: true
  }),
  failures: MetricKey.counter("sg_breaker_failures_total", {
    description: "calls through a circuit breaker that failed and counted against it",
    incremental: true
  }),
  rejections: MetricKey.counter("sg_breaker_rejections_total", {
    description: "calls a circuit breaker rejected without running them",
    incremental: true
  }),
  timeouts: MetricKey.counter("sg_breaker_timeouts_total", {
    description: "calls through a circuit breaker that timed out",
    incremental: true
  }),
  state: MetricKey.gauge("sg_breaker_state", {
    description: "circuit breaker state: 0 closed, 1 half-open, 2 open, 3 isolated"
  }),
  transitions: MetricKey.counter("sg_breaker_transitions_total", {
    description: "circuit breaker state changes seen by this process, by breaker, from and to",
    incremental: true
  }),
  evictions: MetricKey.counter("sg_breaker_evictions_total", {
    description: "breakers this process forgot: idle for the idle timeout, or past the cap on breakers",
    incremental: true
  }),
  unlabeled: MetricKey.counter("sg_breaker_unlabeled_total", {
    description: "breakers whose metrics are counted under breaker=\"other\" because the cap on labels was reached",
    incremental: true
  })
}

/** How many distinct breaker names get metrics of their own in one layer; the rest count under `other`. */
export const labelCap = 1_000

const noTags: ReadonlyArray<never> = []

/** One breaker's metrics, their label built into the key, so an update finds its hook without a lookup. */
export interface BreakerMetrics {
  readonly label: string
  readonly calls: (n: number) => void
  readonly successes: (n: number) => void
  readonly failures: (n: number) => void
  readonly rejections: (n: number) => void
  readonly timeouts: (n: number) => void
  readonly state: (value: number) => void
}

const bind = <T extends MetricKeyType.MetricKeyType<number, unknown>>(key: MetricKey.MetricKey<T>, label: string) => {
  const metric = Metric.fromMetricKey<MetricKeyType.MetricKeyType<number, unknown>>(
    MetricKey.tagged(key, metricLabel, label)
  )
  return (value: number) => metric.unsafeUpdate(value, noTags)
}

const metricsOf = (label: string): BreakerMetrics => ({
  label,
  calls: bind(keys.calls, label),
  successes: bind(keys.successes, label),
  failures: bind(keys.failures, label),
  rejections: bind(keys.rejections, label),
  timeouts: bind(keys.timeouts, label),
  state: bind(keys.state, label)
})

/**
 * Hands out breakers' metrics: the first `cap` names get their own label, later ones share `other` (so per-tenant
 * names cannot grow the metric registry without end), counted in `sg_breaker_unlabeled_total`.
 */
export const makeLabels = (cap: number = labelCap) => {
  const labeled = new Set<string>()
  const unlabeled = Metric.fromMetricKey(keys.unlabeled)
  let other: BreakerMetrics | undefined
  return (name: string): BreakerMetrics => {
    if (labeled.has(name)) return metricsOf(name)
    if (labeled.size < cap) {
      labeled.add(name)
      return metricsOf(name)
    }
    unlabeled.unsafeUpdate(1, noTags)
    return other ??= metricsOf(otherLabel)
  }
}

/** Counts a forgotten breaker. */
export const evicted = (reason: "idle" | "capacity"): void =>
  Metric.fromMetricKey(MetricKey.tagged(keys.evictions, "reason", reason)).unsafeUpdate(1, noTags)

/** The state gauge's value of each state. */
export const stateGauge: Record<State, number> = { closed: 0, half_open: 1, open: 2, isolated: 3 }

/** The public state of a local machine state. */
export const publicState = (state: Machine.State): State =>
  state._tag === "Closed" ? "closed" : state._tag === "HalfOpen" ? "half_open" : state.isolated ? "isolated" : "open"

/**
 * Records a change of public state: gauge, transition counter, the change hub; returns the log line to emit.
 * `at` is in epoch milliseconds.
 */
export const announce = (
  hub: PubSub.PubSub<StateChange>,
  name: string,
  metrics: BreakerMetrics,
  from: State,
  to: State,
  at: number,
  failures: number,
  annotations?: Readonly<Record<string, unknown>>
): Effect.Effect<void> => {
  metrics.state(stateGauge[to])
  const key = MetricKey.tagged(MetricKey.tagged(keys.transitions, metricLabel, metrics.label), "from", from)
  Metric.fromMetricKey(MetricKey.tagged(key, "to", to)).unsafeUpdate(1, noTags)
  hub.unsafeOffer({ name, from, to, at: DateTime.unsafeMake(at) })
  const log = to === "open"
    ? Effect.logWarning(`circuit breaker "${name}" opened`)
    : to === "closed"
    ? Effect.logInfo(`circuit breaker "${name}" closed`)
    : Effect.logDebug(`circuit breaker "${name}" is ${to}`)
  return log.pipe(Effect.annotateLogs({ package: "@sg/resilience", breaker: name, from, to, failures, ...annotations }))
}

/** How a call ended, as the breaker counts it, and whether it was the breaker's own timeout. */
export interface Classified {
  readonly outcome: Machine.Outcome
  readonly timedOut: boolean
}

const counted: Classified = { outcome: "failure", timedOut: false }
const ignored: Classified = { outcome: "ignored", timedOut: false }
const timedOut: Classified = { outcome: "failure", timedOut: true }

/** Typed failures count when `isFailure` says so (all by default); defects always; interruptions never. */
export const classify = (
  name: string,
  cause: Cause.Cause<unknown>,
  isFailure: ((error: unknown) => boolean) | undefined
): Classified => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof CircuitTimeoutError && error.name === name) return timedOut
    if (isFailure === undefined) return counted
    try {
      return isFailure(error) ? counted : ignored
    } catch {
      return counted
    }
  }
  return Option.isSome(Cause.dieOption(cause)) ? counted : ignored
}

/**
 * Pairs the handlers of `matchCauseEffect`. They are passed as arguments, not written as object properties: under
 * esbuild's `keepNames` (tsx runs sg with it) a function written as a property is renamed, through
 * `Object.defineProperty`, each time it is created, which would more than double the cost of a guarded call.
 */
export const handlers = <A, E, B, E2, R2, C, E3, R3>(
  onSuccess: (a: A) => Effect.Effect<B, E2, R2>,
  onFailure: (cause: Cause.Cause<E>) => Effect.Effect<C, E3, R3>
) => ({ onSuccess, onFailure })

/** `effect` cut off after `timeout` with `CircuitTimeoutError` (as is when `timeout` is undefined). */
export const withTimeout = <A, E, R>(
  name: string,
  effect: Effect.Effect<A, E, R>,
  timeout: Duration.Duration | undefined
): Effect.Effect<A, E | CircuitTimeoutError, R> =>
  timeout === undefined ? effect : Effect.timeoutFail(effect, {
    duration: timeout,
    onTimeout: () =>
      new CircuitTimeoutError({
        name,
        timeout,
        message: `call through circuit breaker "${name}" timed out after ${Duration.format(timeout)}`
      })
  })

/** Counts and builds a rejection; `retryAfterMs` is `Infinity` for an isolated breaker. */
export const reject = (
  name: string,
  metrics: BreakerMetrics,
  retryAfterMs: number
): Effect.Effect<never, CircuitOpenError> => {
  metrics.rejections(1)
  // failCause, not fail: attaching the current span to the error would add a fiber step to every rejection.
  return Effect.failCause(Cause.fail(rejected(name, retryAfterMs)))
}
