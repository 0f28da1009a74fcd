import { expect, layer } from "@effect/vitest"
import { HttpServer } from "@effect/platform"
import { TraceIdGenerator } from "@sg/trace"
import { Duration, Effect, Queue } from "effect"
import * as Http from "node:http"
import * as Prom from "./utils/promText.js"
import * as RuntimeGateway from "./utils/RuntimeGateway.js"
import * as T from "./utils/TestGateway.js"

const scrape = Effect.map(
  T.raw({ path: "/metrics" }).pipe(Effect.timeout("10 seconds")),
  (answer) => Prom.parse(answer.text)
)

/** The sum of the samples `name{labels}` (0 when there is none). */
const valueOf = (exposition: Prom.Exposition, name: string, labels: Readonly<Record<string, string>> = {}) =>
  Prom.find(exposition, name, labels).reduce((sum, sample) => sum + sample.value, 0)

/** How much `name{labels}` grew between two scrapes. */
const grew = (
  before: Prom.Exposition,
  after: Prom.Exposition,
  name: string,
  labels: Readonly<Record<string, string>> = {}
) => valueOf(after, name, labels) - valueOf(before, name, labels)

const run = (body: unknown) => T.postRun(body).pipe(Effect.timeout("30 seconds"))

layer(RuntimeGateway.layer, { excludeTestServices: true, timeout: "60 seconds" })("/metrics over the runtime", (it) => {
  it.effect("after a run with a tool call, every series DESIGN.md lists is there, with its labels", () =>
    Effect.gen(function*() {
      const before = yield* scrape
      const answer = yield* run({ input: "what is 2+3*4?" })
      expect(answer.status, answer.text).toBe(200)
      expect(answer.json.output).toBe("2+3*4 = 14.")
      const after = yield* scrape

      for (const [name, type] of [
        ["sg_http_requests_total", "counter"],
        ["sg_http_request_duration_seconds", "histogram"],
        ["sg_tool_calls_total", "counter"],
        ["sg_tool_call_duration_seconds", "histogram"],
        ["sg_model_calls_total", "counter"],
        ["sg_model_call_duration_seconds", "histogram"],
        ["sg_model_tokens_total", "counter"],
        ["sg_runs_total", "counter"],
        ["sg_breaker_state", "gauge"],
        ["sg_breaker_rejections_total", "counter"],
        ["sg_watchdog_sweeps_total", "counter"],
        ["sg_watchdog_sweep_failures_total", "counter"],
        ["sg_watchdog_orphans_retired_total", "counter"],
        ["sg_watchdog_missing_removed_total", "counter"],
        ["sg_records_saved_total", "counter"],
        ["sg_records_dropped_total", "counter"]
      ] as const) {
        expect(after.types.get(name), name).toBe(type)
        expect(after.help.get(name), name).toBeTruthy()
      }
      for (const old of ["records_saved", "records_dropped", "sg_watchdog_sweep_duration_ms"]) {
        expect(after.types.has(old), old).toBe(false)
      }

      const http = { method: "POST", route: "/v1/runs", status: "200" }
      expect(grew(before, after, "sg_http_requests_total", http)).toBe(1)
      expect(grew(before, after, "sg_http_request_duration_seconds_count", http)).toBe(1)

      const tool = { tool: "calculator", status: "success" }
      expect(grew(before, after, "sg_tool_calls_total", tool)).toBe(1)
      expect(grew(before, after, "sg_tool_call_duration_seconds_count", tool)).toBe(1)
      expect(grew(before, after, "sg_tool_call_duration_seconds_bucket", { ...tool, le: "+Inf" })).toBe(1)
      const toolSeconds = grew(before, after, "sg_tool_call_duration_seconds_sum", tool)
      expect(toolSeconds).toBeGreaterThan(0)
      // Seconds, not milliseconds: the whole request took less than a second.
      expect(toolSeconds).toBeLessThan(1)
      expect(Prom.find(after, "sg_tool_call_duration_seconds_bucket", { ...tool, le: "0.001" })).toHaveLength(1)

      const model = { provider: "demo", model: "demo", status: "success" }
      expect(grew(before, after, "sg_model_calls_total", model)).toBe(2)
      expect(grew(before, after, "sg_model_call_duration_seconds_count", model)).toBe(2)
      const modelSeconds = grew(before, after, "sg_model_call_duration_seconds_sum", model)
      expect(modelSeconds).toBeGreaterThan(0)
      expect(modelSeconds).toBeLessThan(1)
      const tokens = { provider: "demo", model: "demo" }
      expect(grew(before, after, "sg_model_tokens_total", { ...tokens, direction: "input" })).toBeGreaterThan(10)
      expect(grew(before, after, "sg_model_tokens_total", { ...tokens, direction: "output" })).toBeGreaterThan(5)
      expect(Prom.find(after, "sg_model_tokens_total").map((s) => s.labels["direction"]).sort()).toEqual([
        "input",
        "output"
      ])

      expect(grew(before, after, "sg_runs_total", { agent: "assistant", status: "success" })).toBe(1)
      for (const breaker of ["model:demo", "tool:calculator", "trace-store"]) {
        expect(valueOf(after, "sg_breaker_state", { breaker }), breaker).toBe(0)
        expect(Prom.find(after, "sg_breaker_rejections_total", { breaker }), breaker).toHaveLength(1)
      }
      expect(Prom.find(after, "sg_records_dropped_total").map((s) => s.labels["reason"]).sort()).toEqual([
        "invalid_trace_id",
        "queue_full",
        "reduce_failed",
        "shutdown",
        "store_failed",
        "too_many_traces"
      ])

      // The watchdog sweeps once it holds the lease, at start.
      const swept = yield* T.eventually(
        scrape.pipe(Effect.filterOrFail((e) => valueOf(e, "sg_watchdog_sweep_duration_seconds_count") >= 1))
      )
      expect(valueOf(swept, "sg_watchdog_sweeps_total")).toBeGreaterThanOrEqual(1)
      expect(valueOf(swept, "sg_watchdog_sweep_duration_seconds_sum")).toBeLessThan(5)
      expect(swept.types.get("sg_watchdog_sweep_duration_seconds")).toBe("histogram")
      expect(swept.types.get("sg_traces_active")).toBe("gauge")

      // Every label value is a configured name.
      const names = new Set(["assistant", "researcher", "stalling", "demo", "calculator", "clock", "fan_out"])
      for (const sample of after.samples) {
        for (const label of ["agent", "tool", "provider", "model"]) {
          const value = sample.labels[label]
          if (value !== undefined) expect(names.has(value) || value === "other", `${sample.name} ${label}`).toBe(true)
        }
      }
    }))

  it.effect("a provider outage: error calls, the breaker's transition to open, its rejection, the kept records", () =>
    Effect.gen(function*() {
      const before = yield* scrape
      for (let i = 0; i < 3; i++) expect((yield* run({ input: "fail: the provider is down" })).status).toBe(502)
      const rejected = yield* run({ input: "what is 1+1?" })
      expect(rejected.status).toBe(503)
      expect(rejected.json).toMatchObject({ error: "circuit_open", breaker: "model:demo" })
      const after = yield* scrape
      const model = { provider: "demo", model: "demo" }
      expect(grew(before, after, "sg_model_calls_total", { ...model, status: "error" })).toBe(3)
      expect(grew(before, after, "sg_model_calls_total", { ...model, status: "circuit_open" })).toBe(1)
      expect(grew(before, after, "sg_model_call_duration_seconds_count", { ...model, status: "error" })).toBe(3)
      expect(grew(before, after, "sg_model_tokens_total")).toBe(0)
      expect(after.types.get("sg_breaker_transitions_total")).toBe("counter")
      const opened = { breaker: "model:demo", from: "closed", to: "open" }
      expect(grew(before, after, "sg_breaker_transitions_total", opened)).toBe(1)
      expect(grew(before, after, "sg_breaker_rejections_total", { breaker: "model:demo" })).toBe(1)
      expect(valueOf(after, "sg_breaker_state", { breaker: "model:demo" })).toBe(2)
      expect(grew(before, after, "sg_runs_total", { agent: "assistant", status: "error" })).toBe(4)
      const saved = yield* T.eventually(
        scrape.pipe(Effect.filterOrFail((e) => grew(before, e, "sg_records_saved_total") >= 4))
      )
      expect(grew(before, saved, "sg_records_saved_total")).toBe(4)
    }))
})

