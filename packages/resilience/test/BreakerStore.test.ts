import { describe, expect, layer } from "@effect/vitest"
import { BreakerStore } from "@sg/resilience"
import * as Redis from "@sg/resilience/CircuitBreaker/Redis"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, Layer, TestClock } from "effect"
import { policyOf, storeConformance, uniqueName } from "./utils/storeConformance.js"

describe("BreakerStore (memory, TestClock)", () => {
  layer(BreakerStore.layerMemory({ idleMs: 1_000 }))("memory", (it) => {
    storeConformance(it, { advance: (ms) => TestClock.adjust(ms), idleMs: 1_000 })
  })
})

describe("BreakerStore (Redis, real time)", () => {
  const store = Layer.provideMerge(Redis.layerStore({ idleTimeout: "1 second" }), RedisTestServer.layerWithClient)
  layer(store, { excludeTestServices: true, timeout: "60 seconds" })("redis", (it) => {
    storeConformance(it, { advance: (ms) => Effect.sleep(ms), idleMs: 1_000 })

    it.effect("keeps each breaker in the hash <prefix>:breaker:<name> with a TTL; an isolated one has none", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const store = yield* BreakerStore.BreakerStore
        const policy = policyOf({ threshold: 1, cooldown: "200 millis" })
        const name = uniqueName("keys")
        const key = Redis.keyOf(redis, name)
        expect(key).toBe(`${redis.prefix}:breaker:${name}`)
        expect(Redis.channelOf(redis)).toBe(`${redis.prefix}:breakers`)
        const opened = yield* store.failure(name, policy, 0, 0)
        const hash = yield* redis.use("HGETALL", (c) => c.hgetall(key))
        expect(hash).toMatchObject({ s: "open", g: String(opened.generation), u: String(opened.until), f: "1" })
        const pttl = yield* redis.use("PTTL", (c) => c.pttl(key))
        expect(pttl).toBeGreaterThan(1_000)
        expect(pttl).toBeLessThanOrEqual(1_200)
        yield* store.isolate(name, policy)
        expect(yield* redis.use("PTTL", (c) => c.pttl(key))).toBe(-1)
        yield* store.reset(name, policy)
        expect(yield* redis.use("PTTL", (c) => c.pttl(key))).toBeGreaterThan(0)
      }))

    it.effect("a store error is a BreakerStoreError naming the cause, never a defect", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const store = yield* BreakerStore.BreakerStore
        const name = uniqueName("wrongtype")
        yield* redis.use("SET", (c) => c.set(Redis.keyOf(redis, name), "not a hash"))
        const error = yield* Effect.flip(store.read(name, policyOf({})))
        expect(error._tag).toBe("BreakerStoreError")
        expect(error.message).toContain("WRONGTYPE")
      }))
  })
})
