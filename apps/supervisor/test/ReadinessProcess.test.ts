/**
 * Readiness as a load balancer meets it, against a real `sg serve` and a real Redis: `/readyz` stays 200 while the
 * replica can serve and names what is degraded (an open breaker, Redis out of memory, Redis gone), answers from
 * memory however Redis is, and is 503 only with `SG_READY_REQUIRES_STORE=on` while the store is down;
 * `/api/status` says `half_open` once a breaker's cool-down is over, without waiting for a call.
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, Layer, Option } from "effect"
import * as Http from "./utils/http.js"
import { outputs, waitFor } from "./utils/processes.js"
import { startServe } from "./utils/serve.js"

const redis = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

const command = <A>(name: string, f: (client: RedisClient.Service["client"]) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.orDie(client.use(name, f)))

const settings = { SG_BREAKER_COOLDOWN: "2 seconds", SG_REDIS_COMMAND_TIMEOUT: "500 millis", SG_SAMPLE_SUCCESS: "0" }

const names = (answer: Http.Answer): ReadonlyArray<string> => answer.json?.degraded?.map((d: any) => d.name) ?? []
const messageOf = (answer: Http.Answer, name: string): string | undefined =>
  answer.json?.degraded?.find((d: any) => d.name === name)?.message

/** `/readyz`, timed, within 5 seconds. */
const probe = (port: number) =>
  Effect.gen(function*() {
    const start = performance.now()
    const answer = yield* Http.get(port, "/readyz").pipe(Effect.timeout("5 seconds"))
    return { answer, ms: performance.now() - start }
  })

/** Polls `/readyz` until `until` holds. */
const readyzUntil = (port: number, what: string, until: (answer: Http.Answer) => boolean, context: () => string) =>
  waitFor(what, Effect.map(Http.get(port, "/readyz"), (a) => (until(a) ? Option.some(a) : Option.none())),
    "15 seconds", context)

/** Runs now and then (a write closes the store's breaker once its cool-down is over) until nothing is degraded. */
const recovered = (port: number, what: string, context: () => string) =>
  waitFor(what, Effect.gen(function*() {
    yield* Http.postRun(port, { input: "what is 1+1?" })
    const answer = yield* Http.get(port, "/readyz")
    return names(answer).length === 0 ? Option.some(answer) : Option.none()
  }).pipe(Effect.zipLeft(Effect.sleep("200 millis"))), "15 seconds", context)

const circuit = (port: number, name: string) =>
  Effect.map(Http.get(port, "/api/status"), (a) => a.json.circuits.find((c: any) => c.name === name))

describe("readiness of sg serve over a real Redis", () => {
  it.live("a breaker open, Redis out of memory, Redis gone: 200 naming each, from memory; half_open said at once", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const { child, port } = yield* startServe("serve", { REDIS_URL: server.url, ...settings })
      const context = outputs(child)
      const ready = yield* readyzUntil(port, "/readyz 200", (a) => a.status === 200, context)
      expect(ready.json).toEqual({ ready: true, degraded: [] })

      // The model's breaker opens: named, not fatal; once its cool-down is over /api/status says half_open at once.
      for (let i = 0; i < 3; i++) yield* Http.postRun(port, { input: `fail: provider down ${i}` })
      const open = yield* circuit(port, "model:demo")
      expect(open.state).toBe("open")
      expect(open.retry_after).toBeGreaterThan(0)
      const named = yield* Http.get(port, "/readyz")
      expect([named.status, names(named)]).toEqual([200, ["breaker:model:demo"]])
      expect(messageOf(named, "breaker:model:demo")).toMatch(/^open: calls are rejected for [12] s more$/)
      yield* Effect.sleep("2100 millis")
      expect(yield* circuit(port, "model:demo")).toMatchObject({ state: "half_open", retry_after: 0 })
      expect(messageOf(yield* Http.get(port, "/readyz"), "breaker:model:demo")).toBe("half open: a trial call is due")
      expect((yield* Http.postRun(port, { input: "what is 6*7?" })).status).toBe(200)
      expect((yield* circuit(port, "model:demo")).state).toBe("closed")

      // Redis out of memory: PING answers, every write fails. Runs still answer 200; the store is named failing.
      yield* command("CONFIG", (c) => c.config("SET", "maxmemory", "1"))
      for (let i = 0; i < 4; i++) expect((yield* Http.postRun(port, { input: `what is ${i}+1?` })).status).toBe(200)
      const oom = yield* readyzUntil(port, "/readyz to name the store failing writes",
        (a) => messageOf(a, "store")?.startsWith("failing writes:") === true, context)
      expect(oom.status).toBe(200)
      expect(oom.json.ready).toBe(true)
      yield* command("CONFIG", (c) => c.config("SET", "maxmemory", "0"))
      yield* recovered(port, "writes to be accepted again", context)

      // Redis gone: named unreachable within a second or two, and each probe answers from memory, not from a PING.
      yield* server.stop
      const down = yield* readyzUntil(port, "/readyz to name the store unreachable",
        (a) => messageOf(a, "store")?.startsWith("unreachable:") === true, context)
      expect(down.status).toBe(200)
      const probes = yield* Effect.forEach(Array.from({ length: 20 }), () => probe(port))
      expect(probes.every(({ answer }) => answer.status === 200)).toBe(true)
      // The route that pinged per probe took its 500 ms PING timeout on every one.
      const slowest = Math.max(...probes.map((p) => p.ms))
      expect(slowest, `probe times: ${probes.map((p) => p.ms.toFixed(0)).join(", ")}`).toBeLessThan(400)
      expect((yield* Http.get(port, "/api/status")).json.redis).toMatchObject({ reachable: false })

      yield* server.start
      const back = yield* recovered(port, "/readyz to name nothing again", context)
      expect(back.json).toEqual({ ready: true, degraded: [] })
    }).pipe(Effect.scoped, Effect.provide(redis)), 120_000)

  it.live("SG_READY_REQUIRES_STORE=on: 503 not_ready naming the store while Redis is gone, 200 once it is back", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const { child, port } = yield* startServe("serve", {
        REDIS_URL: server.url,
        SG_READY_REQUIRES_STORE: "on",
        ...settings
      })
      const context = outputs(child)
      yield* readyzUntil(port, "/readyz 200", (a) => a.status === 200, context)
      yield* server.stop
      const down = yield* readyzUntil(port, "/readyz 503", (a) => a.status === 503, context)
      expect(down.json).toMatchObject({
        error: "not_ready",
        message: expect.stringMatching(/^the trace store is unreachable: .*, and SG_READY_REQUIRES_STORE is on$/),
        degraded: [{ name: "store", message: expect.stringMatching(/^unreachable: /) }]
      })
      expect(down.headers["x-trace-id"]).toBeDefined()
      expect((yield* Http.get(port, "/healthz")).status).toBe(200)
      expect((yield* Http.postRun(port, { input: "what is 2*21?" })).status).toBe(200)
      yield* server.start
      const back = yield* readyzUntil(port, "/readyz 200 again", (a) => a.status === 200, context)
      expect(back.json.ready).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(redis)), 120_000)
})
