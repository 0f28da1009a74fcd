/**
 * When a breaker opens and how long it stays open: the options a layer takes, their defaults
 * (`SG_BREAKER_THRESHOLD` 3, `SG_BREAKER_COOLDOWN` 30 seconds, `SG_BREAKER_COOLDOWN_MAX` 5 minutes) and their
 * validation.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { InvalidBreakerPolicy } from "./CircuitBreakerError.js"
import type { Policy, Trip } from "./internal/machine.js"

export type {
  /** A validated policy, durations in milliseconds (what a `BreakerStore` is handed with every operation). */
  Policy,
  /** What makes a closed breaker open: consecutive failures or a failure rate. */
  Trip
}

/** Open when the failure rate over the last `window` counted calls reaches `threshold`, after `minimumCalls` calls. */
export interface FailureRate {
  /** The failure rate that opens the breaker, in (0, 1]: 0.5 opens at half the calls failing. */
  readonly threshold: number
  /** How many of the most recent counted calls the rate is taken over. */
  readonly window: number
  /** No rate is judged before this many counted calls (at most `window`); defaults to `window`. */
  readonly minimumCalls?: number | undefined
}

/** How a breaker behaves. Every field is optional; unset fields take the layer's defaults. */
export interface PolicyOptions {
  /** Consecutive counted failures that open a closed breaker; defaults to 3. Ignored when `failureRate` is set. */
  readonly threshold?: number | undefined
  /** Open on a failure rate over a sliding window of calls instead of on consecutive failures. */
  readonly failureRate?: FailureRate | undefined
  /** How long the breaker stays open before it lets a trial call through; defaults to 30 seconds. */
  readonly cooldown?: Duration.DurationInput | undefined
  /** How many trial calls a half-open breaker lets through; all must succeed to close it. Defaults to 1. */
  readonly halfOpenTrials?: number | undefined
  /**
   * Grow the open duration on each failed trial: `cooldown * factor ^ failedTrials`, at most `max`; it falls back to
   * `cooldown` once the breaker closes. Off by default.
   */
  readonly backoff?: { readonly factor?: number | undefined; readonly max: Duration.DurationInput } | undefined
}

/** A layer's options: the defaults every breaker starts from, policies for breakers by name, and the bounds. */
export interface Options extends PolicyOptions {
  /** Policies for particular breakers, each laid over the defaults. */
  readonly policies?: Readonly<Record<string, PolicyOptions>> | undefined
  /**
   * A breaker not called for about this long is forgotten by the process (and, shared, expires from the store):
   * per-tenant or per-tool names do not grow a process without end. Isolated breakers are kept. Defaults to 1 hour.
   */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** At most this many breakers are kept in the process; past it the least recently used goes. Defaults to 10,000. */
  readonly maxBreakers?: number | undefined
}

/** The environment's defaults: threshold, cool-down and the capped doubling of the cool-down after failed trials. */
export interface EnvironmentOptions {
  readonly threshold: number
  readonly cooldown: Duration.Duration
  readonly backoff: { readonly factor: number; readonly max: Duration.Duration }
}

/**
 * `SG_BREAKER_THRESHOLD` (3), `SG_BREAKER_COOLDOWN` (30 seconds) and `SG_BREAKER_COOLDOWN_MAX` (5 minutes, or the
 * cool-down when that is longer and the maximum is unset): each failed trial doubles the time open, up to the
 * maximum, until the breaker closes again.
 */
export const config: Config.Config<EnvironmentOptions> = Config.all({
  threshold: Config.integer("SG_BREAKER_THRESHOLD").pipe(
    Config.withDefault(3),
    Config.validate({ message: "SG_BREAKER_THRESHOLD must be at least 1", validation: (n) => n >= 1 }),
    Config.withDescription("consecutive failures that open a circuit breaker")
  ),
  cooldown: Config.mapOrFail(
    Config.duration("SG_BREAKER_COOLDOWN").pipe(Config.withDefault(Duration.seconds(30))),
    (cooldown) =>
      Duration.isFinite(cooldown)
        ? Either.right(cooldown)
        : Either.left(ConfigError.InvalidData(["SG_BREAKER_COOLDOWN"], "must be a finite duration"))
  ).pipe(Config.withDescription("how long an open circuit breaker rejects calls before a trial call")),
  max: Config.option(Config.duration("SG_BREAKER_COOLDOWN_MAX")).pipe(
    Config.withDescription("the longest a breaker that keeps failing its trial stays open (its cool-down doubles)")
  )
}).pipe(Config.mapOrFail(({ cooldown, max, threshold }) => {
  if (Option.isNone(max)) {
    const fallback = Duration.max(Duration.minutes(5), cooldown)
    return Either.right({ threshold, cooldown, backoff: { factor: 2, max: fallback } })
  }
  if (!Duration.isFinite(max.value) || Duration.lessThan(max.value, cooldown)) {
    return Either.left(ConfigError.InvalidData(
      ["SG_BREAKER_COOLDOWN_MAX"],
      `must be a finite duration of at least SG_BREAKER_COOLDOWN (${Duration.format(cooldown)})`
    ))
  }
  return Either.right({ threshold, cooldown, backoff: { factor: 2, max: max.value } })
}))

