import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, Layer } from "effect"
import type { Backend } from "../src/internal/backend.js"
import { makeMemoryBackend, MemoryKeyspace } from "../src/internal/memoryBackend.js"
import { standalone } from "../src/internal/layout.js"
import { makeRedisBackend } from "../src/internal/redisBackend.js"
import { nextTraceId } from "./utils/ids.js"
import { isolatedClient } from "./utils/StoreKit.js"

/** The annotate step itself, below the service's validation: it skips reserved names in one atomic step. */
const scenario = <R>(backend: Effect.Effect<Backend, never, R>) =>
  Effect.gen(function*() {
    const store = yield* backend
    const id = nextTraceId()
    yield* store.create(id, "RECEIVED", "1.000", [], 60, "r1")
    const found = yield* store.annotate(
      id,
      ["customer", "acme", "state", "COMPLETED", "created_at", "2.000", "tenant", "x", "req:r1", "forged"],
      ["state", "created_at", "updated_at", "tenant"]
    )
    expect(found).toBe(true)
    expect(yield* store.read(id)).toEqual({
      state: "RECEIVED",
      created_at: "1.000",
      updated_at: "1.000",
      requests: "1",
      in_flight: "1",
      opening: "1",
      errors: "0",
      "req:r1": "1",
      customer: "acme"
    })
    const gone = nextTraceId()
    expect(yield* store.annotate(gone, ["customer", "acme"], ["state"])).toBe(false)
    expect(yield* store.read(gone)).toBeUndefined()
  })

describe("the annotate step never writes a reserved name", () => {
  it.effect("memory", () => scenario(Effect.sync(() => makeMemoryBackend(new MemoryKeyspace()))))

  it.layer(Layer.provideMerge(isolatedClient, RedisTestServer.layer))("redis", (it) => {
    it.effect("redis", () => scenario(Effect.map(RedisClient.RedisClient, (redis) => makeRedisBackend(redis, standalone(redis.prefix)))))
  })
})
