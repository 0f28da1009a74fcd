import { HttpServer } from "@effect/platform"
import { describe, expect, layer } from "@effect/vitest"
import { ExecutionStore, Recorder, type TraceId, TraceStore } from "@sg/trace"
import { Duration, Effect } from "effect"
import OpenAI from "openai"
import * as Access from "./utils/AccessGateway.js"
import { keys, send } from "./utils/AccessGateway.js"
import { mintedIdOf } from "./utils/headers.js"
import * as promText from "./utils/promText.js"
import * as Sse from "./utils/sse.js"
import * as T from "./utils/TestGateway.js"

type Who = "none" | "wrong" | "run" | "otherRead" | "admin"

/** The key each column sends: none, one not configured, acme's run key, globex's read key, the admin key. */
const keyOf: Record<Who, string | undefined> = {
  none: undefined,
  wrong: keys.wrong,
  run: keys.runAcme,
  otherRead: keys.readGlobex,
  admin: keys.admin
}

interface Row {
  readonly name: string
  readonly method: string
  /** The path; `:id` is the trace an acme run made. */
  readonly path: string
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>>
  readonly shape: "sg" | "openai" | "none"
  readonly expected: Record<Who, number>
  /** What a 200 answer looks like. */
  readonly stream?: boolean
}

const chat = { model: "assistant", messages: [{ role: "user", content: "hi" }] }
const needsRun = { none: 401, wrong: 401, run: 200, otherRead: 403, admin: 200 }
const needsRead = { none: 401, wrong: 401, run: 403, otherRead: 200, admin: 200 }
const open = { none: 200, wrong: 200, run: 200, otherRead: 200, admin: 200 }

const table: ReadonlyArray<Row> = [
  { name: "POST /v1/runs", method: "POST", path: "/v1/runs", body: { input: "hi" }, shape: "sg", expected: needsRun },
  {
    name: "POST /v1/runs streamed",
    method: "POST",
    path: "/v1/runs",
    body: { input: "hi", stream: true },
    shape: "sg",
    expected: needsRun,
    stream: true
  },
  {
    name: "POST /v1/runs, accept: text/event-stream",
    method: "POST",
    path: "/v1/runs",
    body: { input: "hi" },
    headers: { accept: "text/event-stream" },
    shape: "sg",
    expected: needsRun,
    stream: true
  },
  { name: "POST /v1/chat/completions", method: "POST", path: "/v1/chat/completions", body: chat, shape: "openai", expected: needsRun },
  {
    name: "POST /v1/chat/completions streamed",
    method: "POST",
    path: "/v1/chat/completions",
    body: { ...chat, stream: true },
    shape: "openai",
    expected: needsRun,
    stream: true
  },
  { name: "GET /v1/models", method: "GET", path: "/v1/models", shape: "openai", expected: needsRun },
  { name: "GET /v1/models/:model", method: "GET", path: "/v1/models/assistant", shape: "openai", expected: needsRun },
  { name: "GET /api/traces", method: "GET", path: "/api/traces", shape: "sg", expected: needsRead },
  {
    name: "GET /api/traces/:id (acme's)",
    method: "GET",
    path: "/api/traces/:id",
    shape: "sg",
    expected: { ...needsRead, otherRead: 404 }
  },
  { name: "GET /api/status", method: "GET", path: "/api/status", shape: "sg", expected: needsRead },
  {
    name: "GET /metrics",
    method: "GET",
    path: "/metrics",
    shape: "sg",
    expected: { none: 401, wrong: 401, run: 403, otherRead: 403, admin: 200 }
  },
  { name: "GET /healthz", method: "GET", path: "/healthz", shape: "none", expected: open },
  { name: "GET /readyz", method: "GET", path: "/readyz", shape: "none", expected: open },
  { name: "GET / (the viewer page)", method: "GET", path: "/", shape: "none", expected: open },
  { name: "GET /traces/:id (the viewer page)", method: "GET", path: "/traces/:id", shape: "none", expected: open },
  {
    name: "GET an unknown path",
    method: "GET",
    path: "/nowhere",
    shape: "sg",
    expected: { none: 401, wrong: 401, run: 404, otherRead: 404, admin: 404 }
  }
]

