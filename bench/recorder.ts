/**
 * `pnpm bench recorder`: what recording execution records costs. One traced agent run of 10 spans (a request span,
 * an agent run, four model calls with token usage, four tool calls), run synchronously, under
 * - none: no recorder, Effect's default tracer (the baseline);
 * - off: `Recorder.layerConfig` with `SG_RECORD=off`: should be indistinguishable from none;
 * - on: `Recorder.layer` with its defaults (successes sampled at 10 %), saving to a sink that does nothing;
 * - export on: the same with `@sg/otel` exporting every trace (successes at 100 %, the worst case) over OTLP/HTTP
 *   (protobuf) to a local receiver that discards what it gets;
 * - tracing disabled: `Effect.withTracerEnabled(false)`, for scale.
 *
 * Request path: each case runs batches of 50 runs in turn, interleaved batch by batch (the machine is shared, so
 * load hits every case alike), with an event-loop turn after each batch where the recorder's writer works, as it would
 * between a server's requests; the figure is the median batch, timing only the runs. CPU in all: each case alone,
 * writer included (reduce, sample, save), timed with the harness, best of 3 rounds.
 * Goal: on adds under 20 µs per run to the request path; off adds nothing measurable; export on adds under 10 µs
 * more than on.
 * `SG_BENCH_BATCHES` (600) and `SG_BENCH_ROUND_MS` (500) shorten it for a smoke run.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Otel, OtlpExporter } from "@sg/otel"
import { ExecutionSpan, Recorder } from "@sg/trace"
import { ConfigProvider, Effect, Layer, ManagedRuntime, Metric } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { type Figure, measure, report } from "./harness.js"

const tracedRun = Effect.gen(function*() {
  for (let i = 0; i < 4; i++) {
    yield* ExecutionSpan.usage({ input: 100, output: 20 }).pipe(ExecutionSpan.inference("demo", { callId: `m${i}` }))
    yield* Effect.succeed(i).pipe(ExecutionSpan.tool("search", { callId: `t${i}`, input: "query" }))
  }
  return "answer"
}).pipe(
  ExecutionSpan.agentRun({ agentId: "planner", runId: "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", conversationId: "c" }),
  Effect.withSpan("POST /v1/runs", { captureStackTrace: false })
)

const save = () => Effect.void
const runsPerBatch = 50
const batches = Number(process.env["SG_BENCH_BATCHES"] ?? 600)
const roundMs = Number(process.env["SG_BENCH_ROUND_MS"] ?? 500)
const turn = () => new Promise((resolve) => setImmediate(resolve))

interface Case {
  readonly name: string
  readonly layer: Layer.Layer<never, unknown>
  readonly program: Effect.Effect<string>
}

const off = Layer.discard(Recorder.layerConfig({ save })).pipe(
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["SG_RECORD", "off"]]))))
)

/** An OTLP/HTTP receiver that reads and discards every request, on a free loopback port. */
const discardingReceiver = () =>
  new Promise<{ readonly url: string; readonly close: () => void }>((resolve) => {
    const server = Http.createServer((req, res) => {
      req.on("data", () => {})
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/x-protobuf" })
        res.end()
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resolve({ url: `http://127.0.0.1:${port}/v1/traces`, close: () => server.close() })
    })
  })

const casesFor = (url: string): ReadonlyArray<Case> => [
  { name: "none", layer: Layer.empty, program: tracedRun },
  { name: "off", layer: off, program: tracedRun },
  { name: "on", layer: Layer.discard(Recorder.layer({ save })), program: tracedRun },
  {
    name: "export on",
    layer: Layer.discard(Recorder.layer({ save })).pipe(
      Layer.provide(Otel.layer({ url, sampleSuccess: 1, scheduledDelay: "100 millis", maxQueueSize: 20_000 })),
      Layer.provide(NodeHttpClient.layerWithoutAgent),
      Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: true }))
    ),
    program: tracedRun
  },
  { name: "tracing disabled", layer: Layer.empty, program: Effect.withTracerEnabled(tracedRun, false) }
]

