import { expect, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { CircuitBreaker } from "@sg/resilience"
import { TraceLifecycle } from "@sg/trace"
import * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Clock, Effect, Layer } from "effect"
import { mintedIdOf } from "./utils/headers.js"
import * as T from "./utils/TestGateway.js"

const redis = <A>(f: (client: RedisClient.Service["client"]) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.promise(() => f(client.client)))

const hashOf = (id: string) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => redis((c) => c.hgetall(client.key("trace", id))))

/** The gateway over the Redis store, on a private redis-server this test may stop and start. */
const gateway = T.make(Layer.merge(TraceStoreRedis.layer(), ExecutionStoreRedis.layer())).pipe(
  Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "500 millis" })),
  Layer.provideMerge(RedisTestServer.layerSpawned)
)

layer(gateway, { excludeTestServices: true, timeout: "60 seconds" })("gateway over Redis", (it) => {
  it.effect("a run's lifecycle hash: RECEIVED's fields, the request's metadata, COMPLETED, the terminal TTL", () =>
    Effect.gen(function*() {
      const answer = yield* T.postRun(
        { input: "in redis", metadata: { customer: "acme", note: "n".repeat(600) } },
        { "x-sg-platform": "slack", "x-sg-channel": "C042" }
      )
      expect(answer.status).toBe(200)
      const id = mintedIdOf(answer)
      const raw = yield* hashOf(id)
      // The request's token, kept as `done` so a late copy of its create counts once.
      const tokens = Object.keys(raw).filter((field) => field.startsWith("req:"))
      expect(tokens.map((field) => raw[field])).toEqual(["done"])
      const hash = Object.fromEntries(Object.entries(raw).filter(([field]) => !field.startsWith("req:")))
      expect(hash).toEqual({
        state: "COMPLETED",
        created_at: expect.stringMatching(/^\d{10}\.\d{3}$/),
        updated_at: expect.stringMatching(/^\d{10}\.\d{3}$/),
        requests: "1",
        in_flight: "0",
        opening: "1",
        errors: "0",
        method: "POST",
        route: "/v1/runs",
        platform: "slack",
        channel: "C042",
        customer: "acme",
        note: "n".repeat(500)
      })
      expect(Number(hash["updated_at"])).toBeGreaterThanOrEqual(Number(hash["created_at"]))
      const client = yield* RedisClient.RedisClient
      const ttl = yield* redis((c) => c.ttl(client.key("trace", id)))
      expect(ttl).toBeGreaterThanOrEqual(3599)
      expect(ttl).toBeLessThanOrEqual(3600)
      expect(yield* redis((c) => c.sismember(client.key("traces", "active"), id))).toBe(0)
      expect((yield* T.writesOf(id)).map((w) => w.state ?? w.op)).toEqual([
        "RECEIVED",
        "annotate",
        "INFERRING",
        "COMPLETED"
      ])

      const detail = yield* T.eventually(
        T.raw({ path: `/api/traces/${id}` }).pipe(
          Effect.filterOrFail((a) => a.status === 200 && a.json.record !== null)
        )
      )
      expect(detail.json.lifecycle).toMatchObject({ state: "COMPLETED", fields: { platform: "slack" } })
      expect(detail.json.record).toMatchObject({ trace_id: id, status: "success" })

      const failed = mintedIdOf(yield* T.postRun({ input: "provider-down:redis-test" }))
      expect(yield* hashOf(failed)).toMatchObject({ state: "ERRORED", error: "upstream_error" })

      expect((yield* T.raw({ path: "/readyz" })).json).toEqual({ ready: true, degraded: [] })
      const status = (yield* T.raw({ path: "/api/status" })).json
      expect(status.store).toBe("redis")
      expect(status.redis).toMatchObject({ reachable: true, prefix: client.prefix })
    }))

  it.effect("Redis stopped mid-way: runs still answer 200 quickly, /readyz 200 naming the store; both recover", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const breakers = yield* CircuitBreaker.CircuitBreaker
      expect((yield* T.postRun({ input: "before" })).status).toBe(200)

      yield* server.stop
      const durations: Array<number> = []
      for (let i = 0; i < 12; i++) {
        const start = yield* Clock.currentTimeMillis
        const answer = yield* T.postRun({ input: `while down ${i}` })
        durations.push((yield* Clock.currentTimeMillis) - start)
        expect(answer.status).toBe(200)
        expect(answer.json.output).toBe(`echo: while down ${i}`)
        mintedIdOf(answer)
      }
      // The first lifecycle writes wait for their 500 ms timeout and open the trace-store breaker; after that the
      // writes are skipped and a run costs what it costs with no tracing.
      expect((yield* breakers.status(TraceLifecycle.breakerName)).state).toBe("open")
      expect(Math.max(...durations)).toBeLessThan(2_000)
      expect(Math.max(...durations.slice(3))).toBeLessThan(250)

      // Degraded, not down: the background check names the store (unreachable, or failing writes once its breaker
      // opened) and the open breaker, and the replica stays ready, since it serves without tracing.
      const storeOf = (answer: T.Answer) => answer.json?.degraded?.find((d: any) => d.name === "store")
      const degraded = yield* T.eventually(
        T.raw({ path: "/readyz" }).pipe(Effect.filterOrFail((a) => storeOf(a)?.message.startsWith("unreachable:"))),
        "5 seconds"
      )
      expect(degraded.status).toBe(200)
      expect(degraded.json.ready).toBe(true)
      expect(degraded.json.degraded.map((d: any) => d.name)).toEqual(["store", "breaker:trace-store"])
      expect((yield* T.raw({ path: "/healthz" })).status).toBe(200)
      expect((yield* T.raw({ path: "/api/status" })).json.redis.reachable).toBe(false)

      yield* server.start
      yield* T.eventually(
        T.raw({ path: "/api/status" }).pipe(Effect.filterOrFail((a) => a.json.redis.reachable === true)),
        "10 seconds"
      )
      // Once the breaker's cool-down (1 s here) has passed, a trial write goes through and the records are back.
      const back = yield* T.eventually(
        Effect.gen(function*() {
          const id = mintedIdOf(yield* T.postRun({ input: "after" }))
          return yield* hashOf(id).pipe(Effect.filterOrFail((hash) => hash["state"] === "COMPLETED"))
        }),
        "10 seconds"
      )
      expect(back).toMatchObject({ method: "POST", route: "/v1/runs" })
      expect((yield* breakers.status(TraceLifecycle.breakerName)).state).toBe("closed")
    }))
})
