import { describe, expect, it, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { ConfigProvider, Context, Duration, Effect, Either, Exit, Layer, Metric, Option, TestClock } from "effect"
import * as RateLimit from "../src/RateLimit.js"
import * as RateLimitRedis from "../src/RateLimit/Redis.js"

const perMinute = (n: number) => Either.getOrThrow(RateLimit.parse(`${n}/minute`))

const spend = (service: RateLimit.Service, key: string, n: number) =>
  Effect.forEach(Array.from({ length: n }), () => service.check(key))

describe("RateLimit", () => {
  it("SG_RATE_LIMIT is <n>/<second|minute|hour>", () => {
    expect(Either.getOrThrow(RateLimit.parse("60/minute"))).toEqual({
      limit: 60,
      window: Duration.minutes(1),
      text: "60/minute"
    })
    expect(Either.getOrThrow(RateLimit.parse(" 5 / second ")).text).toBe("5/second")
    expect(Duration.toMillis(Either.getOrThrow(RateLimit.parse("1000/hour")).window)).toBe(3_600_000)
    for (const bad of ["60", "0/minute", "60/day", "-1/second", "1.5/minute", "2000000/second", "sixty/minute"]) {
      expect(Either.isLeft(RateLimit.parse(bad)), bad).toBe(true)
    }
  })

  it.effect("reads SG_RATE_LIMIT through Config: unset is none, bad is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<[string, string]>) =>
        Effect.exit(Effect.withConfigProvider(RateLimit.config, ConfigProvider.fromMap(new Map(entries))))
      expect(yield* read([])).toEqual(Exit.succeed(Option.none()))
      expect(yield* read([["SG_RATE_LIMIT", ""]])).toEqual(Exit.succeed(Option.none()))
      const limit = yield* read([["SG_RATE_LIMIT", "10/second"]])
      expect(Exit.isSuccess(limit) && Option.getOrThrow(limit.value).limit).toBe(10)
      const bad = yield* read([["SG_RATE_LIMIT", "lots"]])
      expect(Exit.isFailure(bad) && String(bad.cause)).toContain("SG_RATE_LIMIT")
    }))

  it("headers: OpenAI's names, resets as OpenAI writes them, Retry-After in whole seconds", () => {
    expect(RateLimit.formatReset(Duration.millis(250))).toBe("250ms")
    expect(RateLimit.formatReset(Duration.seconds(1))).toBe("1s")
    expect(RateLimit.formatReset(Duration.millis(1200))).toBe("2s")
    expect(RateLimit.formatReset(Duration.minutes(6))).toBe("6m0s")
    expect(RateLimit.formatReset(Duration.seconds(3723))).toBe("1h2m3s")
    const refused = {
      allowed: false,
      limit: 3,
      remaining: 0,
      reset: Duration.millis(19_100),
      retryAfter: Duration.millis(19_100)
    }
    expect(RateLimit.headersOf(refused)).toEqual({
      "x-ratelimit-limit-requests": "3",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "20s",
      "retry-after": "20"
    })
    expect(RateLimit.headersOf({ ...refused, allowed: true, remaining: 2 })).not.toHaveProperty("retry-after")
  })

  layer(Layer.empty)("the memory store under TestClock", (it) => {
    it.effect("n requests per window per key; the n+1th waits for the window; keys are apart", () =>
      Effect.gen(function*() {
        const limited = yield* RateLimit.RequestLimit.pipe(Effect.provide(RateLimit.layerMemory(perMinute(3))))
        expect(limited.limit.text).toBe("3/minute")
        const first = yield* spend(limited, "key-a", 4)
        expect(first.map((d) => [d.allowed, d.remaining])).toEqual([[true, 2], [true, 1], [true, 0], [false, 0]])
        const refused = first[3]!
        expect(Duration.toMillis(refused.retryAfter)).toBe(60_000)
        expect(RateLimit.headersOf(refused)["retry-after"]).toBe("60")
        expect((yield* limited.check("key-b")).allowed).toBe(true)

        yield* TestClock.adjust("30 seconds")
        const half = yield* limited.check("key-a")
        expect(half.allowed).toBe(false)
        expect(Duration.toMillis(half.retryAfter)).toBe(30_000)
        // Each spent request comes back a window's third later: after the window, all three.
        yield* TestClock.adjust("30 seconds")
        const again = yield* spend(limited, "key-a", 4)
        expect(again.map((d) => d.allowed)).toEqual([true, true, true, false])
      }))
  })

  // Two replicas: two connections, each its own limiter, on one Redis.
  layer(RedisTestServer.layer, { excludeTestServices: true, timeout: "30 seconds" })("the Redis store, two replicas", (it) => {
    // Built in the test's scope: the replica's connection stays open until the test ends.
    const replica = Layer.build(
      RateLimit.layer(perMinute(5)).pipe(
        Layer.provide(RateLimitRedis.layerStore),
        Layer.provide(RedisTestServer.layerClient())
      )
    ).pipe(Effect.map(Context.get(RateLimit.RequestLimit)))

    it.scoped("the limit holds for the sum of both replicas; the refusal says when to retry", () =>
      Effect.gen(function*() {
        const one = yield* replica
        const two = yield* replica
        const key = `k${process.pid}${Date.now() % 100_000}`
        const decisions = yield* Effect.all(
          Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? one : two).check(key)),
          { concurrency: "unbounded" }
        )
        expect(decisions.filter((d) => d.allowed)).toHaveLength(5)
        const refused = decisions.filter((d) => !d.allowed)
        expect(refused).toHaveLength(7)
        for (const d of refused) {
          expect(Duration.toMillis(d.retryAfter)).toBeGreaterThan(50_000)
          expect(Duration.toMillis(d.retryAfter)).toBeLessThanOrEqual(60_000)
        }
        expect((yield* one.check(`${key}-other`)).allowed).toBe(true)
        const server = yield* RedisTestServer.RedisTestServer
        const client = Context.get(yield* Layer.build(RedisTestServer.layerClient()), RedisClient.RedisClient)
        const ttl = yield* Effect.promise(() => client.client.pttl(`${server.prefix}:ratelimit:${key}`))
        expect(ttl).toBeGreaterThan(50_000)
        expect(ttl).toBeLessThanOrEqual(60_000)
      }))

    it.scoped("a store that cannot answer lets requests through, counted", () =>
      Effect.gen(function*() {
        const service = Context.get(
          yield* Layer.build(
            RateLimit.layer(perMinute(1)).pipe(
              Layer.provide(RateLimitRedis.layerStore),
              Layer.provide(RedisClient.layer({
                url: "redis://127.0.0.1:1",
                connectTimeout: "100 millis",
                commandTimeout: "200 millis",
                offlineQueueLimit: 0
              }))
            )
          ),
          RateLimit.RequestLimit
        )
        const errors = Effect.map(Metric.value(RateLimit.storeErrors), (state) => state.count)
        const before = yield* errors
        const decisions = yield* spend(service, "any", 3)
        expect(decisions.map((d) => d.allowed)).toEqual([true, true, true])
        expect((yield* errors) - before).toBe(3)
      }))
  })
})
