/**
 * When a breaker opens and how long it stays open: the options a layer takes, their defaults
 * (`SG_BREAKER_THRESHOLD` 3, `SG_BREAKER_COOLDOWN` 30 seconds) and their validation.
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { InvalidBreakerPolicy } from "./CircuitBreakerError.js"
import type { Policy, Trip } from "./internal/machine.js"

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

/** A layer's options: the defaults every breaker starts from, and policies for breakers by name. */
export interface Options extends PolicyOptions {
  /** Policies for particular breakers, each laid over the defaults. */
  readonly policies?: Readonly<Record<string, PolicyOptions>> | undefined
}

/** `SG_BREAKER_THRESHOLD` (3) and `SG_BREAKER_COOLDOWN` (30 seconds), read through `Config`. */
export const config: Config.Config<{ readonly threshold: number; readonly cooldown: Duration.Duration }> = Config.all({
  threshold: Config.integer("SG_BREAKER_THRESHOLD").pipe(
    Config.withDefault(3),
    Config.validate({ message: "SG_BREAKER_THRESHOLD must be at least 1", validation: (n) => n >= 1 }),
    Config.withDescription("consecutive failures that open a circuit breaker")
  ),
  cooldown: Config.duration("SG_BREAKER_COOLDOWN").pipe(
    Config.withDefault(Duration.seconds(30)),
    Config.withDescription("how long an open circuit breaker rejects calls before a trial call")
  )
})

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

/** Validated policies: the defaults, and one per named breaker. */
export interface Resolved {
  readonly defaults: Policy
  readonly named: ReadonlyMap<string, Policy>
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
    return { defaults, named }
  })
