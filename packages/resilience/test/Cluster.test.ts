import { describe, expect, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestCluster } from "@sg/redis/testing"
import { BreakerStore } from "@sg/resilience"
import * as Redis from "@sg/resilience/CircuitBreaker/Redis"
import { Effect, Layer } from "effect"
import { conformance } from "./utils/conformance.js"
import { policyOf, storeConformance, uniqueName } from "./utils/storeConformance.js"

// One cluster for the file: the breaker store's contract and the shared breakers' conformance, unchanged, on it.
describe("shared breakers on a Redis Cluster", () => {
  layer(RedisTestCluster.layerWithClient(), { excludeTestServices: true, timeout: "120 seconds" })("cluster", (it) => {
    it.layer(Redis.layerStore({ idleTimeout: "1 second" }))("BreakerStore (real time)", (it) => {
      storeConformance(it, { advance: (ms) => Effect.sleep(ms), idleMs: 1_000 })

      it.effect("each breaker is one key, on whichever master its name hashes to", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const cluster = yield* RedisTestCluster.RedisTestCluster
          const names = Array.from({ length: 30 }, () => uniqueName("spread"))
          const store = yield* BreakerStore.BreakerStore
          yield* Effect.forEach(names, (name) => store.isolate(name, policyOf({})), { discard: true })
          const counts = yield* cluster.keysPerMaster(`${redis.prefix}:breaker:spread-*`)
          expect(Array.from(counts.values()).filter((n) => n > 0)).toHaveLength(3)
        }))
    })

    conformance(it, {
      layer: (options) => Layer.orDie(Redis.layer(options)),
      cooldownMs: 400,
      advance: (ms) => Effect.sleep(ms),
      settle: Effect.sleep(20),
      exact: false,
      shared: true
    })
  })
})
