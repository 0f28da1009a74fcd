import { CircuitBreaker } from "@sg/resilience"
import { Data, Effect, Exit, Metric, MetricState, Ref } from "effect"

/** A failure the tests call transient. */
export class Unavailable extends Data.TaggedError("Unavailable")<{}> {}

/** A failure the tests do not count. */
export class BadRequest extends Data.TaggedError("BadRequest")<{}> {}

/** An effect that counts its runs in `runs` and then fails, dies or succeeds as told. */
export const counting = <A, E>(runs: Ref.Ref<number>, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.zipRight(Ref.update(runs, (n) => n + 1), effect)

/** Runs `n` calls of `effect` through the breaker `name`, one after another, and returns their exits. */
export const calls = <A, E>(name: string, n: number, effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const breaker = yield* CircuitBreaker.CircuitBreaker
    const exits: Array<Exit.Exit<A, unknown>> = []
    for (let i = 0; i < n; i++) exits.push(yield* Effect.exit(breaker.protect(name)(effect)))
    return exits
  })

/** The state of the breaker `name`. */
export const stateOf = (name: string) =>
  Effect.flatMap(CircuitBreaker.CircuitBreaker, (breaker) => breaker.status(name)).pipe(Effect.map((s) => s.state))

/** The count of one of the breaker `name`'s counters. */
export const countOf = (
  metric: Metric.Metric.Counter<number>,
  name: string
): Effect.Effect<number> =>
  Metric.value(Metric.tagged(metric, CircuitBreaker.metricLabel, name)).pipe(
    Effect.map((state: MetricState.MetricState.Counter<number>) => state.count)
  )

/** The value of the breaker `name`'s state gauge. */
export const gaugeOf = (name: string): Effect.Effect<number> =>
  Metric.value(Metric.tagged(CircuitBreaker.metrics.state, CircuitBreaker.metricLabel, name)).pipe(
    Effect.map((state: MetricState.MetricState.Gauge<number>) => state.value)
  )

/** How many `from` -> `to` changes of the breaker `name` this process counted. */
export const transitionsOf = (name: string, from: string, to: string): Effect.Effect<number> =>
  Metric.value(
    CircuitBreaker.metrics.transitions.pipe(
      Metric.tagged(CircuitBreaker.metricLabel, name),
      Metric.tagged("from", from),
      Metric.tagged("to", to)
    )
  ).pipe(Effect.map((state: MetricState.MetricState.Counter<number>) => state.count))

let unique = 0
/** A breaker name no other test uses, so the process-wide metrics start from zero for it. */
export const freshName = (prefix: string): string => `${prefix}-${++unique}-${Math.random().toString(36).slice(2, 8)}`
