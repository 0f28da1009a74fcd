/**
 * A real gateway for the browser tests, on a free port: the demo agent runtime, the memory store, real breakers and
 * the recorder keeping every record. Seeded over HTTP with runs of each kind the viewer must show, plus one record
 * saved directly (a timeout, with markup in its texts) that the demo cannot produce.
 */
import { HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { AgentRuntime } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { ExecutionRecord, ExecutionStore, Recorder, TraceId, TraceIdGenerator, TraceLifecycle, TraceStore } from "@sg/trace"
import { Clock, Context, DateTime, Duration, Effect, Layer, Schedule } from "effect"
import { createServer } from "node:http"
import * as Gateway from "../../src/Gateway.js"

/** The traces the fixture made, by what they show. */
export interface Seeded {
  readonly baseUrl: string
  /** `research three topics`: the assistant fans out to three researcher sub-agents. */
  readonly fanOut: TraceId.TraceId
  /** `what is 1/0?`: the calculator tool fails; the run still succeeds. */
  readonly toolError: TraceId.TraceId
  /** `research <script>alert(1)</script>`: markup in tool inputs and outputs. */
  readonly script: TraceId.TraceId
  /** `fail: …` three times: the model provider fails (502); the third opens the `model:demo` breaker. */
  readonly failed: ReadonlyArray<TraceId.TraceId>
  /** The run after those: its model call is rejected by the open breaker (503). */
  readonly rejected: TraceId.TraceId
  /** Saved directly: a run that timed out in a tool call, with markup in errors and in its lifecycle fields. */
  readonly timeout: TraceId.TraceId
  /** Every seeded id, oldest first. */
  readonly all: ReadonlyArray<TraceId.TraceId>
}

/** The seeded gateway. */
export class Seeds extends Context.Tag("test/gateway/browser/Seeds")<Seeds, Seeded>() {}

/** Markup the crafted record carries in its texts. */
export const markup = {
  toolError: "<script>alert(document.cookie)</script> after 1000 ms",
  runError: "RunTimeout: <img src=x onerror=alert(2)>",
  platform: "<script>alert(3)</script>"
} as const

const services = Layer.mergeAll(
  AgentRuntime.layerDemo().pipe(Layer.orDie),
  TraceLifecycle.layer(),
  TraceIdGenerator.layer
).pipe(Layer.provideMerge(Layer.mergeAll(TraceStore.layerMemory, ExecutionStore.layerMemory, CircuitBreaker.layer().pipe(Layer.orDie))))

const recording = Layer.unwrapEffect(
  Effect.map(ExecutionStore.ExecutionStore, (store) =>
    Recorder.layer({ save: store.save, sampleSuccess: 1, grace: Duration.millis(5) }))
)

const gateway = Gateway.layer().pipe(
  Layer.provide(recording),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
  Layer.provideMerge(services)
)

const iso = (millis: number) => DateTime.formatIso(DateTime.unsafeMake(millis))

const crafted = (id: TraceId.TraceId, runId: string, start: number): ExecutionRecord.ExecutionRecord => ({
  trace_id: id,
  status: "timeout",
  started_at: iso(start),
  ended_at: iso(start + 1200),
  duration_ms: 1200,
  error: markup.runError,
  runs: [{
    run_id: runId,
    agent_id: "assistant",
    status: "timeout",
    error: markup.runError,
    started_at: iso(start + 2),
    duration_ms: 1195,
    steps: 1,
    tokens: { input: 12, output: 5 },
    inference_calls: [{
      call_id: "model-1",
      model: "demo",
      started_at: iso(start + 5),
      duration_ms: 90,
      status: "success",
      input: "search the web for <b>bold</b> claims",
      output: "tool calls: web_search",
      tokens: { input: 12, output: 5 }
    }],
    tool_calls: [{
      call_id: "call-slow",
      tool: "web_search",
      started_at: iso(start + 100),
      duration_ms: 1000,
      status: "timeout",
      input: "{\"q\":\"<script>alert(1)</script>\"}",
      output: null,
      error: `timeout: ${markup.toolError}`
    }],
    events: []
  }]
})

const seed = Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const store = yield* TraceStore.TraceStore
  const generator = yield* TraceIdGenerator.TraceIdGenerator
  const address = server.address
  if (address._tag !== "TcpAddress") return yield* Effect.die(new Error("the gateway is not on TCP"))
  const baseUrl = `http://127.0.0.1:${address.port}`
  const run = (input: string, status: number) =>
    Effect.tryPromise(() =>
      fetch(`${baseUrl}/v1/runs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ input })
      })
    ).pipe(
      Effect.flatMap((response) => {
        const id = TraceId.parse(response.headers.get("x-trace-id") ?? "")
        return response.status === status && id._tag === "Some"
          ? Effect.succeed(id.value)
          : Effect.die(new Error(`POST /v1/runs ${JSON.stringify(input)} answered ${response.status}, not ${status}`))
      })
    )
  const fanOut = yield* run("research three topics", 200)
  const toolError = yield* run("what is 1/0?", 200)
  const script = yield* run("research <script>alert(1)</script>", 200)
  const failed = [yield* run("fail: one", 502), yield* run("fail: two", 502), yield* run("fail: three", 502)]
  const rejected = yield* run("hello after the outage", 503)

  const timeout = yield* generator.next
  const runId = yield* generator.next
  yield* store.create(timeout, "EGRESS", { platform: markup.platform, channel: "browser-test" })
  yield* (yield* ExecutionStore.ExecutionStore).save(crafted(timeout, runId, yield* Clock.currentTimeMillis))

  const all = [fanOut, toolError, script, ...failed, rejected, timeout]
  // The recorder writes after each response: wait until every record is listed.
  const listed = Effect.tryPromise(() =>
    fetch(`${baseUrl}/api/traces?limit=100`).then((r) => r.json() as Promise<{ items: Array<{ trace_id: string }> }>)
  )
  yield* listed.pipe(
    Effect.flatMap((page) =>
      all.every((id) => page.items.some((item) => item.trace_id === id))
        ? Effect.void
        : Effect.fail(new Error("not every seeded record is listed yet"))
    ),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("5 seconds")))
  )
  return { baseUrl, fanOut, toolError, script, failed, rejected, timeout, all }
})

/** The gateway, seeded. */
export const layer = Layer.effect(Seeds, Effect.orDie(seed)).pipe(Layer.provide(gateway))
