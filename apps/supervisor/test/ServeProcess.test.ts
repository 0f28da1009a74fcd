import { describe, expect, it, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import type { Redis } from "ioredis"
import { Context, Effect, Layer, Option, type Scope } from "effect"
import * as Http from "./utils/http.js"
import { ended, outputs, pidOfToken, spawnSg, waitFor, waitUntil } from "./utils/processes.js"
import { type Served, startServe } from "./utils/serve.js"
import { runSg } from "./utils/sg.js"

const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const hexOf = (id: string) => id.replaceAll("-", "")

/** Short settings: breakers cool down in 2 s, every run is recorded, Redis commands give up after 500 ms. */
const settings = {
  SG_BREAKER_COOLDOWN: "2 seconds",
  SG_SAMPLE_SUCCESS: "1",
  SG_REDIS_COMMAND_TIMEOUT: "500 millis"
}

const redis = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

const command = <A>(name: string, f: (client: RedisClient.Service["client"]) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.orDie(client.use(name, f)))

const hashOf = (id: string) => command("HGETALL", (c) => c.hgetall(`sg:trace:${id}`))

/** The states written to each trace hash, in the order Redis executed them (seen through MONITOR). */
const watchStates: Effect.Effect<(id: string) => ReadonlyArray<string>, never, RedisClient.RedisClient | Scope.Scope> =
  Effect.gen(function*() {
    const client = yield* RedisClient.RedisClient
    const monitor = yield* Effect.acquireRelease(
      Effect.promise(() => (client.client as Redis).monitor()),
      (monitor) => Effect.sync(() => monitor.disconnect())
    )
    const states = new Map<string, Array<string>>()
    const note = (key: string | undefined, state: string | undefined) => {
      if (key === undefined || state === undefined || !key.startsWith("sg:trace:")) return
      const list = states.get(key) ?? []
      list.push(state)
      states.set(key, list)
    }
    // Every state write is an HSET of the `state` field: in create's MULTI, or inside the transition and finish scripts
    // (MONITOR shows the commands a Lua script runs, as well as the EVALSHA that ran it).
    monitor.on("monitor", (_time: string, args: Array<string>) => {
      if (args[0]?.toLowerCase() !== "hset") return
      for (let i = 2; i < args.length; i += 2) if (args[i] === "state") note(args[1], args[i + 1])
    })
    // MONITOR sees only what runs after it is on: make sure it is, with a command of our own.
    yield* command("PING", (c) => c.ping())
    return (id: string) => states.get(`sg:trace:${id}`) ?? []
  })

class Server extends Context.Tag("test/Server")<Server, Served>() {}

/** One `sg serve` over the test Redis for the tests that share it. */
const served = Layer.scoped(
  Server,
  Effect.flatMap(
    RedisTestServer.RedisTestServer,
    (server) => startServe("serve", { REDIS_URL: server.url, ...settings })
  )
).pipe(Layer.provideMerge(redis))

const errorOf = (answer: Http.Answer) => ({ status: answer.status, error: answer.json?.error })

layer(served, { excludeTestServices: true, timeout: "60 seconds" })("sg serve as a process over a real Redis", (it) => {
  it.scoped("a run: trace headers, lifecycle states through COMPLETED with the terminal TTL, its record listed", () =>
    Effect.gen(function*() {
      const { port } = yield* Server
      const statesOf = yield* watchStates
      const answer = yield* Http.postRun(port, { input: "what is 2+3*4?", conversation_id: "c-e2e" })
      expect(answer.status).toBe(200)
      const id = String(answer.headers["x-trace-id"])
      expect(id).toMatch(v7)
      expect(answer.headers["traceparent"]).toMatch(new RegExp(`^00-${hexOf(id)}-[0-9a-f]{16}-01$`))
      expect(answer.json).toEqual({
        trace_id: id,
        run_id: expect.stringMatching(v7),
        status: "success",
        output: "2+3*4 = 14.",
        steps: 2
      })

      yield* waitUntil("MONITOR to see COMPLETED", Effect.sync(() => statesOf(id).includes("COMPLETED")), "5 seconds")
      // A whole answer completes as it leaves: no EGRESS apart (a streamed one is EGRESS while it streams).
      expect(statesOf(id)).toEqual(["RECEIVED", "INFERRING", "COMPLETED"])
      expect(yield* hashOf(id)).toMatchObject({ state: "COMPLETED", method: "POST", route: "/v1/runs" })
      const streamed = yield* Http.postRun(port, { input: "hello", stream: true })
      expect(streamed.status).toBe(200)
      const streamedId = String(streamed.headers["x-trace-id"])
      yield* waitUntil(
        "MONITOR to see the streamed run COMPLETED",
        Effect.sync(() => statesOf(streamedId).includes("COMPLETED")),
        "5 seconds"
      )
      expect(statesOf(streamedId)).toEqual(["RECEIVED", "INFERRING", "EGRESS", "COMPLETED"])
      const ttl = yield* command("TTL", (c) => c.ttl(`sg:trace:${id}`))
      expect(ttl).toBeGreaterThanOrEqual(3590)
      expect(ttl).toBeLessThanOrEqual(3600)
      expect(yield* command("SISMEMBER", (c) => c.sismember("sg:traces:active", id))).toBe(0)

      const detail = yield* waitFor("the record at /api/traces/:id", Effect.map(
        Http.get(port, `/api/traces/${id}`),
        (a) => (a.status === 200 && a.json.record !== null ? Option.some(a.json) : Option.none())
      ), "5 seconds")
      expect(detail.lifecycle).toMatchObject({ trace_id: id, state: "COMPLETED" })
      expect(detail.record).toMatchObject({ trace_id: id, conversation_id: "c-e2e", status: "success" })
      expect(detail.record.runs).toHaveLength(1)
      const [run] = detail.record.runs
      expect(run).toMatchObject({ run_id: answer.json.run_id, agent_id: "assistant", status: "success", steps: 2 })
      expect(run.inference_calls.map((c: any) => [c.model, c.status])).toEqual([
        ["demo", "success"],
        ["demo", "success"]
      ])
      expect(run.tool_calls.map((c: any) => [c.tool, c.status])).toEqual([["calculator", "success"]])
      expect(run.tool_calls[0].output).toContain("14")

      const page = yield* Http.get(port, "/api/traces")
      expect(page.status).toBe(200)
      expect(page.json.items.map((s: any) => s.trace_id)).toContain(id)
    }))

  it.effect("an incoming traceparent is adopted: the same trace id in the answer and in Redis", () =>
    Effect.gen(function*() {
      const { port } = yield* Server
      const hex = "4bf92f3577b34da6a3ce929d0e0e4736"
      const id = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
      const answer = yield* Http.postRun(port, { input: "what time is it?" }, {
        traceparent: `00-${hex}-00f067aa0ba902b7-01`
      })
      expect(answer.status).toBe(200)
      expect(answer.headers["x-trace-id"]).toBe(id)
      expect(answer.json.trace_id).toBe(id)
      const traceparent = String(answer.headers["traceparent"])
      expect(traceparent).toMatch(new RegExp(`^00-${hex}-[0-9a-f]{16}-01$`))
      expect(traceparent).not.toContain("00f067aa0ba902b7")
      expect(yield* hashOf(id)).toMatchObject({ state: "COMPLETED" })
      yield* waitUntil("its record", Effect.map(Http.get(port, `/api/traces/${id}`), (a) => a.json?.record !== null),
        "5 seconds")

      // An invalid one (upper case) is ignored: a new id is minted.
      const upper = `00-${hex.toUpperCase()}-00f067aa0ba902b7-01`
      const minted = yield* Http.postRun(port, { input: "hi" }, { traceparent: upper })
      expect(minted.status).toBe(200)
      expect(minted.headers["x-trace-id"]).toMatch(v7)
    }))

  it.effect("a provider down: 502 three times, then 503 circuit_open with Retry-After; a trial after cool-down", () =>
    Effect.gen(function*() {
      const { port } = yield* Server
      const failed: Array<string> = []
      for (let i = 0; i < 3; i++) {
        const answer = yield* Http.postRun(port, { input: `fail: provider down ${i}` })
        expect(errorOf(answer)).toEqual({ status: 502, error: "upstream_error" })
        expect(answer.json.provider).toBe("demo")
        failed.push(String(answer.headers["x-trace-id"]))
      }
      const rejected = yield* Http.postRun(port, { input: "what is 6*7?" })
      expect(errorOf(rejected)).toEqual({ status: 503, error: "circuit_open" })
      expect(rejected.json.breaker).toBe("model:demo")
      const retryAfter = Number(rejected.headers["retry-after"])
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      expect(retryAfter).toBeLessThanOrEqual(2)
      expect(rejected.headers["x-trace-id"]).toMatch(v7)

      expect(yield* hashOf(failed[0]!)).toMatchObject({ state: "ERRORED", error: "upstream_error" })
      expect(yield* hashOf(String(rejected.headers["x-trace-id"]))).toMatchObject({
        state: "ERRORED",
        error: "circuit_open"
      })
      const status = yield* Http.get(port, "/api/status")
      expect(status.json.circuits).toContainEqual(expect.objectContaining({ name: "model:demo", state: "open" }))

      yield* Effect.sleep(`${retryAfter * 1000 + 100} millis`)
      const trial = yield* Http.postRun(port, { input: "what is 6*7?" })
      expect(trial.status).toBe(200)
      expect(trial.json.output).toBe("6*7 = 42.")
      const after = yield* Http.get(port, "/api/status")
      expect(after.json.circuits).toContainEqual(expect.objectContaining({ name: "model:demo", state: "closed" }))
    }))

  it.effect("malformed requests through the real server: each its status and error code, none a 5xx", () =>
    Effect.gen(function*() {
      const { port } = yield* Server
      const json = { "content-type": "application/json" }
      const post = (body: string) => ({ method: "POST", path: "/v1/runs", headers: json, body })
      const cases: ReadonlyArray<readonly [string, Http.Request, number, string]> = [
        ["bad JSON", post("{input: hi}"), 400, "bad_request"],
        ["not an object", post("[1, 2]"), 400, "bad_request"],
        ["no input", post("{}"), 400, "bad_request"],
        ["empty input", post(JSON.stringify({ input: "" })), 400, "bad_request"],
        ["input a number", post(JSON.stringify({ input: 42 })), 400, "bad_request"],
        ["metadata not strings", post(JSON.stringify({ input: "hi", metadata: { a: 1 } })), 400, "bad_request"],
        ["unknown agent", post(JSON.stringify({ input: "hi", agent: "nobody" })), 400, "bad_request"],
        ["text/plain", { ...post("{\"input\":\"hi\"}"), headers: { "content-type": "text/plain" } }, 400,
          "bad_request"],
        ["over 1 MiB", post(JSON.stringify({ input: "x".repeat(1024 * 1024) })), 413, "payload_too_large"],
        ["unknown route", { path: "/v2/nothing" }, 404, "not_found"],
        ["wrong method", { method: "DELETE", path: "/v1/runs" }, 404, "not_found"],
        ["bad trace id", { path: "/api/traces/not-a-trace-id" }, 400, "bad_request"],
        ["unknown trace id", { path: "/api/traces/0190a000-0000-7000-8000-00000000dead" }, 404, "not_found"],
        ["limit out of range", { path: "/api/traces?limit=0" }, 400, "bad_request"],
        ["unknown status", { path: "/api/traces?status=maybe" }, 400, "bad_request"]
      ]
      const answers = yield* Effect.forEach(cases, ([, request]) => Http.request(port, request))
      const got = answers.map((answer, i) => [cases[i]![0], answer.status, answer.json?.error])
      expect(got).toEqual(cases.map(([name, , status, code]) => [name, status, code]))
      for (const answer of answers) {
        expect(answer.status).toBeLessThan(500)
        expect(answer.headers["x-trace-id"]).toBeDefined()
        expect(typeof answer.json.message).toBe("string")
      }
      expect(answers[3]!.json).toMatchObject({ field: "input", message: expect.stringMatching(/^input: /) })
      expect((yield* Http.get(port, "/healthz")).status).toBe(200)
    }))

  it.scoped("sg traces list --json and sg traces show <id> against the same Redis", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const { port } = yield* Server
      const answer = yield* Http.postRun(port, { input: "research circuit breakers with 2 researchers" })
      expect(answer.status).toBe(200)
      const id = String(answer.headers["x-trace-id"])
      yield* waitUntil("its record", Effect.map(Http.get(port, `/api/traces/${id}`), (a) => a.json?.record !== null),
        "5 seconds")
      const sg = (...args: Array<string>) => runSg(server.url, args)
      const [listed, errors, shown, shownJson] = yield* Effect.all([
        sg("traces", "list", "--json"),
        sg("traces", "list", "--status", "error", "--json", "--limit", "2"),
        sg("traces", "show", id),
        sg("traces", "show", id, "--json")
      ])
      const page = JSON.parse(listed.stdout)
      const api = (yield* Http.get(port, "/api/traces")).json
      expect(page).toEqual(api)
      expect(page.items[0]).toMatchObject({ trace_id: id, status: "success", agents: ["assistant", "researcher"] })
      const errorPage = JSON.parse(errors.stdout)
      expect(errorPage.items).toHaveLength(2)
      expect(errorPage.items.every((s: any) => s.status === "error")).toBe(true)
      expect(errorPage.next_cursor).toEqual(expect.any(String))
      expect(JSON.parse(shownJson.stdout)).toEqual((yield* Http.get(port, `/api/traces/${id}`)).json)

      const tree = shown.stdout.split("\n")
      expect(tree[0]).toBe(`trace ${id}`)
      expect(shown.stdout).toMatch(/lifecycle {2}COMPLETED \(created /)
      expect(tree.filter((line) => /^ {2}└─ run assistant /.test(line))).toHaveLength(1)
      // The researchers, indented under the assistant's run, each with its model call under it.
      expect(tree.filter((line) => /^ {5}[├└]─ run researcher [0-9a-f-]{36} {2}success /.test(line))).toHaveLength(2)
      expect(tree.filter((line) => /^ {5}[│ ] {2}└─ model demo {2}success .* tokens \d+ in \/ \d+ out$/.test(line)))
        .toHaveLength(2)
      expect(tree.filter((line) => /^ {5}├─ tool fan_out {2}success /.test(line))).toHaveLength(1)

      // As processes: an unknown id exits 1, a malformed one 2, each with a message on stderr only.
      const [unknown, malformed] = yield* Effect.all([
        spawnSg("unknown", ["traces", "show", "0190a000-0000-7000-8000-00000000dead"], { REDIS_URL: server.url }),
        spawnSg("malformed", ["traces", "show", "not-an-id"], { REDIS_URL: server.url })
      ])
      expect(yield* ended(unknown, "30 seconds")).toEqual({ code: 1, signal: null })
      expect(yield* ended(malformed, "30 seconds")).toEqual({ code: 2, signal: null })
      expect(unknown.stdout()).toBe("")
      expect(unknown.stderr()).toContain("no trace 0190a000-0000-7000-8000-00000000dead in redis://127.0.0.1:")
      expect(malformed.stdout()).toBe("")
      expect(malformed.stderr()).toContain("not a trace id: \"not-an-id\"")
    }), 60_000)

  it.effect("Redis stopped mid-way: runs answer 200, quickly once the store breaker opens; /readyz names it", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const { child, port } = yield* Server
      expect((yield* Http.get(port, "/readyz")).status).toBe(200)
      yield* server.stop
      const durations: Array<number> = []
      for (let i = 0; i < 8; i++) {
        const start = performance.now()
        const answer = yield* Http.postRun(port, { input: `what is ${i}+1?` })
        durations.push(performance.now() - start)
        expect(answer.status).toBe(200)
        expect(answer.json.output).toBe(`${i}+1 = ${i + 1}.`)
      }
      // The first run waits out the 500 ms command timeouts that open the breaker; the ones after skip the writes.
      expect(durations.slice(-5).filter((ms) => ms >= 250), `durations: ${durations.join(", ")}`).toEqual([])
      // Still ready (it serves without tracing), the store named as degraded.
      const unreachable = (a: Http.Answer) =>
        a.json?.degraded?.some((d: any) => d.name === "store" && d.message.startsWith("unreachable:")) === true
      const ready = yield* waitFor("/readyz to name the store unreachable", Effect.map(Http.get(port, "/readyz"),
        (a) => unreachable(a) ? Option.some(a) : Option.none()), "5 seconds", outputs(child))
      expect(ready.status).toBe(200)
      const status = (yield* Http.get(port, "/api/status")).json
      expect(status.redis).toMatchObject({ reachable: false })
      // Open, or half-open once its 1 s cool-down is over and before the replayer's next trial reopens it: not closed.
      const storeBreaker = status.circuits.find((c: { readonly name: string }) => c.name === "trace-store")
      expect(["open", "half_open"], JSON.stringify(status.circuits)).toContain(storeBreaker?.state)

      yield* server.start
      yield* waitUntil("/api/status to see Redis again", Effect.map(Http.get(port, "/api/status"),
        (a) => a.json.redis.reachable === true), "15 seconds", outputs(child))
      // Once the breaker's cool-down is over, a trial write goes through and lifecycle records are written again.
      const id = yield* waitFor("a run's lifecycle record in Redis", Effect.gen(function*() {
        const answer = yield* Http.postRun(port, { input: "what is 2*21?" })
        expect(answer.status).toBe(200)
        const id = String(answer.headers["x-trace-id"])
        const hash = yield* hashOf(id)
        return hash["state"] === "COMPLETED" ? Option.some(id) : Option.none()
      }).pipe(Effect.zipLeft(Effect.sleep("200 millis"))), "15 seconds", outputs(child))
      yield* waitUntil("its record", Effect.map(Http.get(port, `/api/traces/${id}`), (a) => a.json?.record !== null),
        "5 seconds")
      expect(child.stderr()).toContain("Redis reachable again")
    }), 60_000)
})