const durationMs = (
  input: Duration.DurationInput | undefined,
  field: string,
  fallback: number
): Either.Either<number, string> => {
  if (input === undefined) return Either.right(fallback)
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded)) return Either.left(`${field} must be a duration, got ${JSON.stringify(input)}`)
  return Either.right(Duration.toMillis(decoded.value))
}

const isInt = (n: unknown, min: number): n is number => typeof n === "number" && Number.isInteger(n) && n >= min

/** Lays `options` over `base` and checks the result; the error names the first bad field. */
const resolve = (base: Policy, options: PolicyOptions): Either.Either<Policy, string> =>
  Either.gen(function*() {
    let trip: Trip = base.trip
    if (options.failureRate !== undefined) {
      const { minimumCalls, threshold, window } = options.failureRate
      if (!(typeof threshold === "number" && threshold > 0 && threshold <= 1)) {
        return yield* Either.left(`failureRate.threshold must be in (0, 1], got ${threshold}`)
      }
      if (!isInt(window, 1)) return yield* Either.left(`failureRate.window must be an integer >= 1, got ${window}`)
      const minimum = minimumCalls ?? window
      if (!isInt(minimum, 1) || minimum > window) {
        return yield* Either.left(`failureRate.minimumCalls must be an integer in [1, window], got ${minimumCalls}`)
      }
      trip = { _tag: "FailureRate", threshold, window, minimumCalls: minimum }
    } else if (options.threshold !== undefined) {
      if (!isInt(options.threshold, 1)) {
        return yield* Either.left(`threshold must be an integer >= 1, got ${options.threshold}`)
      }
      trip = { _tag: "ConsecutiveFailures", threshold: options.threshold }
    }
    const cooldownMs = yield* durationMs(options.cooldown, "cooldown", base.cooldownMs)
    if (!Number.isFinite(cooldownMs)) {
      return yield* Either.left("cooldown must be finite (use isolate to hold a breaker open)")
    }
    const halfOpenTrials = options.halfOpenTrials ?? base.halfOpenTrials
    if (!isInt(halfOpenTrials, 1)) {
      return yield* Either.left(`halfOpenTrials must be an integer >= 1, got ${options.halfOpenTrials}`)
    }
    let backoff = base.backoff
    if (options.backoff !== undefined) {
      const factor = options.backoff.factor ?? 2
      if (!(typeof factor === "number" && factor >= 1 && Number.isFinite(factor))) {
        return yield* Either.left(`backoff.factor must be a finite number >= 1, got ${factor}`)
      }
      const maxMs = yield* durationMs(options.backoff.max, "backoff.max", 0)
      if (maxMs < cooldownMs) return yield* Either.left("backoff.max must be at least the cooldown")
      backoff = { factor, maxMs }
    }
    return { trip, cooldownMs, halfOpenTrials, backoff }
  })

/** The built-in defaults: 3 consecutive failures, 30 seconds open, 1 trial, no backoff. */
export const defaultPolicy: Policy = {
  trip: { _tag: "ConsecutiveFailures", threshold: 3 },
  cooldownMs: 30_000,
  halfOpenTrials: 1,
  backoff: undefined
}

/** Validated policies: the defaults, one per named breaker, and the layer's bounds. */
export interface Resolved {
  readonly defaults: Policy
  readonly named: ReadonlyMap<string, Policy>
  /** `idleTimeout` in milliseconds. */
  readonly idleMs: number
  readonly maxBreakers: number
}

/** Checks a layer's options; fails with `InvalidBreakerPolicy` naming the breaker and field at fault. */
export const validate = (options: Options = {}): Either.Either<Resolved, InvalidBreakerPolicy> =>
  Either.gen(function*() {
    const defaults = yield* Either.mapLeft(
      resolve(defaultPolicy, options),
      (message) => new InvalidBreakerPolicy({ message: `invalid circuit breaker defaults: ${message}` })
    )
    const named = new Map<string, Policy>()
    for (const [breaker, policy] of Object.entries(options.policies ?? {})) {
      named.set(
        breaker,
        yield* Either.mapLeft(
          resolve(defaults, policy),
          (message) =>
            new InvalidBreakerPolicy({ breaker, message: `invalid policy for breaker "${breaker}": ${message}` })
        )
      )
    }
    const idleMs = yield* Either.mapLeft(
      durationMs(options.idleTimeout, "idleTimeout", 3_600_000),
      (message) => new InvalidBreakerPolicy({ message })
    )
    if (!(idleMs >= 1 && Number.isFinite(idleMs))) {
      return yield* Either.left(new InvalidBreakerPolicy({ message: "idleTimeout must be finite and at least 1 ms" }))
    }
    const maxBreakers = options.maxBreakers ?? 10_000
    if (!isInt(maxBreakers, 1)) {
      return yield* Either.left(
        new InvalidBreakerPolicy({ message: `maxBreakers must be an integer >= 1, got ${options.maxBreakers}` })
      )
    }
    return { defaults, named, idleMs, maxBreakers }
  })
