/**
 * Named circuit breakers: `protect(name)(effect)` runs `effect` through the breaker `name`, which opens after
 * repeated failures and then rejects calls at once with `CircuitOpenError` until a trial call after its cool-down
 * succeeds. `layer` keeps breakers in this process; `layerShared` shares each breaker among every replica through a
 * `BreakerStore` (Redis: `@sg/resilience/CircuitBreaker/Redis`), falling back to local state while the store is out
 * of reach. All time in the process comes from `Clock`, so `TestClock` drives both.
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as BreakerPolicy from "./BreakerPolicy.js"
import { BreakerStore } from "./BreakerStore.js"
import { type CircuitOpenError, type CircuitTimeoutError, InvalidBreakerPolicy } from "./CircuitBreakerError.js"
import * as Local from "./internal/local.js"
import * as Machine from "./internal/machine.js"
import { Registry } from "./internal/registry.js"
import * as Shared from "./internal/shared.js"
import { keys, makeLabels } from "./internal/shell.js"

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
 * (`{ name, state, failures, opened_at, retry_after, shared }`, `retry_after` in seconds).
 */
export const Status = Schema.Struct({
  name: Schema.String,
  state: State,
  /** Counted failures: consecutive (or in the window) while closed, since the breaker last closed otherwise. */
  failures: Schema.NonNegativeInt,
  openedAt: Schema.OptionFromNullOr(Schema.DateTimeUtc).pipe(Schema.propertySignature, Schema.fromKey("opened_at")),
  retryAfter: RetryAfter.pipe(Schema.propertySignature, Schema.fromKey("retry_after")),
  /** Whether every replica sees this state (a shared breaker with its store in reach); false for local breakers. */
  shared: Schema.Boolean
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
  /**
   * Opens the breaker for at least `duration` from now (an upstream asked for that long, e.g. a 429's
   * `Retry-After`): calls are rejected until then, then a trial decides as after any cool-down. An isolated breaker,
   * or one already open for longer, is left as it is.
   */
  readonly openFor: (name: string, duration: Duration.DurationInput) => Effect.Effect<void>
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

/** Named circuit breakers. */
export class CircuitBreaker extends Context.Tag("@sg/resilience/CircuitBreaker")<CircuitBreaker, Service>() {}

/** The label every breaker metric carries: `breaker=<name>`. */
export const metricLabel = "breaker"

/**
 * The breakers' metrics, each tagged `breaker=<name>` (read one with
 * `Metric.value(Metric.tagged(metrics.calls, metricLabel, name))`). `calls` counts every call, rejected or not;
 * `failures` the counted ones, timeouts included; `state` is 0 closed, 1 half-open, 2 open, 3 isolated;
 * `transitions` is also tagged `from` and `to` (the changes this process saw). Past 1,000 names in one layer, new
 * breakers count under `breaker="other"` (`unlabeled` counts them); `evictions` (tagged `reason`: `idle`,
 * `capacity`) counts breakers the process forgot.
 */
export const metrics = {
  calls: Metric.fromMetricKey(keys.calls),
  successes: Metric.fromMetricKey(keys.successes),
  failures: Metric.fromMetricKey(keys.failures),
  rejections: Metric.fromMetricKey(keys.rejections),
  timeouts: Metric.fromMetricKey(keys.timeouts),
  state: Metric.fromMetricKey(keys.state),
  transitions: Metric.fromMetricKey(keys.transitions),
  evictions: Metric.fromMetricKey(keys.evictions),
  unlabeled: Metric.fromMetricKey(keys.unlabeled)
} as const

const validated = (options?: BreakerPolicy.Options): Effect.Effect<BreakerPolicy.Resolved, InvalidBreakerPolicy> =>
  Either.match(BreakerPolicy.validate(options), { onLeft: Effect.fail, onRight: Effect.succeed })

const byName = (a: Status, b: Status) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0

/** Builds the service over breakers in this process; the change stream ends when the scope closes. */
export const make = (options?: BreakerPolicy.Options): Effect.Effect<Service, InvalidBreakerPolicy, Scope.Scope> =>
  Effect.gen(function*() {
    const policies = yield* validated(options)
    const policyFor = (name: string) => policies.named.get(name) ?? policies.defaults
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<StateChange>(), PubSub.shutdown)
    const { guard, moveTo } = Local.make(hub)
    const labels = makeLabels()
    const registry = new Registry<Local.LocalBreaker>({
      max: policies.maxBreakers,
      idleMs: policies.idleMs,
      create: (name) => Local.makeBreaker(name, policyFor(name), labels(name)),
      evictable: Local.evictable,
      busy: Local.busy
    })

    const protect = <E0>(name: string, options?: ProtectOptions<E0>) => {
      const isFailure = options?.isFailure as ((error: unknown) => boolean) | undefined
      const timeout = options?.timeout === undefined ? undefined : Duration.decode(options.timeout)
      return <A, E extends E0, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.clockWith((clock) => {
          const breaker = registry.use(name, clock)
          breaker.metrics.calls(1)
          return guard(breaker, clock, effect, isFailure, timeout)
        })
    }

    const command = (name: string, f: (breaker: Local.LocalBreaker, now: number) => Machine.State) =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const breaker = registry.obtain(name, () => now)
          breaker.seen = registry.epoch
          return moveTo(breaker, f(breaker, now), now) ?? Effect.void
        })
      )

    return CircuitBreaker.of({
      protect: protect as Service["protect"],
      openFor: (name, duration) => {
        const millis = Duration.toMillis(Duration.decode(duration))
        return command(name, (breaker, now) =>
          Number.isFinite(millis) && millis > 0 ? Machine.openUntil(breaker.state, now, now + millis) : breaker.state)
      },
      isolate: (name) => command(name, (breaker, now) => Machine.isolate(breaker.state, now)),
      reset: (name) => command(name, (breaker) => Machine.reset(breaker.state, breaker.policy)),
      status: (name) =>
        Effect.clockWith((clock) =>
          Effect.sync(() => {
            const now = clock.unsafeCurrentTimeMillis()
            const breaker = registry.get(name)
            return breaker === undefined
              ? Local.statusOfState(name, Machine.initial(policyFor(name)), now, false)
              : Local.statusOf(breaker, now, false)
          })
        ),
      snapshot: Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          return Array.from(registry.list(now), (breaker) => Local.statusOf(breaker, now, false)).sort(byName)
        })
      ),
      changes: Stream.fromPubSub(hub),
      subscribe: PubSub.subscribe(hub)
    })
  })

