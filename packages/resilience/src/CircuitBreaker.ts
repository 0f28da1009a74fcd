/**
 * Named circuit breakers: `protect(name)(effect)` runs `effect` through the breaker `name`, which opens after
 * repeated failures and then rejects calls at once with `CircuitOpenError` until a trial call after its cool-down
 * succeeds. Breakers live in this process; all time comes from `Clock`, so `TestClock` drives them.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as ConfigError from "effect/ConfigError"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import type * as MetricKeyType from "effect/MetricKeyType"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as BreakerPolicy from "./BreakerPolicy.js"
import { type CircuitOpenError, CircuitTimeoutError, type InvalidBreakerPolicy } from "./CircuitBreakerError.js"
import * as Machine from "./internal/machine.js"
import { rejected } from "./internal/rejection.js"

/** A breaker's state as observers see it; `isolated` is held open by `isolate` until `reset`. */
export const State = Schema.Literal("closed", "open", "half_open", "isolated")

/** A breaker's state as observers see it. */
export type State = typeof State.Type

/** One state change of one breaker, as `changes` streams them. */
export const StateChange = Schema.Struct({
  name: Schema.String,
  from: State,
  to: State,
  at: Schema.DateTimeUtc
})

/** One state change of one breaker. */
export interface StateChange extends Schema.Schema.Type<typeof StateChange> {}

/** What is left of a cool-down: seconds when encoded, `null` for an isolated breaker (no end). */
const RetryAfter = Schema.transform(Schema.NullOr(Schema.NonNegative), Schema.DurationFromSelf, {
  strict: true,
  decode: (seconds) => seconds === null ? Duration.infinity : Duration.millis(seconds * 1000),
  encode: (duration) => Duration.isFinite(duration) ? Duration.toMillis(duration) / 1000 : null
})

/**
 * One breaker's status for `/api/status`; encoded with snake_case keys
 * (`{ name, state, failures, opened_at, retry_after }`, `retry_after` in seconds).
 */
export const Status = Schema.Struct({
  name: Schema.String,
  state: State,
  /** Counted failures: consecutive (or in the window) while closed, since the breaker last closed otherwise. */
  failures: Schema.NonNegativeInt,
  openedAt: Schema.OptionFromNullOr(Schema.DateTimeUtc).pipe(Schema.propertySignature, Schema.fromKey("opened_at")),
  retryAfter: RetryAfter.pipe(Schema.propertySignature, Schema.fromKey("retry_after"))
})

/** One breaker's status. */
export interface Status extends Schema.Schema.Type<typeof Status> {}

/** Per-call options of `protect`. */
export interface ProtectOptions<E> {
  /** Whether a typed failure counts against the breaker; defaults to all. Defects always count, interruptions never. */
  readonly isFailure?: ((error: E) => boolean) | undefined
  /** A call slower than this is interrupted and fails with `CircuitTimeoutError`, which counts. */
  readonly timeout?: Duration.DurationInput | undefined
}

/** Named circuit breakers. */
export interface Service {
  /**
   * Guards `effect` with the breaker `name` (created on first use from the layer's policy for that name, or its
   * defaults). While the breaker is open the effect is not run and the call fails with `CircuitOpenError`.
   */
  readonly protect: {
    <E0 = unknown>(name: string, options: ProtectOptions<E0> & { readonly timeout: Duration.DurationInput }): <
      A,
      E extends E0,
      R
    >(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError, R>
    <E0 = unknown>(name: string, options?: ProtectOptions<E0> & { readonly timeout?: undefined }): <A, E extends E0, R>(
      effect: Effect.Effect<A, E, R>
    ) => Effect.Effect<A, E | CircuitOpenError, R>
  }
  /** Holds the breaker open, rejecting every call, until `reset`. */
  readonly isolate: (name: string) => Effect.Effect<void>
  /** Closes the breaker and forgets its failures (and any isolation). */
  readonly reset: (name: string) => Effect.Effect<void>
  /** The status of one breaker (closed, if it was never used; asking does not create it). */
  readonly status: (name: string) => Effect.Effect<Status>
  /** The status of every breaker used so far, by name. */
  readonly snapshot: Effect.Effect<ReadonlyArray<Status>>
  /** Every state change of every breaker, from the moment the stream is run. */
  readonly changes: Stream.Stream<StateChange>
  /** A subscription to the state changes, open from now until the scope closes. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<StateChange>, never, Scope.Scope>
}

/** Named circuit breakers, per process. */
export class CircuitBreaker extends Context.Tag("@sg/resilience/CircuitBreaker")<CircuitBreaker, Service>() {}

const keys = {
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
    description: "circuit breaker state changes, by breaker, from and to (closed, open, half_open, isolated)",
    incremental: true
  })
}

