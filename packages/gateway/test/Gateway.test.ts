// absolute dates: a fake watchdog's status, served as is; no store or clock reads it
import { describe, expect, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { CircuitBreaker } from "@sg/resilience"
import { TraceId, TraceRecord, TraceStore, TraceWatchdog } from "@sg/trace"
import { Duration, Effect, Layer, Option } from "effect"
import * as Net from "node:net"
import * as ApiError from "../src/ApiError.js"
import * as Ingress from "../src/Ingress.js"
import * as FakeRuntime from "./utils/FakeRuntime.js"
import { mintedIdOf, traceHeadersOf } from "./utils/headers.js"
import * as Prom from "./utils/promText.js"
import * as T from "./utils/TestGateway.js"

const callerTrace = "0af7651916cd43dd8448eb211c80319c"
const callerTraceId = "0af76519-16cd-43dd-8448-eb211c80319c"
const callerSpan = "b7ad6b7169203331"
const neverSeen = "01900000-0000-7000-8000-0000000fffff"

layer(T.layerMemory, { excludeTestServices: true })("gateway over the memory store", (it) => {
  it.effect("POST /v1/runs answers the runtime's result under a minted UUIDv7 trace id", () =>
    Effect.gen(function*() {
      const answer = yield* T.postRun({ input: "hello", conversation_id: "c-1" })
      expect(answer.status).toBe(200)
      const id = mintedIdOf(answer)
      expect(answer.json).toMatchObject({ trace_id: id, status: "success", output: "echo: hello", steps: 1 })
      expect(answer.headers["content-type"]).toBe("application/json")

      const client = yield* T.client
      const result = yield* client.runs.create({ payload: { input: "again" } })
      expect(result.output).toBe("echo: again")
      expect(TraceId.versionOf(result.trace_id)).toBe(7)
      expect(result.trace_id > id).toBe(true)
    }))

  it.effect("every response carries x-trace-id and traceparent, error responses included", () =>
    Effect.gen(function*() {
      const requests: Array<[T.RawRequest, number]> = [
        [{ path: "/healthz" }, 200],
        [{ path: "/readyz" }, 200],
        [{ path: "/metrics" }, 200],
        [{ path: "/api/status" }, 200],
        [{ path: "/api/traces" }, 200],
        [{ path: "/api/traces/not-an-id" }, 400],
        [{ path: `/api/traces/${neverSeen}` }, 404],
        [{ path: "/no/such/route" }, 404],
        [{ method: "DELETE", path: "/v1/runs" }, 404],
        [{ method: "POST", path: "/v1/runs", body: "{" }, 400],
        [{ method: "POST", path: "/v1/runs", body: JSON.stringify({ input: "x".repeat(2 * 1024 * 1024) }) }, 413],
        [{ method: "POST", path: "/v1/runs", body: JSON.stringify({ input: "timeout" }) }, 504],
        [{ method: "POST", path: "/v1/runs", body: JSON.stringify({ input: "die" }) }, 500]
      ]
      const ids: Array<string> = []
      for (const [request, status] of requests) {
        const answer = yield* T.raw(request)
        expect(answer.status, `${request.method ?? "GET"} ${request.path}`).toBe(status)
        ids.push(mintedIdOf(answer))
      }
      expect(new Set(ids).size).toBe(ids.length)
      expect([...ids].sort()).toEqual(ids)
    }))

  it.effect("adopts a valid traceparent: same trace, a fresh server span id, the caller's sampled flag", () =>
    Effect.gen(function*() {
      const answer = yield* T.postRun({ input: "adopted" }, {
        traceparent: `00-${callerTrace}-${callerSpan}-01`,
        "x-trace-id": "01900000-0000-7000-8000-000000000001"
      })
      expect(answer.status).toBe(200)
      const headers = traceHeadersOf(answer)
      expect(headers.traceId).toBe(callerTraceId)
      expect(headers.spanId).not.toBe(callerSpan)
      expect(headers.flags).toBe(1)
      expect(answer.json.trace_id).toBe(callerTraceId)
      expect((yield* FakeRuntime.Seen).some((run) => run.traceId === callerTraceId)).toBe(true)

      const unsampled = yield* T.raw({
        path: "/healthz",
        headers: { traceparent: `00-${callerTrace}-${callerSpan}-00` }
      })
      expect(traceHeadersOf(unsampled)).toMatchObject({ traceId: callerTraceId, flags: 0 })
      // The W3C random flag (0x02) is never passed on: a UUIDv7's low bytes are not all random.
      const random = yield* T.raw({ path: "/healthz", headers: { traceparent: `00-${callerTrace}-${callerSpan}-03` } })
      expect(traceHeadersOf(random)).toMatchObject({ traceId: callerTraceId, flags: 1 })
      expect(random.headers["traceparent"]).toMatch(/-01$/)
    }))

  it.effect("adopts a valid x-trace-id when there is no valid traceparent", () =>
    Effect.gen(function*() {
      const id = "01900000-0000-7000-8000-00000000abcd"
      const plain = yield* T.postRun({ input: "by header" }, { "x-trace-id": id })
      expect(traceHeadersOf(plain).traceId).toBe(id)
      expect(plain.json.trace_id).toBe(id)
      const withBadParent = yield* T.raw({
        path: "/healthz",
        headers: { "x-trace-id": id, traceparent: `00-${callerTrace.toUpperCase()}-${callerSpan}-01` }
      })
      expect(traceHeadersOf(withBadParent).traceId).toBe(id)
    }))

  it.effect("ignores invalid traceparent and x-trace-id headers and mints a UUIDv7", () =>
    Effect.gen(function*() {
      const invalid: Array<Record<string, string>> = [
        { traceparent: `00-${callerTrace.toUpperCase()}-${callerSpan}-01` },
        { traceparent: `00-${callerTrace}-${callerSpan.toUpperCase()}-01` },
        { traceparent: `ff-${callerTrace}-${callerSpan}-01` },
        { traceparent: `01-${callerTrace}-${callerSpan}-01` },
        { traceparent: `00-${callerTrace}-${callerSpan}-01-extra` },
        { traceparent: `00-${"0".repeat(32)}-${callerSpan}-01` },
        { traceparent: `00-${callerTrace}-${"0".repeat(16)}-01` },
        { traceparent: `00-${callerTrace.slice(1)}-${callerSpan}-01` },
        { traceparent: `00-${callerTrace}-${callerSpan}-1` },
        { traceparent: "garbage" },
        { "x-trace-id": callerTraceId.toUpperCase() },
        { "x-trace-id": "00000000-0000-0000-0000-000000000000" },
        { "x-trace-id": callerTrace },
        { "x-trace-id": "hello" }
      ]
      for (const headers of invalid) {
        const answer = yield* T.postRun({ input: "fresh" }, headers)
        expect(answer.status, JSON.stringify(headers)).toBe(200)
        const id = mintedIdOf(answer)
        expect(id).not.toBe(callerTraceId)
        expect(answer.json.trace_id).toBe(id)
      }
    }))

  it.effect("lifecycle: RECEIVED with metadata, the runtime's INFERRING, COMPLETED (a whole answer is not EGRESS apart) with the terminal TTL", () =>
    Effect.gen(function*() {
      const answer = yield* T.postRun(
        { input: "lifecycle", metadata: { observe: "true" } },
        { "x-sg-platform": "telegram", "x-sg-channel": "dm" }
      )
      expect(answer.status).toBe(200)
      const id = mintedIdOf(answer)
      expect(yield* T.writesOf(id)).toEqual([
        {
          op: "create",
          id,
          state: "RECEIVED",
          fields: { method: "POST", route: "/v1/runs", platform: "telegram", channel: "dm" }
        },
        { op: "annotate", id, fields: { observe: "true" } },
        { op: "transition", id, state: "INFERRING" },
        { op: "finish", id, state: "COMPLETED" }
      ])
      expect((yield* FakeRuntime.Seen).find((run) => run.traceId === id)?.state).toBe("RECEIVED")
      const store = yield* TraceStore.TraceStore
      const record = Option.getOrThrow(yield* store.get(id))
      expect(record.state).toBe("COMPLETED")
      expect(record.fields).toEqual({
        method: "POST",
        route: "/v1/runs",
        platform: "telegram",
        channel: "dm",
        observe: "true"
      })
      const ttl = Duration.toSeconds(Option.getOrThrow(yield* store.ttl(id)))
      expect(ttl).toBeGreaterThan(3590)
      expect(ttl).toBeLessThanOrEqual(3600)
      expect(yield* store.isActive(id)).toBe(false)
    }))

  it.effect("metadata lands in the lifecycle hash, values cut to 500 characters; sg's own fields are refused", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const metadata = { customer: "acme", empty: "", long: "é".repeat(499) + "😀" + "x", "user.tier": "gold" }
      const answer = yield* T.postRun({ input: "with metadata", metadata }, { "x-sg-platform": "web" })
      expect(answer.status).toBe(200)
      const record = Option.getOrThrow(yield* store.get(mintedIdOf(answer)))
      expect(record.state).toBe("COMPLETED")
      expect(record.fields).toEqual({
        method: "POST",
        route: "/v1/runs",
        platform: "web",
        customer: "acme",
        empty: "",
        long: "é".repeat(499),
        "user.tier": "gold"
      })

      const full = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`.padEnd(64, "k"), "v"]))
      const most = yield* T.postRun({ input: "32 keys of 64 characters", metadata: full })
      expect(most.status).toBe(200)
      expect(Object.keys(Option.getOrThrow(yield* store.get(mintedIdOf(most))).fields).length).toBe(32 + 2)

      for (const name of [...TraceRecord.reservedFields, ...Ingress.ownFields]) {
        const refused = yield* T.postRun({ input: "overwrite", metadata: { ok: "yes", [name]: "mine" } })
        expect(refused.status, name).toBe(400)
        expect(refused.json).toMatchObject({ error: "bad_request", field: `metadata.${name}` })
        expect(refused.json.message).toMatch(new RegExp(`^metadata\\.${name}: `))
        const lifecycle = Option.getOrThrow(yield* store.get(mintedIdOf(refused)))
        expect(lifecycle.state).toBe("ERRORED")
        expect(lifecycle.fields["error"]).toBe("bad_request")
        expect(lifecycle.fields["ok"]).toBeUndefined()
      }
    }))

  it.effect("lifecycle: ERRORED with the error code when the run fails or the request is bad", () =>
    Effect.gen(function*() {
      const cases: Array<[unknown, number, string]> = [
        [{ input: "provider-down:errored" }, 502, "upstream_error"],
        [{ input: "timeout" }, 504, "timeout"],
        [{ input: "hi", agent: "nobody" }, 400, "bad_request"],
        [{ input: "" }, 400, "bad_request"],
        [{ input: "die" }, 500, "internal_error"]
      ]
      const store = yield* TraceStore.TraceStore
      for (const [body, status, code] of cases) {
        const answer = yield* T.postRun(body)
        expect(answer.status, JSON.stringify(body)).toBe(status)
        expect(answer.json.error).toBe(code)
        const id = mintedIdOf(answer)
        const writes = yield* T.writesOf(id)
        expect(writes[0]).toMatchObject({ op: "create", state: "RECEIVED" })
        expect(writes.at(-1)).toEqual({ op: "finish", id, state: "ERRORED", fields: { error: code } })
        expect(writes.map((w) => w.state)).not.toContain("EGRESS")
        const record = Option.getOrThrow(yield* store.get(id))
        expect(record.state).toBe("ERRORED")
        expect(record.fields["error"]).toBe(code)
      }
    }))

  it.effect("only agent runs get a lifecycle record: not health, metrics, status or reads", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      for (const path of ["/healthz", "/readyz", "/metrics", "/api/status", "/api/traces", "/nowhere"]) {
        const id = mintedIdOf(yield* T.raw({ path }))
        expect(yield* T.writesOf(id), path).toEqual([])
        expect(Option.isNone(yield* store.get(id)), path).toBe(true)
      }
    }))

  it.effect("/api/traces lists the Recorder's records newest first, filtered, paged; /api/traces/:id opens one", () =>
    Effect.gen(function*() {
      const client = yield* T.client
      const ok = mintedIdOf(yield* T.postRun({ input: "listed", conversation_id: "conv-1" }))
      const helper = mintedIdOf(yield* T.postRun({ input: "helped", agent: "helper" }))
      const slow = mintedIdOf(yield* T.postRun({ input: "timeout" }))
      const page = yield* T.eventually(
        client.traces.list({ urlParams: { limit: 100 } }).pipe(
          Effect.filterOrFail((page) => [ok, helper, slow].every((id) => page.items.some((i) => i.trace_id === id)))
        )
      )
      const position = (id: string) => page.items.findIndex((item) => item.trace_id === id)
      expect(position(slow)).toBeLessThan(position(helper))
      expect(position(helper)).toBeLessThan(position(ok))
      expect(page.items[position(ok)]).toMatchObject({ status: "success", agents: ["default"], tool_calls: 1 })
      expect(page.items[position(slow)]?.status).toBe("timeout")

      const timeouts = yield* client.traces.list({ urlParams: { status: "timeout", limit: 100 } })
      expect(timeouts.items.some((item) => item.trace_id === slow)).toBe(true)
      expect(timeouts.items.every((item) => item.status === "timeout")).toBe(true)
      const helpers = yield* client.traces.list({ urlParams: { agent: "helper", limit: 100 } })
      expect(helpers.items.map((item) => item.trace_id)).toContain(helper)
      expect(helpers.items.map((item) => item.trace_id)).not.toContain(ok)

      const first = yield* client.traces.list({ urlParams: { limit: 1 } })
      expect(first.items).toHaveLength(1)
      expect(first.next_cursor).not.toBeNull()
      const second = yield* client.traces.list({ urlParams: { limit: 1, cursor: first.next_cursor! } })
      expect(second.items[0]!.trace_id < first.items[0]!.trace_id).toBe(true)

      const detail = yield* client.traces.get({ path: { trace_id: ok } })
      expect(detail.trace_id).toBe(ok)
      expect(detail.lifecycle?.state).toBe("COMPLETED")
      expect(detail.lifecycle?.fields).toMatchObject({ method: "POST", route: "/v1/runs" })
      expect(detail.record).toMatchObject({ trace_id: ok, status: "success", conversation_id: "conv-1" })
      expect(detail.record?.runs[0]).toMatchObject({ agent_id: "default", status: "success" })
      expect(detail.record?.runs[0]?.tool_calls[0]).toMatchObject({ tool: "length", input: "listed" })

      const failed = yield* T.raw({ path: `/api/traces/${slow}` })
      expect(failed.status).toBe(200)
      expect(failed.json.lifecycle).toMatchObject({ state: "ERRORED", fields: { error: "timeout" } })
      expect(failed.json.record.status).toBe("timeout")
    }))

  it.effect("/api/traces/:trace_id: 404 not_found for an unknown trace, 400 naming trace_id for a malformed one", () =>
    Effect.gen(function*() {
      const unknown = yield* T.raw({ path: `/api/traces/${neverSeen}` })
      expect(unknown.status).toBe(404)
      expect(unknown.json).toMatchObject({ error: "not_found" })
      expect(unknown.json.message).toContain(neverSeen)
      const malformed = yield* T.raw({ path: "/api/traces/0AF76519-16CD-43DD-8448-EB211C80319C" })
      expect(malformed.status).toBe(400)
      expect(malformed.json).toMatchObject({ error: "bad_request", field: "trace_id" })
      expect(malformed.json.message).toMatch(/^trace_id: /)

      const client = yield* T.client
      const error = yield* Effect.flip(client.traces.get({ path: { trace_id: TraceId.TraceId.make(neverSeen) } }))
      expect(error).toBeInstanceOf(ApiError.NotFound)
    }))

  it.effect("run failures: 502 upstream_error three times, then 503 circuit_open with Retry-After; 504 timeout", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 3; i++) {
        const answer = yield* T.postRun({ input: "provider-down:flaky" })
        expect(answer.status).toBe(502)
        expect(answer.json).toEqual({ error: "upstream_error", provider: "flaky", message: "flaky answered 500" })
        expect(answer.headers["retry-after"]).toBeUndefined()
      }
      const open = yield* T.postRun({ input: "provider-down:flaky" })
      expect(open.status).toBe(503)
      traceHeadersOf(open)
      const retryAfter = Number(open.headers["retry-after"])
      expect(Number.isInteger(retryAfter)).toBe(true)
      expect(retryAfter).toBeGreaterThanOrEqual(29)
      expect(retryAfter).toBeLessThanOrEqual(30)
      expect(open.json).toMatchObject({ error: "circuit_open", breaker: "model:flaky", retry_after: retryAfter })
      expect(typeof open.json.message).toBe("string")

      const client = yield* T.client
      const rejected = yield* Effect.flip(client.runs.create({ payload: { input: "provider-down:flaky" } }))
      expect(rejected).toBeInstanceOf(ApiError.CircuitOpen)
      expect(rejected).toMatchObject({ breaker: "model:flaky" })

      const timeout = yield* T.postRun({ input: "timeout" })
      expect(timeout.status).toBe(504)
      expect(timeout.json).toMatchObject({ error: "timeout", timeout_ms: 30_000 })
      const unknownAgent = yield* T.postRun({ input: "hi", agent: "nobody" })
      expect(unknownAgent.status).toBe(400)
      expect(unknownAgent.json).toMatchObject({ error: "bad_request", field: "agent" })
      expect(unknownAgent.json.message).toMatch(/^agent: /)
    }))

  it.effect("/api/status: memory store, no Redis, no watchdog, the breakers", () =>
    Effect.gen(function*() {
      yield* T.postRun({ input: "warm the trace-store breaker" })
      const client = yield* T.client
      const status = yield* client.ops.status()
      expect(status.store).toBe("memory")
      expect(status.redis).toBeNull()
      expect(status.watchdog).toBeNull()
      expect(status.circuits.find((c) => c.name === "trace-store")).toMatchObject({ state: "closed", failures: 0 })
      const raw = yield* T.raw({ path: "/api/status" })
      expect(raw.json.circuits.find((c: { name: string }) => c.name === "trace-store")).toEqual({
        name: "trace-store",
        state: "closed",
        failures: 0,
        opened_at: null,
        retry_after: 0,
        shared: false
      })
    }))

  it.effect("/healthz and /readyz answer 200 with no Redis in use, nothing degraded", () =>
    Effect.gen(function*() {
      const health = yield* T.raw({ path: "/healthz" })
      expect([health.status, health.json]).toEqual([200, { status: "ok" }])
      const ready = yield* T.eventually(T.raw({ path: "/readyz" }).pipe(Effect.filterOrFail((a) => a.status === 200)))
      // The store answers; what is named is only the breakers earlier tests of this layer left open.
      const open = (yield* (yield* CircuitBreaker.CircuitBreaker).snapshot).filter((s) => s.state !== "closed")
      expect(ready.json).toEqual({
        ready: true,
        degraded: open.map((s) => ({ name: `breaker:${s.name}`, message: expect.any(String) }))
      })
    }))

  it.effect("/metrics is Prometheus text with request counts and latency by route and status, and breaker states", () =>
    Effect.gen(function*() {
      yield* T.postRun({ input: "counted" })
      yield* T.raw({ path: "/not/a/route" })
      const answer = yield* T.raw({ path: "/metrics" })
      expect(answer.status).toBe(200)
      expect(answer.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8")
      const metrics = Prom.parse(answer.text)
      expect(metrics.types.get("sg_http_requests_total")).toBe("counter")
      expect(metrics.types.get("sg_http_request_duration_seconds")).toBe("histogram")
      const runs = Prom.find(metrics, "sg_http_requests_total", { method: "POST", route: "/v1/runs", status: "200" })
      expect(runs).toHaveLength(1)
      expect(runs[0]!.value).toBeGreaterThanOrEqual(1)
      expect(Prom.find(metrics, "sg_http_requests_total", { route: "unmatched", status: "404" })[0]!.value)
        .toBeGreaterThanOrEqual(1)
      const runLabels = { route: "/v1/runs", status: "200" }
      const buckets = Prom.find(metrics, "sg_http_request_duration_seconds_bucket", runLabels)
      expect(buckets.at(-1)!.labels["le"]).toBe("+Inf")
      const count = Prom.find(metrics, "sg_http_request_duration_seconds_count", runLabels)
      expect(buckets.at(-1)!.value).toBe(count[0]!.value)
      expect(Prom.find(metrics, "sg_breaker_state", { breaker: "trace-store" })[0]!.value).toBe(0)
      expect(Prom.find(metrics, "sg_records_saved_total").length).toBe(1)
    }))

  it.effect("/metrics has each breaker's state, transitions (from, to) and rejections", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 4; i++) yield* T.postRun({ input: "provider-down:flaky" })
      const metrics = Prom.parse((yield* T.raw({ path: "/metrics" })).text)
      const breaker = { breaker: "model:flaky" }
      expect(Prom.find(metrics, "sg_breaker_state", breaker)[0]!.value).toBe(2)
      const opened = Prom.find(metrics, "sg_breaker_transitions_total", { ...breaker, from: "closed", to: "open" })
      expect(opened[0]!.value).toBeGreaterThanOrEqual(1)
      expect(Prom.find(metrics, "sg_breaker_rejections_total", breaker)[0]!.value).toBeGreaterThanOrEqual(1)
      expect(metrics.types.get("sg_breaker_transitions_total")).toBe("counter")
    }))
})

const deadPort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const unreachableRedis = Layer.unwrapEffect(
  Effect.map(deadPort, (port) =>
    RedisClient.layer({ url: `redis://127.0.0.1:${port}`, connectTimeout: "200 millis", commandTimeout: "200 millis" }))
)

const lastSweep = {
  at: "2025-11-23T10:00:00.000Z",
  ok: true,
  report: { scanned: 12, removed_missing: 1, removed_terminal: 0, orphaned: 2, skipped_unreadable: 0, duration_ms: 3.5 },
  error: null
}

/** A watchdog that says it leads at epoch 7. */
const leadingWatchdog = Layer.succeed(TraceWatchdog.TraceWatchdog, {
  status: Effect.succeed({ leader: true, epoch: 7, last_sweep: lastSweep })
})

describe("a memory store beside a Redis client that cannot reach its server, and a watchdog running", () => {
  const gateway = T.layerMemory.pipe(Layer.provideMerge(Layer.merge(unreachableRedis, leadingWatchdog)))
  layer(gateway, { excludeTestServices: true })("", (it) => {
    it.effect("/readyz and /api/status look at the store it writes to, not at a Redis client beside it", () =>
      Effect.gen(function*() {
        const ready = yield* T.eventually(T.raw({ path: "/readyz" }).pipe(Effect.filterOrFail((a) => a.status === 200)))
        expect(ready.json).toEqual({ ready: true, degraded: [] })
        traceHeadersOf(ready)
        expect((yield* T.raw({ path: "/healthz" })).status).toBe(200)
        const status = yield* T.raw({ path: "/api/status" })
        expect(status.status).toBe(200)
        expect(status.json.store).toBe("memory")
        expect(status.json.redis).toBeNull()
        expect(status.json.watchdog).toEqual({ leader: true, epoch: 7, last_sweep: lastSweep })
      }))
  })
})
