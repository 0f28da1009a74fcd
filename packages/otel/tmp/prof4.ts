import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpBody from "@effect/platform/HttpBody"
import { GenAi, Otel } from "@sg/otel"
import { encodeTraces } from "../src/internal/protobuf.js"
import { ExecutionSpan, Recorder, Redaction, type TraceExporter } from "@sg/trace"
import { Effect, Layer } from "effect"
import * as Http from "node:http"
const captured: Array<TraceExporter.EndedTrace> = []
const hook: TraceExporter.Service = { sampleSuccess: 1, offer: (t) => void captured.push(t) }
const tracedRun = Effect.gen(function*() {
  for (let i = 0; i < 4; i++) {
    yield* ExecutionSpan.usage({ input: 100, output: 20 }).pipe(ExecutionSpan.inference("demo", { callId: `m${i}` }))
    yield* Effect.succeed(i).pipe(ExecutionSpan.tool("search", { callId: `t${i}`, input: "query" }))
  }
  return "answer"
}).pipe(ExecutionSpan.agentRun({ agentId: "planner", runId: "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", conversationId: "c" }), Effect.withSpan("POST /v1/runs", { captureStackTrace: false }))
const { TraceExporter: TE } = await import("@sg/trace")
const rec = Recorder.layer({ save: () => Effect.void, sampleSuccess: 1 }).pipe(Layer.provide(Layer.succeed(TE.TraceExporter, hook)))
const cpu = (label: string, n: number, per: number, f: () => void) => {
  for (let i = 0; i < n / 10; i++) f()
  const c0 = process.cpuUsage(); for (let i = 0; i < n; i++) f(); const c = process.cpuUsage(c0)
  console.log(label, ((c.user + c.system) / n / per).toFixed(2))
}
// recording alone: run + flush
await Effect.runPromise(Effect.gen(function*() { yield* tracedRun; yield* (yield* Recorder.Recorder).flush }).pipe(Effect.provide(rec)))
const trace = captured[0]!
const opts = { content: false, truncate: 500, redact: Redaction.defaults, sampleSuccess: 1 }
let out: any
cpu("toOtlpSpans cpu µs/trace", 20000, 1, () => { out = GenAi.toOtlpSpans(trace, opts) })
const spans = Array.from({ length: 52 }, () => out).flat().slice(0, 512)
const resource = Otel.resourceOf("sg")
let body: Uint8Array = new Uint8Array()
cpu("protobuf cpu µs/trace(10 spans)", 200, 512 / 10, () => { body = encodeTraces({ resource, scope: { name: "x" }, spans }) })
cpu("json cpu µs/trace(10 spans)", 200, 512 / 10, () => { JSON.stringify({ resourceSpans: [{ resource, scopeSpans: [{ scope: { name: "x" }, spans }] }] }) })
const server = Http.createServer((req, res) => { req.on("data", () => {}); req.on("end", () => { res.writeHead(200); res.end() }) })
await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()))
const url = `http://127.0.0.1:${(server.address() as any).port}/v1/traces`
await Effect.runPromise(Effect.gen(function*() {
  const client = yield* HttpClient.HttpClient
  const req = HttpClientRequest.post(url)
  const send = client.execute(HttpClientRequest.setBody(req, HttpBody.uint8Array(body, "application/x-protobuf"))).pipe(Effect.flatMap((r) => r.arrayBuffer), Effect.withTracerEnabled(false))
  for (let i = 0; i < 20; i++) yield* send
  const c0 = process.cpuUsage(); const n = 200
  for (let i = 0; i < n; i++) yield* send
  const c = process.cpuUsage(c0)
  console.log("fetch POST cpu µs/trace(10 spans of a 512-span batch)", ((c.user + c.system) / n / (512 / 10)).toFixed(2), "(includes the in-process server)")
}).pipe(Effect.provide(FetchHttpClient.layer)))
// recording CPU per run: runs+flush
await Effect.runPromise(Effect.gen(function*() {
  const r = yield* Recorder.Recorder
  for (let i = 0; i < 200; i++) yield* tracedRun
  yield* r.flush
  const c0 = process.cpuUsage(); const n = 2000
  for (let i = 0; i < n; i++) yield* tracedRun
  yield* r.flush
  const c = process.cpuUsage(c0)
  console.log("traced run + recording cpu µs/run", ((c.user + c.system) / n).toFixed(2))
}).pipe(Effect.provide(Recorder.layer({ save: () => Effect.void, sampleSuccess: 1 }))))
await Effect.runPromise(Effect.gen(function*() {
  for (let i = 0; i < 200; i++) yield* tracedRun
  const c0 = process.cpuUsage(); const n = 2000
  for (let i = 0; i < n; i++) yield* tracedRun
  const c = process.cpuUsage(c0)
  console.log("traced run alone cpu µs/run", ((c.user + c.system) / n).toFixed(2))
}))
server.close()