/** The label every breaker metric carries: `breaker=<name>`. */
export const metricLabel = "breaker"

/**
 * The breakers' metrics, each tagged `breaker=<name>` (read one with
 * `Metric.value(Metric.tagged(metrics.calls, metricLabel, name))`). `calls` counts every call, rejected or not;
 * `failures` the counted ones, timeouts included; `state` is 0 closed, 1 half-open, 2 open, 3 isolated;
 * `transitions` counts state changes, tagged `from` and `to` as well.
 */
export const metrics = {
  calls: Metric.fromMetricKey(keys.calls),
  successes: Metric.fromMetricKey(keys.successes),
  failures: Metric.fromMetricKey(keys.failures),
  rejections: Metric.fromMetricKey(keys.rejections),
  timeouts: Metric.fromMetricKey(keys.timeouts),
  state: Metric.fromMetricKey(keys.state),
  transitions: Metric.fromMetricKey(keys.transitions)
} as const

/**
 * One breaker's metrics, their label built into the key, so an update finds its hook without a lookup. Fiber-level
 * metric tags (`Effect.tagMetrics`) are not added to these.
 */
const breakerMetrics = (name: string) => {
  const bind = <T extends MetricKeyType.MetricKeyType<number, unknown>>(key: MetricKey.MetricKey<T>) => {
    const metric = Metric.fromMetricKey<MetricKeyType.MetricKeyType<number, unknown>>(
      MetricKey.tagged(key, metricLabel, name)
    )
    return (value: number) => metric.unsafeUpdate(value, noTags)
  }
  return {
    calls: bind(keys.calls),
    successes: bind(keys.successes),
    failures: bind(keys.failures),
    rejections: bind(keys.rejections),
    timeouts: bind(keys.timeouts),
    state: bind(keys.state)
  }
}
const noTags: ReadonlyArray<never> = []

const stateGauge: Record<State, number> = { closed: 0, half_open: 1, open: 2, isolated: 3 }

const publicState = (state: Machine.State): State =>
  state._tag === "Closed" ? "closed" : state._tag === "HalfOpen" ? "half_open" : state.isolated ? "isolated" : "open"

interface Breaker {
  readonly name: string
  readonly policy: Machine.Policy
  /** Read and replaced only inside synchronous sections: JS runs one at a time, so each read-modify-write is atomic. */
  state: Machine.State
  readonly metrics: ReturnType<typeof breakerMetrics>
}