/** Sends a run and returns the request, so the test can go away before it is answered. */
const sendAndLeave = (body: unknown, traceId: string) =>
  Effect.flatMap(HttpServer.HttpServer, (server) =>
    Effect.sync(() => {
      const address = server.address as HttpServer.TcpAddress
      const request = Http.request({
        host: "127.0.0.1",
        port: address.port,
        method: "POST",
        path: "/v1/runs",
        headers: { "content-type": "application/json", "x-trace-id": traceId },
        timeout: 30_000
      })
      request.on("error", () => undefined)
      request.end(JSON.stringify(body))
      return request
    }))

layer(RuntimeGateway.layer, { excludeTestServices: true, timeout: "60 seconds" })("a client that goes away", (it) => {
  it.effect("the run is recorded: error, cancelled, with the calls made before and the interrupted one", () =>
    Effect.gen(function*() {
      const traceId = yield* Effect.flatMap(TraceIdGenerator.TraceIdGenerator, (generator) => generator.next)
      const before = yield* scrape
      const request = yield* sendAndLeave({ input: "what is 2+3*4?", agent: "stalling" }, traceId)
      expect(yield* Queue.take(RuntimeGateway.calculatorCalled).pipe(Effect.timeout("10 seconds"))).toBe("2+3*4")
      request.destroy()

      // Successes are not kept here (sampleSuccess 0): this record is kept because it is an error.
      const detail = yield* T.eventually(
        T.raw({ path: `/api/traces/${traceId}` }).pipe(
          Effect.timeout("5 seconds"),
          Effect.filterOrFail((a) => a.status === 200 && a.json.record !== null && a.json.lifecycle !== null)
        ),
        Duration.seconds(10)
      )
      expect(detail.json.lifecycle).toMatchObject({ state: "ERRORED", fields: { error: "client_closed_request" } })
      const record = detail.json.record
      expect(record).toMatchObject({ trace_id: traceId, status: "error", error: "cancelled" })
      expect(record.runs).toHaveLength(1)
      const [stalled] = record.runs
      expect(stalled).toMatchObject({ agent_id: "stalling", status: "error", error: "cancelled", steps: 1 })
      expect(stalled.inference_calls).toHaveLength(1)
      expect(stalled.inference_calls[0]).toMatchObject({ status: "success", model: "demo" })
      expect(stalled.inference_calls[0].output).toContain("calculator")
      expect(stalled.inference_calls[0].tokens.input).toBeGreaterThan(0)
      expect(stalled.tool_calls).toHaveLength(1)
      expect(stalled.tool_calls[0]).toMatchObject({
        tool: "calculator",
        status: "error",
        error: "interrupted",
        interrupted: true,
        output: null
      })
      expect(stalled.tool_calls[0].input).toContain("2+3*4")

      const listed = yield* T.raw({ path: "/api/traces?status=error&agent=stalling" }).pipe(Effect.timeout("5 seconds"))
      expect(listed.json.items.map((item: { trace_id: string }) => item.trace_id)).toContain(traceId)
      expect(listed.json.items.find((item: { trace_id: string }) => item.trace_id === traceId).error).toBe("cancelled")

      const after = yield* scrape
      expect(grew(before, after, "sg_runs_total", { agent: "stalling", status: "cancelled" })).toBe(1)
      expect(grew(before, after, "sg_tool_calls_total", { tool: "calculator", status: "interrupted" })).toBe(1)
      expect(grew(before, after, "sg_http_requests_total", { route: "/v1/runs", status: "499" })).toBe(1)
      expect(grew(before, after, "sg_records_saved_total")).toBeGreaterThanOrEqual(1)
    }))
})
