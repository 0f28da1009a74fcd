import type { Vitest } from "@effect/vitest"
import { describe, expect, layer } from "@effect/vitest"
import { RedisTestServer } from "@sg/redis/testing"
import { ExecutionStore } from "@sg/trace"
import * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import { Clock, ConfigProvider, Effect, Layer, Option } from "effect"
import { freshId, recordAt } from "./utils/execStoreConformance.js"

// The stores have their own conformance suite (ExecutionStorage.test.ts); this checks what the public layers build.
const works = <X extends boolean>(it: Vitest.MethodsNonLive<ExecutionStore.ExecutionStore, X>, backend: string) =>
  it.effect(`saves, gets and lists execution records through the ${backend} layer`, () =>
    Effect.gen(function*() {
      const store = yield* ExecutionStore.ExecutionStore
      expect(store.backend).toBe(backend)
      // The store's own clock: the real one for Redis (which trims entries older than 7 days), TestClock for memory.
      const now = yield* Clock.currentTimeMillis
      const older = recordAt(freshId(), now - 1000, { status: "error", agents: ["planner"] })
      const newer = recordAt(freshId(), now, { agents: ["planner", "search"] })
      yield* store.save(older)
      yield* store.save(newer)
      expect(Option.map(yield* store.get(newer.trace_id), (r) => r.trace_id)).toEqual(Option.some(newer.trace_id))
      const all = yield* store.list({ limit: 10 })
      expect(all.items.map((item) => item.trace_id).slice(0, 2)).toEqual([newer.trace_id, older.trace_id])
      const errors = yield* store.list({ status: "error" })
      expect(errors.items.map((item) => item.trace_id)).toContain(older.trace_id)
      expect(errors.items.map((item) => item.trace_id)).not.toContain(newer.trace_id)
      const search = yield* store.list({ agent: "search" })
      expect(search.items.map((item) => item.trace_id)).toContain(newer.trace_id)
      expect(search.items.map((item) => item.trace_id)).not.toContain(older.trace_id)
    }))

const fromEnv = (env: Record<string, string>) =>
  Layer.provide(ExecutionStoreRedis.layerFromEnv, Layer.setConfigProvider(ConfigProvider.fromJson(env)))

describe("ExecutionStore layers", () => {
  layer(ExecutionStore.layerMemory)("layerMemory", (it) => works(it, "memory"))
  layer(fromEnv({ REDIS_URL: "" }))("layerFromEnv, REDIS_URL empty", (it) => works(it, "memory"))
  layer(Layer.provide(ExecutionStoreRedis.layer(), RedisTestServer.layerWithClient), { excludeTestServices: true })(
    "Redis layer",
    (it) => works(it, "redis")
  )
  layer(
    Layer.unwrapEffect(
      Effect.map(RedisTestServer.RedisTestServer, (server) => fromEnv({ REDIS_URL: server.url, SG_KEY_PREFIX: server.prefix }))
    ).pipe(Layer.provide(RedisTestServer.layer)),
    { excludeTestServices: true }
  )("layerFromEnv, REDIS_URL set", (it) => works(it, "redis"))
})
