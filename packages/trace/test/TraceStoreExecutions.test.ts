import type { Vitest } from "@effect/vitest"
import { describe, expect, layer } from "@effect/vitest"
import { RedisTestServer } from "@sg/redis/testing"
import { TraceStore } from "@sg/trace"
import * as TraceStoreRedis from "../src/TraceStore/Redis.js"
import { Clock, Effect, Layer, Option } from "effect"
import { freshId, recordAt } from "./utils/execStoreConformance.js"

// The execution stores have their own conformance suite; this checks that TraceStore hands its three methods to them.
const delegates = <X extends boolean>(it: Vitest.MethodsNonLive<TraceStore.TraceStore, X>) =>
  it.effect("saves, gets and lists execution records through TraceStore", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      // The store's own clock: the real one for Redis (which trims entries older than 7 days), TestClock for memory.
      const now = yield* Clock.currentTimeMillis
      const older = recordAt(freshId(), now - 1000, { status: "error", agents: ["planner"] })
      const newer = recordAt(freshId(), now, { agents: ["planner", "search"] })
      yield* store.saveExecution(older)
      yield* store.saveExecution(newer)
      expect(Option.map(yield* store.getExecution(newer.trace_id), (r) => r.trace_id)).toEqual(Option.some(newer.trace_id))
      const all = yield* store.listExecutions({ limit: 10 })
      expect(all.items.map((item) => item.trace_id)).toEqual([newer.trace_id, older.trace_id])
      const errors = yield* store.listExecutions({ status: "error" })
      expect(errors.items.map((item) => item.trace_id)).toEqual([older.trace_id])
      const search = yield* store.listExecutions({ agent: "search" })
      expect(search.items.map((item) => item.trace_id)).toEqual([newer.trace_id])
    }))

describe("TraceStore executions", () => {
  layer(TraceStore.layerMemory)("memory", (it) => {
    delegates(it)
  })
  layer(Layer.provide(TraceStoreRedis.layer(), RedisTestServer.layerWithClient), { excludeTestServices: true })(
    "redis",
    (it) => {
      delegates(it)
    }
  )
})
