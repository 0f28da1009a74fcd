/**
 * Per-key rate limits (`SG_RATE_LIMIT`, `<n>/<second|minute|hour>`), on `@effect/experimental`'s `RateLimiter`
 * (its fixed-window algorithm: a key may spend `n` requests, and each one it spends comes back a window's `n`-th
 * later) over the `RateLimiterStore` in context: this process' memory (`layerStoreMemory`), or Redis
 * (`RateLimit/Redis`), so that replicas on one Redis share each key's budget.
 *
 * A store that fails lets the request through (tracing and limits are best effort; the gateway keeps serving), counted
 * in `sg_rate_limit_store_errors_total` and logged once per burst.
 */
import * as RateLimiter from "@effect/experimental/RateLimiter"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"

/** A limit: `limit` requests per `window`. */
export interface Limit {
  readonly limit: number
  readonly window: Duration.Duration
  /** As configured, `60/minute`. */
  readonly text: string
}

const units = { second: Duration.seconds(1), minute: Duration.minutes(1), hour: Duration.hours(1) } as const

/** Reads `<n>/<second|minute|hour>` (`n` a whole number from 1 to 1,000,000); the error says what was expected. */
export const parse = (text: string): Either.Either<Limit, string> => {
  const match = /^\s*(\d{1,7})\s*\/\s*(second|minute|hour)\s*$/.exec(text)
  const limit = match === null ? NaN : Number(match[1])
  if (match === null || !Number.isSafeInteger(limit) || limit < 1 || limit > 1_000_000) {
    return Either.left("expected <n>/<second|minute|hour>, n a whole number from 1 to 1000000, such as 60/minute")
  }
  const unit = match[2] as keyof typeof units
  return Either.right({ limit, window: units[unit], text: `${limit}/${unit}` })
}

/** `SG_RATE_LIMIT`: `None` when unset or empty (no limit). */
export const config: Config.Config<Option.Option<Limit>> = Config.option(Config.string("SG_RATE_LIMIT")).pipe(
  Config.mapOrFail((text) => {
    if (Option.isNone(text) || text.value.trim() === "") return Either.right(Option.none())
    return Either.map(
      Either.mapLeft(parse(text.value), (message) => ConfigError.InvalidData(["SG_RATE_LIMIT"], message)),
      Option.some
    )
  }),
  Config.withDescription("requests per API key: <n>/<second|minute|hour>; unset: no limit")
)

/** What one request's check found. */
export interface Decision {
  readonly allowed: boolean
  readonly limit: number
  /** Requests left in the window after this one (0 when refused). */
  readonly remaining: number
  /** When the key's budget is whole again. */
  readonly reset: Duration.Duration
  /** When a refused key may try again (zero when allowed). */
  readonly retryAfter: Duration.Duration
}

/** Store failures, which let their requests through. */
export const storeErrors = Metric.counter("sg_rate_limit_store_errors_total", {
  description: "rate limit checks the store could not answer (the requests went through)",
  incremental: true
})

/** The limit in force and the check of one request against a key's budget. */
export interface Service {
  readonly limit: Limit
  /** Spends one request of the key `key`; a store that fails allows it. */
  readonly check: (key: string) => Effect.Effect<Decision>
}

/** The rate limit of the gateway; absent from the context when there is none. */
export class RequestLimit extends Context.Tag("@sg/gateway/RateLimit/RequestLimit")<RequestLimit, Service>() {}

/** Checks requests against `limit` with the `RateLimiter` in context. */
export const make = (limit: Limit): Effect.Effect<Service, never, RateLimiter.RateLimiter> =>
  Effect.map(RateLimiter.RateLimiter, (limiter) => {
    let failing = false
    const options = { algorithm: "fixed-window", onExceeded: "fail", window: limit.window, limit: limit.limit } as const
    const check = (key: string): Effect.Effect<Decision> =>
      limiter.consume({ ...options, key }).pipe(
        Effect.map((result): Decision => {
          failing = false
          return {
            allowed: true,
            limit: result.limit,
            remaining: Math.max(0, result.remaining),
            reset: result.resetAfter,
            retryAfter: Duration.zero
          }
        }),
        Effect.catchAll((error) => {
          if (error.reason === "Exceeded") {
            return Effect.succeed<Decision>({
              allowed: false,
              limit: error.limit,
              remaining: 0,
              reset: error.retryAfter,
              retryAfter: error.retryAfter
            })
          }
          storeErrors.unsafeUpdate(1, [])
          const allowed: Decision = {
            allowed: true,
            limit: limit.limit,
            remaining: limit.limit,
            reset: Duration.zero,
            retryAfter: Duration.zero
          }
          if (failing) return Effect.succeed(allowed)
          failing = true
          return Effect.as(
            Effect.logWarning(
              "rate limit store not answering: requests go through unlimited until it does " +
                "(counted in sg_rate_limit_store_errors_total)",
              error
            ).pipe(Effect.annotateLogs({ package: "@sg/gateway", module: "RateLimit" })),
            allowed
          )
        })
      )
    return { limit, check }
  })

/** The limit over the `RateLimiterStore` in context. */
export const layer = (limit: Limit): Layer.Layer<RequestLimit, never, RateLimiter.RateLimiterStore> =>
  Layer.effect(RequestLimit, make(limit)).pipe(Layer.provide(RateLimiter.layer))

/** The limit in this process' memory (every replica counts its own). */
export const layerMemory = (limit: Limit): Layer.Layer<RequestLimit> =>
  Layer.provide(layer(limit), RateLimiter.layerStoreMemory)

/**
 * `Retry-After` and the `x-ratelimit-*` headers OpenAI's clients read, for a decision: the limit, what is left, and
 * when it resets (`1s`, `6m0s`, OpenAI's format).
 */
export const headersOf = (decision: Decision): Record<string, string> => {
  const headers: Record<string, string> = {
    "x-ratelimit-limit-requests": String(decision.limit),
    "x-ratelimit-remaining-requests": String(decision.remaining),
    "x-ratelimit-reset-requests": formatReset(decision.reset)
  }
  if (!decision.allowed) headers["retry-after"] = String(retryAfterSeconds(decision))
  return headers
}

/** Whole seconds to wait, at least 1. */
export const retryAfterSeconds = (decision: Decision): number =>
  Math.max(1, Math.ceil(Duration.toMillis(decision.retryAfter) / 1000))

/** A duration as OpenAI writes resets: `250ms`, `1s`, `6m0s`, `1h2m3s`. */
export const formatReset = (duration: Duration.Duration): string => {
  const ms = Math.max(0, Math.round(Duration.toMillis(duration)))
  if (ms < 1000) return `${ms}ms`
  const total = Math.ceil(ms / 1000)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`
}