let cases: ReadonlyArray<Case> = []

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** Median µs per run of each case's batches, the cases interleaved batch by batch. */
const requestPath = async (): Promise<Map<string, number>> => {
  const runtimes = cases.map((c) => ({ c, runtime: ManagedRuntime.make(c.layer) }))
  for (const { runtime } of runtimes) await runtime.runPromise(Effect.void)
  const samples = new Map(cases.map((c) => [c.name, [] as Array<number>]))
  const warmup = Math.min(100, Math.floor(batches / 5))
  for (let b = 0; b < batches; b++) {
    // Each batch starts at a different case, so none always runs right after another's writer turn.
    const order = [...runtimes.slice(b % runtimes.length), ...runtimes.slice(0, b % runtimes.length)]
    for (const { c, runtime } of order) {
      const start = performance.now()
      for (let i = 0; i < runsPerBatch; i++) runtime.runSync(c.program)
      if (b >= warmup) samples.get(c.name)!.push(((performance.now() - start) * 1000) / runsPerBatch)
      await turn()
    }
  }
  for (const { runtime } of runtimes) await runtime.dispose()
  return new Map(Array.from(samples, ([name, xs]) => [name, median(xs)]))
}

/** Runs per second of a case alone, its writer working in the event-loop turns between batches. */
const cpu = async (c: Case): Promise<Figure> => {
  const runtime = ManagedRuntime.make(c.layer)
  await runtime.runPromise(Effect.void)
  const figure = await measure(c.name, runsPerBatch, async () => {
    for (let i = 0; i < runsPerBatch; i++) runtime.runSync(c.program)
    await turn()
  }, { minMs: roundMs })
  await runtime.dispose()
  return figure
}

/** Runs the benchmark and prints its figures. */
export const run = async (): Promise<void> => {
  const receiver = await discardingReceiver()
  cases = casesFor(receiver.url)
  const path = await requestPath()
  const none = path.get("none")!
  report(
    `execution recording, request path: one traced run of 10 spans (median of ${batches} interleaved batches)`,
    cases.map((c) => ({
      name: c.name,
      opsPerSec: 1e6 / path.get(c.name)!,
      extra: { "µs/run": path.get(c.name)!.toFixed(2), added: `${(path.get(c.name)! - none).toFixed(2)} µs` }
    })),
    "none"
  )

  const best = new Map<string, Figure>()
  for (let r = 0; r < 3; r++) {
    for (const c of cases) {
      const figure = await cpu(c)
      if ((best.get(c.name)?.opsPerSec ?? 0) < figure.opsPerSec) best.set(c.name, figure)
    }
  }
  const us = (name: string) => 1e6 / best.get(name)!.opsPerSec
  report(
    "execution recording, CPU in all, writer included (best of 3 rounds)",
    cases.map((c) => ({
      ...best.get(c.name)!,
      extra: { "µs/run": us(c.name).toFixed(2), added: `${(us(c.name) - us("none")).toFixed(2)} µs` }
    })),
    "none"
  )
  console.log(
    `recording on adds ${(path.get("on")! - none).toFixed(2)} µs per run on the request path (goal: < 20 µs); ` +
      `off adds ${(path.get("off")! - none).toFixed(2)} µs; export on adds ` +
      `${(path.get("export on")! - path.get("on")!).toFixed(2)} µs more than on (goal: < 10 µs), and ` +
      `${(us("export on") - us("on")).toFixed(2)} µs of CPU in all (mapping, encoding, sending, off the request path)`
  )
  const counted = (metric: Metric.Metric.Counter<number>) => Effect.runSync(Metric.value(metric)).count
  console.log(
    `export on: ${counted(OtlpExporter.spansExported)} spans exported, ` +
      `${counted(OtlpExporter.spansDropped.pipe(Metric.tagged("reason", "queue_full")))} dropped (queue full)`
  )
  receiver.close()
}