const scopeOf = (row: Row) =>
  row.path.startsWith("/v1") ? "run" : row.path === "/metrics" ? "admin" : "read"

/** The real `openai` client on the gateway under test, with `apiKey` (10 s timeout, no retries). */
const openai = (apiKey: string) =>
  Effect.map(HttpServer.HttpServer, (server) => {
    const address = server.address
    if (address._tag !== "TcpAddress") throw new Error("not a TCP server")
    return new OpenAI({ baseURL: `http://127.0.0.1:${address.port}/v1`, apiKey, maxRetries: 0, timeout: 10_000 })
  })

/** Everything the tests below were answered, to check that no key shows in any of it. */
const bodies: Array<string> = []
const sent = (method: string, path: string, key: string | undefined, body?: unknown, headers?: Record<string, string>) =>
  Effect.tap(send(method, path, key, body, headers), (answer) => Effect.sync(() => void bodies.push(answer.text)))

layer(Access.make(), { excludeTestServices: true, timeout: "60 seconds" })("access with API keys", (it) => {
  it.effect("every route × {no key, wrong key, run key, another tenant's read key, admin key}", () =>
    Effect.gen(function*() {
      const made = yield* sent("POST", "/v1/runs", keys.runAcme, { input: "the acme trace" })
      expect(made.status).toBe(200)
      const acmeTrace = mintedIdOf(made)
      const failures: Array<string> = []
      for (const row of table) {
        const path = row.path.replace(":id", acmeTrace)
        for (const who of Object.keys(keyOf) as Array<Who>) {
          const answer = yield* sent(row.method, path, keyOf[who], row.body, row.headers)
          const expected = row.expected[who]
          if (answer.status !== expected) {
            failures.push(`${row.name} with ${who}: ${answer.status} (expected ${expected}) ${answer.text.slice(0, 200)}`)
            continue
          }
          // Every answer, refusals too, carries the trace headers.
          expect(answer.headers["x-trace-id"], `${row.name} ${who}`).toMatch(/^[0-9a-f-]{36}$/)
          if (expected === 401) {
            expect(answer.headers["www-authenticate"]).toMatch(/^Bearer\b/)
            if (row.shape === "openai") {
              expect(answer.json.error).toMatchObject({ code: "unauthorized", type: "invalid_request_error" })
            } else expect(answer.json).toMatchObject({ error: "unauthorized", message: expect.any(String) })
          }
          if (expected === 403) {
            const scope = scopeOf(row)
            if (row.shape === "openai") {
              expect(answer.json.error).toMatchObject({ code: "forbidden", message: expect.stringContaining(scope) })
            } else expect(answer.json).toMatchObject({ error: "forbidden", scope })
          }
          if (expected === 200 && row.stream === true) {
            expect(answer.headers["content-type"]).toMatch(/^text\/event-stream/)
            const events = Sse.parse(answer.text)
            expect(events.length).toBeGreaterThan(1)
          }
        }
      }
      expect(failures).toEqual([])
    }))

  it.effect("a refused request reaches neither the app nor the store: no lifecycle write, counted in the metrics", () =>
    Effect.gen(function*() {
      const refused = yield* sent("POST", "/v1/runs", undefined, { input: "no key" })
      expect(refused.status).toBe(401)
      const adopted = "0190a000-0000-7000-8000-00000000ac01"
      const forged = yield* sent("POST", "/v1/runs", keys.wrong, { input: "x" }, { "x-trace-id": adopted })
      expect(forged.status).toBe(401)
      expect(forged.headers["x-trace-id"]).toBe(adopted)
      const forbidden = yield* sent("POST", "/v1/chat/completions", keys.readGlobex, chat)
      expect(forbidden.status).toBe(403)
      for (const answer of [refused, forged, forbidden]) {
        expect(yield* T.writesOf(answer.headers["x-trace-id"] as string)).toEqual([])
      }
      const metrics = yield* sent("GET", "/metrics", keys.admin)
      const samples = promText.parse(metrics.text).samples.filter((s) => s.name === "sg_http_requests_total")
      expect(samples.find((s) => s.labels["route"] === "/v1/runs" && s.labels["status"] === "401")?.value)
        .toBeGreaterThanOrEqual(2)
      expect(samples.find((s) => s.labels["route"] === "/v1/chat/completions" && s.labels["status"] === "403"))
        .toBeDefined()
    }))

  it.effect("a path is judged as the route it reaches: case, slashes and percent-encoding change nothing", () =>
    Effect.gen(function*() {
      for (const path of ["/API/traces", "//api//traces/", "/%61pi/traces", "/api/traces;x", "/api/Traces?limit=1"]) {
        const answer = yield* sent("GET", path, keys.runAcme)
        expect(answer.status, path).toBe(403)
        expect(answer.json).toMatchObject({ error: "forbidden", scope: "read" })
      }
      expect((yield* sent("HEAD", "/api/traces", keys.runAcme)).status).toBe(403)
      expect((yield* sent("GET", "/V1/Models", keys.readGlobex)).status).toBe(403)
      expect((yield* sent("GET", "/METRICS", keys.readGlobex)).status).toBe(403)
      expect((yield* sent("GET", "/v1/../api/traces", keys.runAcme)).status).not.toBe(200)
      expect((yield* sent("GET", "/HEALTHZ", undefined)).status).toBe(200)
    }))

  it.effect("x-api-key works as a bearer token does; a malformed Authorization is no key", () =>
    Effect.gen(function*() {
      const viaHeader = yield* sent("GET", "/api/traces", undefined, undefined, { "x-api-key": keys.readGlobex })
      expect(viaHeader.status).toBe(200)
      const basic = yield* sent("GET", "/api/traces", undefined, undefined, {
        authorization: `Basic ${Buffer.from(`x:${keys.admin}`).toString("base64")}`
      })
      expect(basic.status).toBe(401)
      const lower = yield* sent("GET", "/api/traces", undefined, undefined, { authorization: `bearer ${keys.admin}` })
      expect(lower.status).toBe(200)
    }))

  it.effect("OpenAI's own client: its apiKey is the bearer; a wrong one is an AuthenticationError", () =>
    Effect.gen(function*() {
      const good = yield* openai(keys.runAcme)
      const completion = yield* Effect.promise(() =>
        good.chat.completions.create({ model: "assistant", messages: [{ role: "user", content: "hi" }] })
      )
      expect(completion.choices[0]!.message.content).toBe("Hello: hi")
      const models = yield* Effect.promise(() => good.models.list())
      expect(models.data.map((m) => m.id)).toContain("assistant")
      const bad = yield* openai(keys.wrong)
      const error = yield* Effect.flip(Effect.tryPromise({
        try: () => bad.chat.completions.create({ model: "assistant", messages: [{ role: "user", content: "hi" }] }),
        catch: (error) => error
      }))
      expect(error).toBeInstanceOf(OpenAI.AuthenticationError)
      expect((error as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe("unauthorized")
      const reader = yield* openai(keys.readGlobex)
      const denied = yield* Effect.flip(Effect.tryPromise({ try: () => reader.models.list(), catch: (e) => e }))
      expect(denied).toBeInstanceOf(OpenAI.PermissionDeniedError)
    }))

  it.effect("/api/status lists the tenants and the number of keys, never a key; a tenant's key sees its own", () =>
    Effect.gen(function*() {
      const admin = yield* sent("GET", "/api/status", keys.admin)
      expect(admin.json.access).toEqual({
        enabled: true,
        keys: 5,
        tenants: ["acme", "globex", "ops"],
        rate_limit: null,
        metrics_public: false
      })
      const tenant = yield* sent("GET", "/api/status", keys.readGlobex)
      expect(tenant.json.access).toMatchObject({ enabled: true, keys: 5, tenants: ["globex"] })
    }))

  it.effect("no key appears in any answer, log line or record of these tests", () =>
    Effect.gen(function*() {
      yield* Effect.flatMap(Recorder.Recorder, (recorder) => recorder.flush)
      const store = yield* TraceStore.TraceStore
      const executions = yield* ExecutionStore.ExecutionStore
      const page = yield* executions.list({ limit: 100 })
      const records: Array<string> = []
      for (const item of page.items) {
        const record = yield* executions.get(item.trace_id as TraceId.TraceId)
        const lifecycle = yield* store.get(item.trace_id as TraceId.TraceId)
        records.push(JSON.stringify(record), JSON.stringify(lifecycle))
      }
      expect(records.length).toBeGreaterThan(10)
      const logs = yield* Access.Logs
      yield* Access.noKeyIn("an answer", bodies)
      yield* Access.noKeyIn("a record or lifecycle", records)
      yield* Access.noKeyIn("a log line", logs)
      expect(bodies.length).toBeGreaterThan(80)
    }))
})

layer(Access.make(), { excludeTestServices: true, timeout: "60 seconds" })("tenants, in memory", (it) => {
  it.effect("each tenant lists and opens its own traces; another's id is a 404; admin sees all", () =>
    Effect.gen(function*() {
      const acme1 = mintedIdOf(yield* sent("POST", "/v1/runs", keys.acme, { input: "a1" }))
      const globex1 = mintedIdOf(yield* sent("POST", "/v1/chat/completions", keys.globex, chat))
      const acme2 = mintedIdOf(yield* sent("POST", "/v1/runs", keys.runAcme, { input: "a2" }))
      yield* Effect.flatMap(Recorder.Recorder, (recorder) => recorder.flush)
      const ids = (path: string, key: string) =>
        T.eventually(Effect.flatMap(send("GET", path, key), (answer) =>
          answer.status === 200 ? Effect.succeed((answer.json.items as Array<{ trace_id: string }>).map((i) => i.trace_id))
          : Effect.fail(answer)))
      const listed = (path: string, key: string, expected: ReadonlyArray<string>) =>
        T.eventually(Effect.flatMap(ids(path, key), (got) =>
          JSON.stringify(got) === JSON.stringify(expected) ? Effect.succeed(got) : Effect.fail(got)), "5 seconds").pipe(
            Effect.catchAll((got) => Effect.sync(() => expect(got).toEqual(expected)))
          )
      yield* listed("/api/traces", keys.acme, [acme2, acme1])
      yield* listed("/api/traces", keys.globex, [globex1])
      yield* listed("/api/traces", keys.admin, [acme2, globex1, acme1])
      yield* listed("/api/traces?tenant=acme", keys.admin, [acme2, acme1])
      yield* listed("/api/traces?tenant=acme", keys.acme, [acme2, acme1])
      const other = yield* send("GET", "/api/traces?tenant=globex", keys.acme)
      expect(other.status).toBe(403)
      expect(other.json).toMatchObject({ error: "forbidden", scope: "admin" })

      const own = yield* send("GET", `/api/traces/${acme1}`, keys.acme)
      expect(own.status).toBe(200)
      expect(own.json.record.tenant).toBe("acme")
      expect(own.json.lifecycle.fields.tenant).toBe("acme")
      const unknown = yield* send("GET", "/api/traces/0190a000-0000-7000-8000-0000000fffff", keys.acme)
      const foreign = yield* send("GET", `/api/traces/${globex1}`, keys.acme)
      expect(foreign.status).toBe(404)
      expect(foreign.json.message.replace(globex1, "<id>")).toBe(
        unknown.json.message.replace("0190a000-0000-7000-8000-0000000fffff", "<id>")
      )
      expect((yield* send("GET", `/api/traces/${acme2}`, keys.globex)).status).toBe(404)
      const seen = yield* send("GET", `/api/traces/${globex1}`, keys.admin)
      expect(seen.json.record.tenant).toBe("globex")
    }))

  it.effect("a run's metadata may not name the tenant; a trace adopted across tenants keeps its tenant's runs", () =>
    Effect.gen(function*() {
      const bad = yield* send("POST", "/v1/runs", keys.acme, { input: "x", metadata: { tenant: "globex" } })
      expect(bad.status).toBe(400)
      expect(bad.json).toMatchObject({ error: "bad_request", field: "metadata.tenant" })

      const first = yield* send("POST", "/v1/runs", keys.acme, { input: "mine" })
      const id = mintedIdOf(first)
      yield* Effect.flatMap(Recorder.Recorder, (recorder) => recorder.flush)
      yield* T.eventually(Effect.flatMap(send("GET", `/api/traces/${id}`, keys.acme), (a) =>
        a.json?.record ? Effect.void : Effect.fail(a)))
      // Another tenant's request naming the trace: served (the id is the caller's to give), but it reads nothing of
      // acme's, and its runs stay out of acme's record.
      const joined = yield* send("POST", "/v1/runs", keys.globex, { input: "theirs" }, { "x-trace-id": id })
      expect(joined.status).toBe(200)
      yield* Effect.flatMap(Recorder.Recorder, (recorder) => recorder.flush)
      yield* Effect.sleep(Duration.millis(100))
      expect((yield* send("GET", `/api/traces/${id}`, keys.globex)).status).toBe(404)
      const record = (yield* send("GET", `/api/traces/${id}`, keys.acme)).json.record
      expect(record.runs).toHaveLength(1)
      expect(record.tenant).toBe("acme")
      expect((yield* Access.Logs).some((line) => line.includes("belongs to another tenant"))).toBe(true)
    }))
})

describe("rate limits through the gateway", () => {
  layer(Access.make({ limit: { limit: 3, window: Duration.minutes(1), text: "3/minute" } }), {
    excludeTestServices: true,
    timeout: "60 seconds"
  })("SG_RATE_LIMIT=3/minute, memory", (it) => {
    it.effect("a key's fourth request is a 429 with Retry-After and the x-ratelimit headers; other keys go on", () =>
      Effect.gen(function*() {
        const answers = []
        for (let i = 0; i < 4; i++) answers.push(yield* send("GET", "/v1/models", keys.acme))
        expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429])
        expect(answers.map((a) => a.headers["x-ratelimit-remaining-requests"])).toEqual(["2", "1", "0", "0"])
        for (const a of answers) expect(a.headers["x-ratelimit-limit-requests"]).toBe("3")
        expect(answers[0]!.headers["x-ratelimit-reset-requests"]).toMatch(/^\d+s$/)
        const limited = answers[3]!
        const retryAfter = Number(limited.headers["retry-after"])
        expect(retryAfter).toBeGreaterThanOrEqual(1)
        expect(retryAfter).toBeLessThanOrEqual(60)
        expect(limited.json.error).toMatchObject({ code: "rate_limited" })
        const sgShape = yield* send("GET", "/api/traces", keys.acme)
        expect(sgShape.status).toBe(429)
        expect(sgShape.json).toMatchObject({ error: "rate_limited", limit: "3/minute", retry_after: expect.any(Number) })
        expect(yield* T.writesOf(sgShape.headers["x-trace-id"] as string)).toEqual([])
        expect((yield* send("GET", "/v1/models", keys.globex)).status).toBe(200)
        // Refusals before the key is known spend nothing.
        expect((yield* send("GET", "/v1/models", keys.wrong)).status).toBe(401)
        const status = yield* send("GET", "/api/status", keys.admin)
        expect(status.json.access.rate_limit).toBe("3/minute")
      }))
  })

  layer(Access.make({ metricsPublic: true }), { excludeTestServices: true })("SG_METRICS_PUBLIC=on", (it) => {
    it.effect("/metrics needs no key; the rest still does", () =>
      Effect.gen(function*() {
        expect((yield* send("GET", "/metrics", undefined)).status).toBe(200)
        expect((yield* send("GET", "/api/traces", undefined)).status).toBe(401)
        expect((yield* send("GET", "/api/status", keys.admin)).json.access.metrics_public).toBe(true)
      }))
  })
})
