import { describe, expect, it } from "@effect/vitest"
import { GenAi } from "@sg/otel"
import { RecordText, Redaction } from "@sg/trace"
import * as OtlpTestReceiver from "@sg/otel/OtlpTestReceiver"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as Http from "./utils/http.js"
import { fakeOpenAi, hexOf, named, sample, traceSpans } from "./utils/otel.js"
import { ended, outputs, waitFor, waitUntil } from "./utils/processes.js"
import { startServe } from "./utils/serve.js"

/** Every HTTP call of these tests gives up after this. */
const httpLimit = "15 seconds"
const post = (port: number, body: unknown, headers?: Readonly<Record<string, string>>) =>
  Http.postRun(port, body, headers).pipe(Effect.timeout(httpLimit), Effect.orDie)
const get = (port: number, path: string) => Http.get(port, path).pipe(Effect.timeout(httpLimit), Effect.orDie)

const contentKeys = [...GenAi.contentAttributes, "sg.input", "sg.output"]

/** The ancestors of a span, nearest first, by span id. */
const ancestors = (spans: ReadonlyArray<OtlpTestReceiver.ReceivedSpan>, span: OtlpTestReceiver.ReceivedSpan) => {
  const byId = new Map(spans.map((s) => [s.spanId, s]))
  const chain: Array<string> = []
  for (let p = span.parentSpanId; p !== undefined; p = byId.get(p)?.parentSpanId) {
    chain.push(byId.get(p)?.name ?? `missing ${p}`)
  }
  return chain
}