/** Breakers with the given defaults and named policies (unset options: 3 failures, 30 seconds, 1 trial). */
export const layer = (options?: BreakerPolicy.Options): Layer.Layer<CircuitBreaker, InvalidBreakerPolicy> =>
  Layer.scoped(CircuitBreaker, make(options))

/**
 * Breakers whose threshold and cool-down come from `SG_BREAKER_THRESHOLD` (3), `SG_BREAKER_COOLDOWN` (30 s) and
 * `SG_BREAKER_COOLDOWN_MAX` (5 minutes: each failed trial doubles the time open, up to it).
 */
export const layerConfig: Layer.Layer<CircuitBreaker, ConfigError.ConfigError | InvalidBreakerPolicy> = Layer.scoped(
  CircuitBreaker,
  Effect.flatMap(BreakerPolicy.config, (config) => make(config))
)

/** Options of the shared breakers: the policies, and how they use their store. */
export interface SharedOptions extends BreakerPolicy.Options {
  /** Breakers kept in this process only, never shared (say, the one guarding the store itself). */
  readonly local?: Iterable<string> | undefined
  /** How long a trial's token outlives its holder (it is renewed while the trial runs); defaults to 5 seconds. */
  readonly trialTtl?: Duration.DurationInput | undefined
  /** The longest a failing caller waits for the store to hear its failure; defaults to 100 milliseconds. */
  readonly reportWait?: Duration.DurationInput | undefined
  /** How often successes under a failure-rate policy are told to the store; defaults to 100 milliseconds. */
  readonly flushInterval?: Duration.DurationInput | undefined
  /** How often a breaker that fell back to local state tries the store again; defaults to 1 second. */
  readonly resyncInterval?: Duration.DurationInput | undefined
}

const positiveMs = (
  input: Duration.DurationInput | undefined,
  field: string,
  fallback: number
): Either.Either<number, string> => {
  if (input === undefined) return Either.right(fallback)
  const decoded = Duration.decodeUnknown(input)
  if (decoded._tag === "None") return Either.left(`${field} must be a duration, got ${JSON.stringify(input)}`)
  const ms = Duration.toMillis(decoded.value)
  return ms >= 1 && Number.isFinite(ms) ? Either.right(ms) : Either.left(`${field} must be finite and at least 1 ms`)
}

const sharedSettings = (options: SharedOptions = {}): Either.Either<Shared.Settings, InvalidBreakerPolicy> =>
  Either.mapLeft(
    Either.all({
      trialTtlMs: positiveMs(options.trialTtl, "trialTtl", 5_000),
      reportWaitMs: positiveMs(options.reportWait, "reportWait", 100),
      flushMs: positiveMs(options.flushInterval, "flushInterval", 100),
      resyncMs: positiveMs(options.resyncInterval, "resyncInterval", 1_000)
    }),
    (message) => new InvalidBreakerPolicy({ message })
  ).pipe(Either.map((timing) => ({ ...timing, local: new Set(options.local ?? []) })))

/**
 * Builds breakers shared through the `BreakerStore` in context: every replica on one store sees one state per
 * breaker, failures reported by any of them count toward one policy, exactly one trial runs cluster-wide after the
 * cool-down, and a breaker whose store is out of reach carries on with local state (`shared: false`).
 */
export const makeShared = (
  options?: SharedOptions
): Effect.Effect<Service, InvalidBreakerPolicy, BreakerStore | Scope.Scope> =>
  Effect.gen(function*() {
    const policies = yield* validated(options)
    const settings = yield* Either.match(sharedSettings(options), { onLeft: Effect.fail, onRight: Effect.succeed })
    return CircuitBreaker.of(yield* Shared.make(yield* BreakerStore, policies, settings))
  })

/** Shared breakers over the `BreakerStore` in context (see `makeShared`). */
export const layerShared = (
  options?: SharedOptions
): Layer.Layer<CircuitBreaker, InvalidBreakerPolicy, BreakerStore> => Layer.scoped(CircuitBreaker, makeShared(options))
