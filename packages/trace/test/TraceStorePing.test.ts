import { expect, it, layer } from "@effect/vitest"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, Layer, Schedule } from "effect"
import * as TraceStore from "../src/TraceStore.js"
import * as TraceStoreRedis from "../src/TraceStore/Redis.js"

it.effect("memory: ping always answers", () =>
  Effect.gen(function*() {
    const store = yield* TraceStore.TraceStore
    yield* store.ping
  }).pipe(Effect.provide(TraceStore.layerMemory)))

const redis = TraceStoreRedis.layer().pipe(
  Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "300 millis", connectTimeout: "300 millis" })),
  Layer.provideMerge(RedisTestServer.layerSpawned)
)

layer(redis, { excludeTestServices: true, timeout: "30 seconds" })("redis", (it) => {
  it.effect("ping answers while Redis does, fails with TraceStoreUnavailable while it is down, answers once it is back", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const server = yield* RedisTestServer.RedisTestServer
      yield* store.ping
      yield* server.stop
      const down = yield* Effect.flip(store.ping)
      expect(down._tag).toBe("TraceStoreUnavailable")
      yield* server.start
      yield* store.ping.pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("10 seconds"))))
    }))
})