const classify = (
  name: string,
  cause: Cause.Cause<unknown>,
  isFailure: ((error: unknown) => boolean) | undefined
): { readonly outcome: Machine.Outcome; readonly timedOut: boolean } => {
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
const handlers = <A, E, B, E2, R2, C, E3, R3>(
  onSuccess: (a: A) => Effect.Effect<B, E2, R2>,
  onFailure: (cause: Cause.Cause<E>) => Effect.Effect<C, E3, R3>
) => ({ onSuccess, onFailure })

const withTimeout = <A, E, R>(
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

const counted = { outcome: "failure", timedOut: false } as const
const ignored = { outcome: "ignored", timedOut: false } as const
const timedOut = { outcome: "failure", timedOut: true } as const

/** Builds the service; the change stream ends when the scope closes. */
export const make = (options?: BreakerPolicy.Options): Effect.Effect<Service, InvalidBreakerPolicy, Scope.Scope> =>
  Effect.gen(function*() {
    const policies = yield* Either.match(BreakerPolicy.validate(options), {
      onLeft: Effect.fail,
      onRight: Effect.succeed
    })
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<StateChange>(), PubSub.shutdown)
    const breakers = new Map<string, Breaker>()

    const breakerFor = (name: string): Breaker => {
      let breaker = breakers.get(name)
      if (breaker === undefined) {
        const policy = policies.named.get(name) ?? policies.defaults
        breaker = { name, policy, state: Machine.initial(policy), metrics: breakerMetrics(name) }
        breakers.set(name, breaker)
        breaker.metrics.state(stateGauge.closed)
        // Every series of the breaker exists from its first call on, at 0 until something happens.
        breaker.metrics.successes(0)
        breaker.metrics.failures(0)
        breaker.metrics.rejections(0)
        breaker.metrics.timeouts(0)
      }
      return breaker
    }

    /** Moves `breaker` to `next`; on a change of public state, updates the gauge, publishes, and says what to log. */
    const moveTo = (breaker: Breaker, next: Machine.State, now: number): Effect.Effect<void> | undefined => {
      const previous = breaker.state
      breaker.state = next
      const from = publicState(previous)
      const to = publicState(next)
      if (from === to) return undefined
      breaker.metrics.state(stateGauge[to])
      metrics.transitions.unsafeUpdate(1, [
        MetricLabel.make(metricLabel, breaker.name),
        MetricLabel.make("from", from),
        MetricLabel.make("to", to)
      ])
      hub.unsafeOffer({ name: breaker.name, from, to, at: DateTime.unsafeMake(now) })
      const annotations = { breaker: breaker.name, from, to, failures: Machine.failuresOf(next) }
      const log = to === "open"
        ? Effect.logWarning(`circuit breaker "${breaker.name}" opened`)
        : to === "closed"
        ? Effect.logInfo(`circuit breaker "${breaker.name}" closed`)
        : Effect.logDebug(`circuit breaker "${breaker.name}" is ${to}`)
      return log.pipe(Effect.annotateLogs({ package: "@sg/resilience", ...annotations }))
    }

    /** Records how a call admitted under `generation` ended; returns the log effect of a state change, if any. */
    const settle = (
      breaker: Breaker,
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

    const reject = (breaker: Breaker, now: number): Effect.Effect<never, CircuitOpenError> => {
      breaker.metrics.rejections(1)
      // failCause, not fail: attaching the current span to the error would add a fiber step to every rejection.
      return Effect.failCause(Cause.fail(rejected(breaker.name, Machine.retryAfter(breaker.state, now))))
    }

    /** Runs an admitted call and records how it ended. */
    const observe = <A, E, R>(
      breaker: Breaker,
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
          (cause: Cause.Cause<E>) => {
            const { outcome, timedOut } = classify(breaker.name, cause, isFailure)
            if (outcome === "failure") breaker.metrics.failures(1)
            if (timedOut) breaker.metrics.timeouts(1)
            const log = settle(breaker, clock, generation, outcome)
            return log === undefined ? Effect.failCause(cause) : Effect.zipRight(log, Effect.failCause(cause))
          }
        )
      )

    const guard = <A, E, R>(
      name: string,
      effect: Effect.Effect<A, E, R>,
      isFailure: ((error: unknown) => boolean) | undefined,
      timeout: Duration.Duration | undefined
    ): Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError, R> =>
      Effect.clockWith((clock): Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError, R> => {
        const breaker = breakerFor(name)
        breaker.metrics.calls(1)
        const state = breaker.state
        // Closed: nothing to hand back if the call is interrupted, so no uninterruptible region is needed.
        if (state._tag === "Closed") {
          return observe(breaker, clock, state.generation, withTimeout(name, effect, timeout), isFailure)
        }
        const now = clock.unsafeCurrentTimeMillis()
        if (Machine.admit(state, breaker.policy, now) === undefined) return reject(breaker, now)
        // A trial: take its slot and install the slot's release with no interruption in between.
        return Effect.uninterruptibleMask((restore) =>
          Effect.suspend((): Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError, R> => {
            const now = clock.unsafeCurrentTimeMillis()
            const next = Machine.admit(breaker.state, breaker.policy, now)
            if (next === undefined) return reject(breaker, now)
            const log = moveTo(breaker, next, now)
            const call = restore(withTimeout(name, effect, timeout))
            const observed = observe(breaker, clock, next.generation, call, isFailure)
            return log === undefined ? observed : Effect.zipRight(log, observed)
          })
        )
      })

    const protect = <E0>(name: string, options?: ProtectOptions<E0>) => {
      const isFailure = options?.isFailure as ((error: unknown) => boolean) | undefined
      const timeout = options?.timeout === undefined ? undefined : Duration.decode(options.timeout)
      return <A, E extends E0, R>(effect: Effect.Effect<A, E, R>) => guard(name, effect, isFailure, timeout)
    }

    const command = (name: string, f: (breaker: Breaker, now: number) => Machine.State) => (
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const breaker = breakerFor(name)
          const now = clock.unsafeCurrentTimeMillis()
          return moveTo(breaker, f(breaker, now), now) ?? Effect.void
        })
      )
    )

    // An open breaker whose cool-down is over admits a trial on its next call: it is half-open already, and says so
    // without waiting for that call.
    const statusOf = (name: string, state: Machine.State, now: number): Status => ({
      name,
      state: state._tag === "Open" && !state.isolated && now >= state.until ? "half_open" : publicState(state),
      failures: Machine.failuresOf(state),
      openedAt: state._tag === "Closed" ? Option.none() : Option.some(DateTime.unsafeMake(state.openedAt)),
      retryAfter: Duration.millis(Machine.retryAfter(state, now))
    })

    return CircuitBreaker.of({
      protect: protect as Service["protect"],
      isolate: (name) => command(name, (breaker, now) => Machine.isolate(breaker.state, now)),
      reset: (name) => command(name, (breaker) => Machine.reset(breaker.state, breaker.policy)),
      status: (name) =>
        Effect.clockWith((clock) =>
          Effect.sync(() => {
            const state = breakers.get(name)?.state ?? Machine.initial(policies.named.get(name) ?? policies.defaults)
            return statusOf(name, state, clock.unsafeCurrentTimeMillis())
          })
        ),
      snapshot: Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          return Array.from(breakers.values(), (breaker) => statusOf(breaker.name, breaker.state, now)).sort((a, b) =>
            a.name < b.name ? -1 : a.name > b.name ? 1 : 0
          )
        })
      ),
      changes: Stream.fromPubSub(hub),
      subscribe: PubSub.subscribe(hub)
    })
  })

/** Breakers with the given defaults and named policies (unset options: 3 failures, 30 seconds, 1 trial). */
export const layer = (options?: BreakerPolicy.Options): Layer.Layer<CircuitBreaker, InvalidBreakerPolicy> =>
  Layer.scoped(CircuitBreaker, make(options))

/** Breakers whose threshold and cool-down come from `SG_BREAKER_THRESHOLD` (3) and `SG_BREAKER_COOLDOWN` (30 s). */
export const layerConfig: Layer.Layer<CircuitBreaker, ConfigError.ConfigError | InvalidBreakerPolicy> = Layer.scoped(
  CircuitBreaker,
  Effect.flatMap(BreakerPolicy.config, (config) => make(config))
)
