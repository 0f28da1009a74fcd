import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"

/** Lease timings as given: any `DurationInput`, each optional. */
export interface Input {
  readonly ttl?: Duration.DurationInput | undefined
  readonly renewInterval?: Duration.DurationInput | undefined
  readonly renewDeadline?: Duration.DurationInput | undefined
  readonly retryPeriod?: Duration.DurationInput | undefined
  readonly identity?: string | undefined
}

/** Lease timings checked against each other. */
export interface Resolved {
  readonly ttl: Duration.Duration
  readonly renewInterval: Duration.Duration
  readonly renewDeadline: Duration.Duration
  readonly retryPeriod: Duration.Duration
  readonly identity: string
}

const defaultTtl = Duration.seconds(15)

const describe = (d: Duration.Duration) => Duration.format(d)

/**
 * Fills what is missing (the renew interval, renew deadline and retry period default to 1/3, 2/3 and 2/15 of the
 * TTL: 5 s, 10 s and 2 s for the default 15 s, client-go's figures) and checks the timings against each other,
 * returning every problem found.
 */
export const resolve = (input: Input, defaultIdentity: string): Either.Either<Resolved, ReadonlyArray<string>> => {
  const problems: Array<string> = []
  const duration = (field: string, value: Duration.DurationInput | undefined, fallback: () => Duration.Duration) => {
    if (value === undefined) return fallback()
    const decoded = Duration.decodeUnknown(value)
    if (Option.isNone(decoded)) {
      problems.push(`${field} is not a duration: ${String(value)}`)
      return undefined
    }
    if (!Duration.isFinite(decoded.value) || Duration.lessThan(decoded.value, Duration.millis(1))) {
      problems.push(`${field} must be a finite duration of at least 1 millisecond, not ${describe(decoded.value)}`)
      return undefined
    }
    return decoded.value
  }
  const ttl = duration("ttl", input.ttl, () => defaultTtl)
  const scaled = (numerator: number, denominator: number) => () =>
    Duration.millis((Duration.toMillis(ttl ?? defaultTtl) * numerator) / denominator)
  const renewInterval = duration("renewInterval", input.renewInterval, scaled(1, 3))
  const renewDeadline = duration("renewDeadline", input.renewDeadline, scaled(2, 3))
  const retryPeriod = duration("retryPeriod", input.retryPeriod, scaled(2, 15))
  const derived = { renewInterval, renewDeadline, retryPeriod }
  for (const [field, value] of Object.entries(derived)) {
    // The derived timings too: a TTL of a few milliseconds would otherwise campaign thousands of times a second.
    if (value !== undefined && Duration.lessThan(value, Duration.millis(1))) {
      const from = describe(ttl ?? defaultTtl)
      problems.push(`${field} (derived from the TTL ${from}) is under 1 millisecond: use a longer TTL`)
    }
  }
  const identity = input.identity ?? defaultIdentity
  if (!/^\S+$/.test(identity)) problems.push(`identity must be non-empty and contain no spaces, not "${identity}"`)

  if (ttl !== undefined && renewDeadline !== undefined && !Duration.greaterThan(ttl, renewDeadline)) {
    problems.push(
      `the lease TTL (${describe(ttl)}) must be longer than the renew deadline (${describe(renewDeadline)}), ` +
        "so a leader steps down before its lease can lapse"
    )
  }
  if (renewDeadline !== undefined && retryPeriod !== undefined && !Duration.greaterThan(renewDeadline, retryPeriod)) {
    problems.push(
      `the renew deadline (${describe(renewDeadline)}) must be longer than the retry period (${describe(retryPeriod)})`
    )
  }
  if (renewDeadline !== undefined && renewInterval !== undefined && !Duration.lessThan(renewInterval, renewDeadline)) {
    problems.push(
      `the renew interval (${describe(renewInterval)}) must be shorter than the renew deadline ` +
        `(${describe(renewDeadline)})`
    )
  }
  if (
    problems.length > 0 || ttl === undefined || renewInterval === undefined || renewDeadline === undefined ||
    retryPeriod === undefined
  ) {
    return Either.left(problems)
  }
  return Either.right({ ttl, renewInterval, renewDeadline, retryPeriod, identity })
}