describe("sg serve exporting over OTLP", () => {
  it.scopedLive("a run with a tool call and sub-agents: one trace under its x-trace-id; a traceparent is kept", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      const { child, port } = yield* startServe("serve-otel", {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.baseUrl,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_SERVICE_NAME: "sg-e2e",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test",
        OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=team%20secret",
        SG_SAMPLE_SUCCESS: "1"
      })
      expect(child.stderr()).toContain(`OTLP export to ${receiver.url} (http/protobuf, service sg-e2e)`)
      expect(child.stderr()).toContain("headers x-api-key")
      const answer = yield* post(port, {
        input: "research circuit breakers with 2 researchers",
        conversation_id: "c-otel"
      })
      expect(answer.status).toBe(200)
      const id = String(answer.headers["x-trace-id"])
      const spans = yield* traceSpans(receiver, id, 9, outputs(child))
      expect(yield* receiver.errors).toEqual([])
      const byName = named(spans)

      // The server span is the root: no parent (the id was minted), and the span the response's traceparent names.
      const [root] = byName("POST /v1/runs")
      expect(root!.parentSpanId).toBeUndefined()
      expect(root!.kind).toBe(2)
      expect(String(answer.headers["traceparent"])).toBe(`00-${hexOf(id)}-${root!.spanId}-01`)
      expect(root!.resource).toMatchObject({ "service.name": "sg-e2e", "deployment.environment": "test" })
      expect(root!.attributes).toMatchObject({ "http.response.status_code": 200, "sg.sampling.reason": "sampled" })

      const [assistant] = byName("invoke_agent assistant")
      expect(ancestors(spans, assistant!).at(-1)).toBe("POST /v1/runs")
      expect(assistant!.attributes).toMatchObject({
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "assistant",
        "gen_ai.agent.id": answer.json.run_id,
        "gen_ai.conversation.id": "c-otel",
        "gen_ai.provider.name": "demo"
      })
      const chats = byName("chat demo")
      expect(chats.filter((c) => c.parentSpanId === assistant!.spanId)).toHaveLength(2)
      for (const chat of chats) {
        expect(chat.attributes).toMatchObject({
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": "demo",
          "gen_ai.request.model": "demo",
          "gen_ai.response.model": "demo",
          "gen_ai.usage.input_tokens": expect.any(Number),
          "gen_ai.usage.output_tokens": expect.any(Number),
          "gen_ai.response.finish_reasons": expect.any(Array)
        })
      }
      const [tool] = byName("execute_tool fan_out")
      expect(tool!.parentSpanId).toBe(assistant!.spanId)
      expect(tool!.attributes).toMatchObject({
        "gen_ai.tool.name": "fan_out",
        "gen_ai.tool.call.id": expect.any(String)
      })
      const researchers = byName("invoke_agent researcher")
      expect(researchers.map((r) => r.parentSpanId)).toEqual([tool!.spanId, tool!.spanId])
      for (const span of spans) {
        expect(contentKeys.filter((key) => key in span.attributes), `${span.name} carries contents`).toEqual([])
      }

      // A caller's traceparent: its trace id, and its span as the root's parent.
      const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
      const adopted = yield* post(port, { input: "what is 2+3*4?" }, {
        traceparent: `00-${caller}-00f067aa0ba902b7-01`
      })
      expect(adopted.status).toBe(200)
      const adoptedSpans = yield* traceSpans(receiver, String(adopted.headers["x-trace-id"]), 5, outputs(child))
      const [adoptedRoot] = named(adoptedSpans)("POST /v1/runs")
      expect(adoptedRoot!.traceId).toBe(caller)
      expect(adoptedRoot!.parentSpanId).toBe("00f067aa0ba902b7")
      expect(named(adoptedSpans)("execute_tool calculator")).toHaveLength(1)

      const requests = yield* receiver.requests
      expect(requests.map((r) => [r.contentType, r.headers["x-api-key"]])).toContainEqual([
        "application/x-protobuf",
        "team secret"
      ])
      expect(child.stderr()).not.toContain("team secret")

      const metrics = (yield* get(port, "/metrics")).text
      expect(sample(metrics, "sg_otel_spans_exported_total")).toBeGreaterThanOrEqual(14)
      expect(sample(metrics, "sg_otel_spans_dropped_total{reason=\"queue_full\"}")).toBe(0)
    }), { timeout: 90_000 })

  it.scopedLive("SG_SAMPLE_SUCCESS=0, http/json: the failed run only, flushed by SIGTERM, its contents cut", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      const { child, port } = yield* startServe("serve-otel-json", {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.baseUrl,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_BSP_SCHEDULE_DELAY: "600000",
        SG_SAMPLE_SUCCESS: "0",
        SG_OTEL_CONTENT: "on",
        SG_TRUNCATE: "24"
      })
      const ok = yield* post(port, { input: "what is 2+3*4?" })
      expect(ok.status).toBe(200)
      const input = "fail: the provider is down, says a very long input"
      const failed = yield* post(port, { input })
      expect(failed.status).toBe(502)
      // Nothing is sent before a batch fills or the 10-minute delay passes: only the stop's flush sends them.
      yield* Effect.sleep("1 second")
      expect(yield* receiver.attempts).toBe(0)
      yield* child.signal("SIGTERM")
      expect(yield* ended(child)).toEqual({ code: 0, signal: null })

      expect(yield* receiver.errors).toEqual([])
      expect((yield* receiver.requests).map((r) => r.contentType)).toEqual(["application/json"])
      const spans = yield* receiver.spans
      expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([hexOf(String(failed.headers["x-trace-id"]))]))
      const byName = named(spans)
      const [root] = byName("POST /v1/runs")
      expect(root!.attributes).toMatchObject({ "http.response.status_code": 502, "sg.sampling.reason": "error" })
      const [run] = byName("invoke_agent assistant")
      expect(run!.status.code).toBe(2)
      expect(run!.attributes["error.type"]).toBe("UpstreamError")
      const messages = JSON.parse(String(run!.attributes["gen_ai.input.messages"]))
      expect(messages).toEqual([{
        role: "user",
        parts: [{ type: "text", content: `${input.slice(0, 24)}…[${input.length - 24} more chars cut]` }]
      }])
    }), { timeout: 90_000 })

  it.scopedLive("SG_OTEL_SAMPLE_SUCCESS=1: a success exported, its record not kept; tool contents cut", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      const { child, port } = yield* startServe("serve-otel-override", {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        SG_SAMPLE_SUCCESS: "0",
        SG_OTEL_SAMPLE_SUCCESS: "1",
        SG_OTEL_CONTENT: "on",
        SG_TRUNCATE: "16"
      })
      const answer = yield* post(port, { input: "what is 2+3*4?" })
      const id = String(answer.headers["x-trace-id"])
      const spans = yield* traceSpans(receiver, id, 5, outputs(child))
      const [tool] = named(spans)("execute_tool calculator")
      const cut = (value: unknown) => RecordText.clip(value, 16, Redaction.defaults)
      expect(tool!.attributes["gen_ai.tool.call.arguments"]).toBe(cut({ expression: "2+3*4" }))
      expect(tool!.attributes["gen_ai.tool.call.result"]).toBe(cut({ expression: "2+3*4", value: 14 }))
      expect(String(tool!.attributes["gen_ai.tool.call.result"])).toMatch(/^\{"expression":"2…\[\d+ more chars cut\]$/u)
      const detail = yield* get(port, `/api/traces/${id}`)
      expect(detail.json.record).toBeNull()
    }), { timeout: 90_000 })

  it.scopedLive("collector down, then slow: runs keep their latency, drops counted, queue capped, export resumes", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      yield* receiver.down
      const { child, port } = yield* startServe("serve-otel-down", {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.baseUrl,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_BSP_MAX_QUEUE_SIZE: "40",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "10",
        SG_SAMPLE_SUCCESS: "1"
      })
      const latencies = (n: number) =>
        Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) =>
          Effect.gen(function*() {
            const started = performance.now()
            const answer = yield* post(port, { input: `what is ${i}+1?` })
            expect(answer.status).toBe(200)
            return performance.now() - started
          }))
      const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
      const metric = (series: string) => Effect.map(get(port, "/metrics"), (m) => sample(m.text, series))

      // Down: every export fails fast; the runs do not notice.
      const down = yield* latencies(40)
      expect(median(down)).toBeLessThan(250)
      expect(Math.max(...down)).toBeLessThan(2000)
      yield* waitUntil(
        "failed exports in /metrics",
        Effect.map(metric("sg_otel_spans_dropped_total{reason=\"export_failed\"}"), (n) => n > 10),
        "15 seconds",
        outputs(child)
      )
      expect(yield* metric("sg_otel_spans_dropped_total{reason=\"queue_full\"}")).toBeGreaterThan(0)
      expect(child.stderr()).toContain("OTLP export to")
      // One warning for the burst, however many batches failed (two at least; nothing got through, so it goes on).
      expect(child.stderr().match(/OTLP export dropped \d+ spans/g)?.length).toBe(1)

      // Slow: each export takes 5 s, one at a time; the runs still do not notice, and the queue stays at its cap.
      yield* receiver.setBehavior({ _tag: "Slow", delay: "5 seconds" })
      yield* receiver.up
      const slow = yield* latencies(40)
      expect(median(slow)).toBeLessThan(250)
      expect(Math.max(...slow)).toBeLessThan(2000)
      const fullBefore = yield* metric("sg_otel_spans_dropped_total{reason=\"queue_full\"}")
      yield* latencies(20)
      expect(yield* metric("sg_otel_spans_dropped_total{reason=\"queue_full\"}")).toBeGreaterThan(fullBefore)
      expect(yield* metric("sg_otel_queue_spans")).toBeLessThanOrEqual(40)
      const rss = yield* waitFor("the process' memory", Effect.sync(() => rssOf(child.pid)), "1 second")
      expect(rss).toBeLessThan(400 * 1024 * 1024)

      // Back to normal: a new run's trace arrives whole.
      yield* receiver.setBehavior({ _tag: "Accept" })
      yield* Effect.sleep("6 seconds") // the slow export in flight ends, the queue drains
      const last = yield* post(port, { input: "what is 6*7?" })
      yield* traceSpans(receiver, String(last.headers["x-trace-id"]), 5, outputs(child))
      yield* waitUntil("the line saying export works again",
        Effect.sync(() => child.stderr().includes("works again")), "10 seconds", outputs(child))
    }), { timeout: 120_000 })

  it.scopedLive("model calls carry the traceparent of their span: an instrumented upstream joins the trace", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      const upstream = yield* fakeOpenAi("Hello there.")
      const { child, port } = yield* startServe("serve-otel-openai", {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.baseUrl,
        OTEL_BSP_SCHEDULE_DELAY: "50",
        SG_SAMPLE_SUCCESS: "1",
        SG_MODEL: "openai",
        OPENAI_API_KEY: "sk-test-0123456789abcdef",
        OPENAI_BASE_URL: upstream.baseUrl
      })
      const answer = yield* post(port, { input: "hello" })
      expect(answer.status).toBe(200)
      const id = String(answer.headers["x-trace-id"])
      const spans = yield* traceSpans(receiver, id, 4, outputs(child))
      const [request] = upstream.received
      const traceparent = Option.getOrThrow(Option.fromNullable(request?.traceparent))
      const [, traceId, parentId] = traceparent.split("-")
      expect(traceId).toBe(hexOf(id))
      // The upstream's parent is the HTTP client span of the model call, a child of the `chat` span.
      const client = spans.find((s) => s.spanId === parentId)
      expect(client?.name).toBe("http.client POST")
      expect(client?.kind).toBe(3)
      const [chat] = named(spans)("chat gpt-4o-mini")
      expect(client!.parentSpanId).toBe(chat!.spanId)
      expect(chat!.attributes).toMatchObject({
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.id": "resp_1",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 7
      })
      // The API key never leaves in a span.
      expect(JSON.stringify(spans)).not.toContain("sk-test-0123456789abcdef")
    }), { timeout: 90_000 })
})

/** Resident memory of a process (Linux `/proc`), in bytes. */
const rssOf = (pid: number): Option.Option<number> => {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)
    return kb === null ? Option.none() : Option.some(Number(kb[1]) * 1024)
  } catch {
    return Option.none()
  }
}
