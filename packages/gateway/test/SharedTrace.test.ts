import { expect, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { TraceIdGenerator, TraceStore } from "@sg/trace"
import * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Effect, Fiber, Layer } from "effect"
import * as T from "./utils/TestGateway.js"

/**
 * One trace id on several requests, as a caller's W3C trace spanning retries and fan-outs sends it: end to end over
 * HTTP against a real Redis. Nothing one request writes overwrites another's.
 */
const redis = <A>(f: (client: RedisClient.Service["client"]) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.promise(() => f(client.client)))

const hashOf = (id: string) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => redis((c) => c.hgetall(client.key("trace", id))))

const isActive = (id: string) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => redis((c) => c.sismember(client.key("traces", "active"), id)))

const gateway = T.make(Layer.merge(TraceStoreRedis.layer(), ExecutionStoreRedis.layer())).pipe(
  Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "2 seconds" })),
  Layer.provideMerge(RedisTestServer.layerSpawned),
  Layer.provideMerge(TraceIdGenerator.layer)
)

const freshId = Effect.flatMap(TraceIdGenerator.TraceIdGenerator, (generator) => generator.next)

const post = (id: string, input: string) => T.postRun({ input }, { "x-trace-id": id })

/** The record of `id` once it holds `runs` runs (the recorder saves off the request path). */
const recordWith = (id: string, runs: number) =>
  T.eventually(
    T.raw({ path: `/api/traces/${id}` }).pipe(
      Effect.filterOrFail((answer) => answer.status === 200 && answer.json.record?.runs?.length === runs)
    ),
    "10 seconds"
  ).pipe(Effect.map((answer) => answer.json))

layer(gateway, { excludeTestServices: true, timeout: "60 seconds" })("one trace id on several requests", (it) => {
  it.effect("one after another: both counted, the second reopens the trace afresh, the record holds both runs", () =>
    Effect.gen(function*() {
      const id = yield* freshId
      expect((yield* post(id, "first")).status).toBe(200)
      const after1 = yield* hashOf(id)
      expect(after1).toMatchObject({ state: "COMPLETED", requests: "1", opening: "1" })
      yield* Effect.sleep("20 millis")
      const second = yield* post(id, "second")
      expect(second.status).toBe(200)
      expect(second.headers["x-trace-id"]).toBe(id)
      const after2 = yield* hashOf(id)
      expect(after2).toMatchObject({ state: "COMPLETED", requests: "2", opening: "2", in_flight: "0" })
      expect(Number(after2["created_at"])).toBeGreaterThan(Number(after1["created_at"]))
      expect(yield* isActive(id)).toBe(0)
      const detail = yield* recordWith(id, 2)
      expect(detail.record.runs.map((run: { status: string }) => run.status)).toEqual(["success", "success"])
      expect(detail.lifecycle).toMatchObject({ state: "COMPLETED", requests: 2 })
    }))

  it.effect("at once: the first to finish leaves the trace in flight until the other ends", () =>
    Effect.gen(function*() {
      const id = yield* freshId
      const slow = yield* Effect.fork(post(id, "sleep:1500"))
      yield* T.eventually(hashOf(id).pipe(Effect.filterOrFail((hash) => hash["state"] === "INFERRING")))
      expect((yield* post(id, "quick")).status).toBe(200)
      const meanwhile = yield* hashOf(id)
      expect(meanwhile).toMatchObject({ requests: "2", in_flight: "1", opening: "1" })
      expect(["RECEIVED", "INFERRING", "EGRESS"]).toContain(meanwhile["state"])
      expect(yield* isActive(id)).toBe(1)
      expect((yield* Fiber.join(slow)).status).toBe(200)
      expect(yield* hashOf(id)).toMatchObject({ state: "COMPLETED", requests: "2", in_flight: "0" })
      expect(yield* isActive(id)).toBe(0)
      yield* recordWith(id, 2)
    }))

  it.effect("at once, one failing: the trace ends ERRORED with that request's error", () =>
    Effect.gen(function*() {
      const id = yield* freshId
      const slow = yield* Effect.fork(post(id, "sleep:800"))
      yield* T.eventually(hashOf(id).pipe(Effect.filterOrFail((hash) => hash["state"] === "INFERRING")))
      expect((yield* post(id, "provider-down:shared-trace")).status).toBe(502)
      expect(yield* hashOf(id)).toMatchObject({ in_flight: "1", errors: "1", error: "upstream_error" })
      expect(yield* isActive(id)).toBe(1)
      expect((yield* Fiber.join(slow)).status).toBe(200)
      expect(yield* hashOf(id)).toMatchObject({ state: "ERRORED", error: "upstream_error", in_flight: "0" })
      const detail = yield* recordWith(id, 2)
      expect(detail.record.status).toBe("error")
    }))

  it.effect("a late request of an earlier opening writes nothing into the reopened trace", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = yield* freshId
      const late = yield* Effect.fork(post(id, "sleep:1200"))
      yield* T.eventually(hashOf(id).pipe(Effect.filterOrFail((hash) => hash["state"] === "INFERRING")))
      // What a sweep does to a request it took for dead: the trace ends while that request still runs.
      yield* store.finish(id, "ERRORED", { error: "orphaned" })
      const current = yield* Effect.fork(post(id, "sleep:2500"))
      yield* T.eventually(hashOf(id).pipe(Effect.filterOrFail((hash) => hash["opening"] === "2")))
      expect((yield* Fiber.join(late)).status).toBe(200)
      const reopened = yield* hashOf(id)
      expect(reopened).toMatchObject({ opening: "2", in_flight: "1", state: "INFERRING" })
      expect(reopened["error"]).toBeUndefined()
      expect(yield* isActive(id)).toBe(1)
      expect((yield* Fiber.join(current)).status).toBe(200)
      expect(yield* hashOf(id)).toMatchObject({ state: "COMPLETED", opening: "2", in_flight: "0" })
    }))
})