describe("sg serve, stopping", () => {
  it.live("SIGTERM: no new connections, the request in flight completes and is recorded, lease released, exit 0", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const { child, port } = yield* startServe("serve", { REDIS_URL: server.url, ...settings })
      const lease = command("GET", (c) => c.get("sg:lease:trace-watchdog"))
      yield* waitUntil("the serve process to hold the lease",
        Effect.map(lease, (token) => token !== null && pidOfToken(token) === child.pid), "10 seconds", outputs(child))

      // In flight: the gateway has created its lifecycle record and is reading the body, half of which has come.
      const inFlight = yield* Http.halfSentRun(port, { input: "what is 7*6?" })
      const id = yield* waitFor("the request to be received", Effect.map(
        command("SMEMBERS", (c) => c.smembers("sg:traces:active")),
        (ids) => Option.fromNullable(ids[0])
      ), "5 seconds", outputs(child))
      expect(yield* hashOf(id)).toMatchObject({ state: "RECEIVED" })

      yield* child.signal("SIGTERM")
      const stopping = Effect.sync(() => child.stderr().includes("stopping:"))
      yield* waitUntil("the server to stop accepting", stopping, "5 seconds", outputs(child))
      expect(child.stderr()).toContain("1 request(s) in flight")
      const refused = yield* Effect.flip(Http.get(port, "/healthz"))
      expect(refused.message).toContain("ECONNREFUSED")

      const answer = yield* inFlight.finish
      expect(answer.status).toBe(200)
      expect(answer.headers["x-trace-id"]).toBe(id)
      expect(answer.headers["connection"]).toBe("close")
      expect(answer.json.output).toBe("7*6 = 42.")

      expect(yield* ended(child)).toEqual({ code: 0, signal: null })
      expect(yield* lease).toBeNull()
      expect(child.stderr()).toContain("leadership released: interrupted; lease released")
      expect(yield* hashOf(id)).toMatchObject({ state: "COMPLETED" })
      // Flushed on the way out: the record was saved before the store's connection closed.
      const record = yield* command("HGETALL", (c) => c.hgetall(`sg:exec:${id}`))
      expect(record).toMatchObject({ status: "success", runs: "1" })
    }).pipe(Effect.scoped, Effect.provide(redis)), 60_000)

  it.live("without REDIS_URL: the in-memory store, said in the first log line; SIGTERM exits 0", () =>
    Effect.gen(function*() {
      const { child, port } = yield* startServe("memory", { REDIS_URL: "" })
      expect(child.stderr().split("\n")[0]).toContain(
        "REDIS_URL is not set: using the in-memory store; nothing is shared with other replicas"
      )
      expect(child.stderr()).toMatch(
        /listening on http:\/\/127\.0\.0\.1:\d+; store: memory \(this process only\); model: demo/
      )
      const answer = yield* Http.postRun(port, { input: "what is 2+3*4?" })
      expect(answer.status).toBe(200)
      const status = (yield* Http.get(port, "/api/status")).json
      expect(status).toMatchObject({ store: "memory", redis: null, watchdog: { leader: true } })
      expect((yield* Http.get(port, "/readyz")).json).toEqual({ ready: true, degraded: [] })
      yield* child.signal("SIGTERM")
      expect(yield* ended(child)).toEqual({ code: 0, signal: null })
    }).pipe(Effect.scoped), 60_000)

  it.live("a bad setting names its variable and exits non-zero before listening", () =>
    Effect.gen(function*() {
      const child = yield* spawnSg("bad-port", ["serve"], { REDIS_URL: "", PORT: "http" })
      expect((yield* ended(child, "30 seconds")).code).toBe(1)
      expect(child.stderr()).toContain("PORT")
      expect(child.stderr()).not.toContain("listening on")
    }).pipe(Effect.scoped), 60_000)
})
