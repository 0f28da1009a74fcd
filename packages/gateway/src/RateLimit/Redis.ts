/**
 * The `RateLimiterStore` of `@effect/experimental`'s `RateLimiter` in Redis, over the process' shared `RedisClient`:
 * the same fixed-window and token-bucket scripts as `@effect/experimental/RateLimiter/Redis`, keyed
 * `<prefix>:ratelimit:<key>` (each key expires with its window), so every replica on one Redis spends one budget.
 *
 * Not that module itself: it opens a second ioredis connection of its own from `RedisOptions` (no URL, no error
 * listener, so an outage prints raw `[ioredis] Unhandled error event` lines, and none of the shared client's timeouts),
 * where this one shares the connection, its command timeouts, its typed errors and its key prefix.
 */
import * as RateLimiter from "@effect/experimental/RateLimiter"
import { RedisClient, RedisScript } from "@sg/redis"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"

/** KEYS: the counter. ARGV: tokens, refill ms per token, limit. Replies the count after the take and its TTL in ms. */
const fixedWindow = RedisScript.make({
  name: "sgRateLimitFixedWindow",
  numberOfKeys: 1,
  lua: `
local key = KEYS[1]
local tokens = tonumber(ARGV[1])
local refillms = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local current = tonumber(redis.call("GET", key))
if not current then
  local nextpttl = refillms * tokens
  redis.call("SET", key, tokens, "PX", nextpttl)
  return { tokens, nextpttl }
end
local currentpttl = tonumber(redis.call("PTTL", key) or "0")
if currentpttl < 0 then currentpttl = 0 end
local next = current + tokens
if limit and next > limit then
  return { next, currentpttl }
end
local nextpttl = currentpttl + (refillms * tokens)
redis.call("SET", key, next, "PX", nextpttl)
return { next, nextpttl }
`,
  reply: Schema.Tuple(Schema.Number, Schema.Number)
})

/**
 * KEYS: the bucket. ARGV: tokens, refill ms per token, limit, now ms, overflow ("1"/"0"). Replies the tokens left
 * (negative: refused, unless overflow). Both keys expire once the bucket would be full again.
 */
const tokenBucket = RedisScript.make({
  name: "sgRateLimitTokenBucket",
  numberOfKeys: 1,
  lua: `
local key = KEYS[1]
local last_refill_key = key .. ":refill"
local tokens = tonumber(ARGV[1])
local refill_ms = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local overflow = ARGV[5] == "1"
local current = tonumber(redis.call("GET", key))
local last_refill = tonumber(redis.call("GET", last_refill_key))
if not current or not last_refill then
  current = limit
  last_refill = now
end
local elapsed = now - last_refill
local refill_amount = math.floor(elapsed / refill_ms)
if refill_amount > 0 then
  current = math.min(current + refill_amount, limit)
  last_refill = last_refill + (refill_amount * refill_ms)
end
local next = current - tokens
local kept = next
if next < 0 and not overflow then kept = current end
local ttl = math.max(1, (limit - kept) * refill_ms + refill_ms)
redis.call("SET", key, kept, "PX", ttl)
redis.call("SET", last_refill_key, last_refill, "PX", ttl)
return next
`,
  reply: Schema.Number
})

/** The store over the `RedisClient` in context. */
export const make: Effect.Effect<RateLimiter.RateLimiterStore["Type"], never, RedisClient.RedisClient> = Effect.map(
  RedisClient.RedisClient,
  (redis) => {
    const key = (name: string) => redis.key("ratelimit", name)
    const storeError = (operation: string) => (cause: { readonly message: string }) =>
      new RateLimiter.RateLimitStoreError({ message: `rate limit ${operation} failed: ${cause.message}`, cause })
    return RateLimiter.RateLimiterStore.of({
      fixedWindow: (options) =>
        redis.eval(fixedWindow, [key(options.key)], [
          options.tokens,
          Math.max(1, Math.round(Duration.toMillis(options.refillRate))),
          ...(options.limit === undefined ? [] : [options.limit])
        ]).pipe(Effect.mapError(storeError("fixedWindow"))),
      tokenBucket: (options) =>
        Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (now) =>
          redis.eval(tokenBucket, [key(options.key)], [
            options.tokens,
            Math.max(1, Math.round(Duration.toMillis(options.refillRate))),
            options.limit,
            now,
            options.allowOverflow ? "1" : "0"
          ]).pipe(Effect.mapError(storeError("tokenBucket"))))
    })
  }
)

/** The store in Redis, over the `RedisClient` in context. */
export const layerStore: Layer.Layer<RateLimiter.RateLimiterStore, never, RedisClient.RedisClient> = Layer.effect(
  RateLimiter.RateLimiterStore,
  make
)
