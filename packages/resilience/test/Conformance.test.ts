import { describe, layer } from "@effect/vitest"
import { BreakerStore, CircuitBreaker } from "@sg/resilience"
import * as Redis from "@sg/resilience/CircuitBreaker/Redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, Layer, TestClock } from "effect"
import { conformance } from "./utils/conformance.js"

const underTestClock = {
  cooldownMs: 30_000,
  advance: (ms: number) => TestClock.adjust(ms),
  settle: Effect.repeatN(Effect.yieldNow(), 20),
  exact: true
}

describe("CircuitBreaker conformance", () => {
  layer(Layer.empty)("local (TestClock)", (it) => {
    conformance(it, {
      ...underTestClock,
      layer: (options) => Layer.orDie(CircuitBreaker.layer(options)),
      shared: false
    })
  })

  layer(Layer.empty)("shared over the memory store (TestClock)", (it) => {
    conformance(it, {
      ...underTestClock,
      layer: (options) =>
        Layer.orDie(CircuitBreaker.layerShared(options)).pipe(Layer.provide(BreakerStore.layerMemory())),
      shared: true
    })
  })

  layer(RedisTestServer.layerWithClient, { excludeTestServices: true, timeout: "120 seconds" })(
    "shared over Redis (real time)",
    (it) => {
      conformance(it, {
        layer: (options) => Layer.orDie(Redis.layer(options)),
        cooldownMs: 400,
        advance: (ms) => Effect.sleep(ms),
        settle: Effect.sleep(20),
        exact: false,
        shared: true
      })
    }
  )
})
