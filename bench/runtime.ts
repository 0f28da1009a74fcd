/**
 * `pnpm bench runtime`: what the agent runtime costs a run, in CPU. The demo agent (`Demo.agents`, `assistant` on
 * the demo model, which does no work) answers three inputs:
 * - `single`: `{"input":"hello"}`, one model call;
 * - `tool`: `"what is 2+3*4?"`, a calculator call between two model calls;
 * - `fan_out`: `"research three topics"`, a `fan_out` call that runs 3 researcher sub-agents concurrently (five model
 *   calls in all).
 *
 * Each is run three ways:
 * - `runtime`: `AgentRuntime.run` alone, composed as `sg serve` composes it (apps/supervisor/src/commands/Serve.ts):
 *   `AgentRuntime.layerConfig(Demo.agents)`, the breakers, `TraceIdGenerator`, `TraceLifecycle` over the memory trace
 *   store, and `Recorder.layerStore` recording (successes sampled at 10 %) to the memory execution store;
 * - `floor`: the same model and tool sequence hand-written with bare @effect/ai `LanguageModel.generateText` over
 *   the same demo model and toolkit (its handlers resolve the tool calls; `fan_out`'s sub-agents are three bare
 *   `generateText` calls, concurrently): no spans, breakers, budgets, metrics or recording;
 * - `model`: the model's own work, for scale: the demo model's answers as the raw parts it gives the runtime
 *   (`Demo.makeModelWithStream().answer`), the tool handlers called directly, the prompt built by hand (the floor's
 *   `generateText` also builds and runs the toolkit's response schema on every call, which costs more than the model);
 * - `gateway`: `POST /v1/runs` to a real `sg serve` (the compiled build, as `pnpm start` runs it) in a child process,
 *   over a private `redis-server` (full tracing: lifecycle writes and the recorder) and over the memory store, loaded
 *   by autocannon from a third process with `SG_BENCH_CONNECTIONS` (16) connections for `SG_BENCH_SECONDS` (5);
 *   its CPU per run is the server process' CPU (from /proc, 10 ms ticks) over the runs it answered.
 *
 * In-process CPU per run is `process.cpuUsage` (user + system) over `SG_BENCH_ROUND_MS` (1500) of runs one after
 * another (an event-loop turn after each, where the recorder's writer works), after a warm-up, the writer included;
 * the cases take turns, `SG_BENCH_ROUNDS` (3) rounds, and each figure is the median round. The machine's load average is printed with the figures.
 * Profile: `SG_BENCH_ONLY=runtime node --cpu-prof --import tsx bench/index.ts runtime` (the runtime's rows alone,
 * after `pnpm build`).
 * Goals: a single-call run ≤ 1 ms of CPU, a tool-calling run ≤ 2 ms, each within 2x of the floor; through the
 * gateway with Redis and full tracing, ≥ 1,000 single-call runs/s on 2 cores.
 */
import * as IdGenerator from "@effect/ai/IdGenerator"
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as Prompt from "@effect/ai/Prompt"
import { AgentRuntime, Demo, RunContext } from "@sg/agent-runtime"
import { RedisTestServer } from "@sg/redis/testing"
import { CircuitBreaker } from "@sg/resilience"
import { ExecutionStore, Recorder, TraceIdGenerator, TraceLifecycle, TraceStore } from "@sg/trace"
import { Effect, Either, Layer, ManagedRuntime } from "effect"
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { median } from "./harness.js"
import { freePort, processCpuMicros, runLoadScript } from "./processes.js"

const roundMs = Number(process.env["SG_BENCH_ROUND_MS"] ?? 1500)
const rounds = Number(process.env["SG_BENCH_ROUNDS"] ?? 3)
const seconds = Number(process.env["SG_BENCH_SECONDS"] ?? 5)
const connections = Number(process.env["SG_BENCH_CONNECTIONS"] ?? 16)
// "runtime", "floor" or "model": only that way in process, no gateway (for profiling); "gateway": the gateway rows.
const only = process.env["SG_BENCH_ONLY"]
const root = Path.join(import.meta.dirname, "..")

/** The inputs measured. */
const inputs = [
  { name: "single", input: "hello" },
  { name: "tool", input: "what is 2+3*4?" },
  { name: "fan_out", input: "research three topics" }
] as const

type InputName = typeof inputs[number]["name"]

/** How a run is made (see the module comment). */
type Way = "runtime" | "floor" | "model"

const load = (): string => Os.loadavg().map((n) => n.toFixed(2)).join(" ")

// ---------------------------------------------------------------------------------------------------------------
// The runtime alone, as `sg serve` composes it over the memory store.

const runtimeLayer = AgentRuntime.layerConfig(Demo.agents).pipe(
  Layer.provideMerge(Recorder.layerStore),
  Layer.provideMerge(TraceLifecycle.layerConfig),
  Layer.provideMerge(
    Layer.mergeAll(
      CircuitBreaker.layerConfig,
      TraceIdGenerator.layer,
      TraceStore.layerMemoryConfig,
      ExecutionStore.layerMemoryConfig
    )
  ),
  Layer.orDie
)

const viaRuntime = (input: string) =>
  Effect.flatMap(AgentRuntime.AgentRuntime, (runtime) => runtime.run({ input })).pipe(
    Effect.flatMap((result) =>
      result.status === "success" ? Effect.succeed(result.output) : Effect.die(`run ended ${result.status}`)
    ),
    Effect.orDie
  )

// ---------------------------------------------------------------------------------------------------------------
// The floor: the same sequence with bare @effect/ai.

const floorModel = Effect.runSync(Demo.makeModel())
const floorLayer = Layer.succeed(LanguageModel.LanguageModel, floorModel)

const instructions = (name: string) => Demo.agents.find((agent) => agent.name === name)!.instructions

const promptOf = (agent: string, input: string): Prompt.Prompt =>
  Prompt.fromMessages([
    Prompt.makeMessage("system", { content: instructions(agent) }),
    Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: input })] })
  ])

/** `fan_out`'s sub-agents as bare `generateText` calls (the researcher has no tools). */
const bareContext: RunContext.Service = {
  agent: "assistant",
  runId: "",
  conversationId: undefined,
  metadata: {},
  depth: 0,
  spawn: () => Effect.die("not used"),
  spawnAll: (requests) =>
    Effect.forEach(requests, (request) =>
      Effect.map(
        LanguageModel.generateText({ prompt: promptOf("researcher", request.input) }),
        (response) =>
          Either.right({ trace_id: "" as never, run_id: "", status: "success" as const, output: response.text, steps: 1 })
      ), { concurrency: "unbounded" }).pipe(
      Effect.provideService(LanguageModel.LanguageModel, floorModel),
      Effect.orDie
    )
}

const floorToolkit = Effect.runSync(
  Effect.provide(Demo.toolkit, Demo.toolkit.toLayer(Demo.handlers)).pipe(
    Effect.provideService(RunContext.RunContext, bareContext)
  )
)

/** Model calls until the model stops asking for tools, the toolkit's handlers resolving each step's calls. */
const viaFloor = (input: string) =>
  Effect.gen(function*() {
    let prompt = promptOf("assistant", input)
    for (;;) {
      const response = yield* LanguageModel.generateText({ prompt, toolkit: floorToolkit })
      if (response.toolCalls.length === 0) return response.text
      prompt = Prompt.merge(prompt, Prompt.fromResponseParts(response.content))
    }
  }).pipe(Effect.provideService(RunContext.RunContext, bareContext), Effect.orDie)

// ---------------------------------------------------------------------------------------------------------------
// The model's own work: the demo model's answers as raw parts (`Demo.makeModelWithStream().answer`) and the tool
// handlers called directly, no @effect/ai response decoding: what any runtime over this model pays at the least.

const demo = Effect.runSync(Demo.makeModelWithStream())
const someSpan = Effect.runSync(Effect.makeSpan("bench"))
const demoTools = Object.values(floorToolkit.tools)

/** The text of an answer's parts, or its tool calls. */
const answerOf = (agent: string, prompt: Prompt.Prompt) =>
  Effect.map(
    demo.answer({
      prompt,
      tools: agent === "assistant" ? demoTools : [],
      toolChoice: agent === "assistant" ? "auto" : "none",
      responseFormat: { type: "text" },
      span: someSpan
    }).pipe(Effect.provideService(IdGenerator.IdGenerator, IdGenerator.defaultIdGenerator)),
    (parts) => {
      let text = ""
      const calls: Array<{ readonly id: string; readonly name: string; readonly params: unknown }> = []
      for (const part of parts) {
        if (part.type === "text-delta") text += part.delta
        if (part.type === "tool-call") calls.push({ id: part.id, name: part.name, params: part.params })
      }
      return { text, calls }
    }
  )

const modelContext: RunContext.Service = {
  ...bareContext,
  spawnAll: (requests) =>
    Effect.forEach(requests, (request) =>
      Effect.map(
        answerOf("researcher", promptOf("researcher", request.input)),
        (answer) =>
          Either.right({ trace_id: "" as never, run_id: "", status: "success" as const, output: answer.text, steps: 1 })
      ), { concurrency: "unbounded" }).pipe(Effect.orDie)
}

const viaModel = (input: string) =>
  Effect.gen(function*() {
    let prompt = promptOf("assistant", input)
    for (;;) {
      const answer = yield* answerOf("assistant", prompt)
      if (answer.calls.length === 0) return answer.text
      const results = yield* Effect.forEach(answer.calls, (call) =>
        Effect.map(
          floorToolkit.handle(call.name as "calculator", call.params as { expression: string }),
          (handled) =>
            Prompt.makePart("tool-result", {
              id: call.id,
              name: call.name,
              isFailure: handled.isFailure,
              result: handled.encodedResult,
              providerExecuted: false
            })
        ))
      prompt = Prompt.merge(
        prompt,
        Prompt.fromMessages([
          Prompt.makeMessage("assistant", {
            content: answer.calls.map((call) =>
              Prompt.makePart("tool-call", { id: call.id, name: call.name, params: call.params, providerExecuted: false })
            )
          }),
          Prompt.makeMessage("tool", { content: results })
        ])
      )
    }
  }).pipe(Effect.provideService(RunContext.RunContext, modelContext), Effect.orDie)

// ---------------------------------------------------------------------------------------------------------------
// In-process CPU per run.

interface Case {
  readonly way: Way
  readonly input: InputName
  readonly once: () => Promise<string>
}

const turn = () => new Promise((resolve) => setImmediate(resolve))

/** µs of CPU and of wall time per run, `once` run one after another for `ms` (after a third of that as warm-up). */
const cpuPerRun = async (once: () => Promise<string>, ms: number) => {
  const runFor = async (budget: number) => {
    const cpu = process.cpuUsage()
    const start = performance.now()
    let runs = 0
    while (performance.now() - start < budget) {
      await once()
      // An event-loop turn between runs, as a server has between requests: the recorder's writer works in it.
      await turn()
      runs++
    }
    const used = process.cpuUsage(cpu)
    return { cpu: (used.user + used.system) / runs, wall: ((performance.now() - start) * 1000) / runs, runs }
  }
  await runFor(ms / 3)
  return runFor(ms)
}

const inProcess = async (ways: ReadonlyArray<Way>) => {
  const runtime = ManagedRuntime.make(runtimeLayer)
  const floor = ManagedRuntime.make(floorLayer)
  await runtime.runPromise(Effect.void)
  await floor.runPromise(Effect.void)
  const cases: Array<Case> = []
  for (const { input, name } of inputs) {
    for (const way of ways) {
      const viaR = viaRuntime(input)
      const viaF = viaFloor(input)
      const viaM = viaModel(input)
      cases.push({
        way,
        input: name,
        once: way === "runtime"
          ? () => runtime.runPromise(viaR)
          : way === "floor"
          ? () => floor.runPromise(viaF)
          : () => Effect.runPromise(viaM)
      })
    }
  }
  // The ways must make the same run: each answers as the runtime does.
  for (const c of cases) {
    const reference = cases.find((r) => r.input === c.input && r.way === "runtime")
    if (reference === undefined || reference === c) continue
    const [expected, got] = [await reference.once(), await c.once()]
    if (got !== expected) throw new Error(`${c.way} answers ${c.input} otherwise: ${got} (the runtime: ${expected})`)
  }
  const samples = new Map(cases.map((c) => [c, [] as Array<{ cpu: number; wall: number; runs: number }>]))
  const loads: Array<string> = []
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < cases.length; i++) {
      const c = cases[(round + i) % cases.length]!
      samples.get(c)!.push(await cpuPerRun(c.once, roundMs))
    }
    loads.push(load())
  }
  await runtime.dispose()
  await floor.dispose()
  const figure = (way: Case["way"], input: InputName) => {
    const c = cases.find((x) => x.way === way && x.input === input)
    if (c === undefined) return undefined
    const xs = samples.get(c)!
    return { cpu: median(xs.map((x) => x.cpu)), wall: median(xs.map((x) => x.wall)), runs: median(xs.map((x) => x.runs)) }
  }
  return { figure, loads }
}

// ---------------------------------------------------------------------------------------------------------------
// Through the gateway: a real `sg serve`.

// autocannon is a devDependency of @sg/gateway, not of the root.
const autocannonPath = createRequire(Path.join(root, "packages/gateway/package.json")).resolve("autocannon")

/** The load generator, run as `node -e` in a child process; prints one JSON line. */
const loadScript = `
const autocannon = require(process.argv[1])
const [url, seconds, connections, input] = [process.argv[2], +process.argv[3], +process.argv[4], process.argv[5]]
;(async () => {
  const loaded = await autocannon({
    url: url + "/v1/runs", method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ input }), connections, duration: seconds
  })
  if (loaded.non2xx > 0 || loaded.errors > 0) {
    throw new Error("non-2xx answers: " + loaded.non2xx + ", errors: " + loaded.errors)
  }
  process.stdout.write(JSON.stringify({
    requests: loaded.requests.total, rps: loaded.requests.average, p50: loaded.latency.p50, p99: loaded.latency.p99
  }) + "\\n")
})().catch((e) => { console.error(e); process.exit(1) })
`

interface Loaded {
  readonly requests: number
  readonly rps: number
  readonly p50: number
  readonly p99: number
}

const loadFrom = (base: string, input: string, duration: number): Promise<Loaded> =>
  runLoadScript<Loaded>(loadScript, [autocannonPath, base, String(duration), String(connections), input])

interface GatewayRow {
  readonly store: "redis" | "memory"
  readonly input: InputName
  readonly loaded: Loaded
  readonly cpu: number
  readonly load: string
}

/** `sg serve` on the compiled build with `env`, each input loaded in turn after a warm-up. */
const throughGateway = async (store: "redis" | "memory", redisUrl: string | undefined): Promise<Array<GatewayRow>> => {
  const port = await freePort()
  const env: Record<string, string | undefined> = { ...process.env, PORT: String(port), SG_RECORD: "on" }
  delete env["REDIS_URL"]
  if (redisUrl !== undefined) env["REDIS_URL"] = redisUrl
  const serve = spawn(process.execPath, ["apps/supervisor/dist/bin.js", "serve"], {
    cwd: root,
    env,
    stdio: ["ignore", "ignore", "pipe"]
  })
  const rows: Array<GatewayRow> = []
  try {
    await new Promise<void>((resolve, reject) => {
      let err = ""
      serve.stderr.on("data", (chunk: Buffer) => {
        err += chunk.toString()
        if (err.includes("listening on")) resolve()
      })
      serve.on("exit", (code) => reject(new Error(`sg serve exited with ${code}: ${err}`)))
    })
    const base = `http://127.0.0.1:${port}`
    for (const { input } of inputs) await loadFrom(base, input, 2)
    for (const { input, name } of inputs) {
      const before = processCpuMicros(serve.pid!)
      const loaded = await loadFrom(base, input, seconds)
      rows.push({ store, input: name, loaded, cpu: (processCpuMicros(serve.pid!) - before) / loaded.requests, load: load() })
    }
  } finally {
    serve.kill("SIGTERM")
    await new Promise((r) => serve.once("exit", r))
  }
  return rows
}

// ---------------------------------------------------------------------------------------------------------------

const goal = (met: boolean) => (met ? "met" : "missed")

/** Runs the benchmark and prints its figures. */
export const run = async (): Promise<void> => {
  console.log(`\n## runtime: the demo agent's CPU per run; ${Os.cpus().length} CPUs, load average ${load()}`)
  if (only !== "gateway") {
    const ways: ReadonlyArray<Way> = only === "runtime" || only === "floor" || only === "model" ? [only] : [
      "runtime",
      "floor",
      "model"
    ]
    const { figure, loads } = await inProcess(ways)
    console.log(
      `in process: one run at a time, ${roundMs} ms per case per round, median of ${rounds} rounds ` +
        `(load average after each round: ${loads.join("; ")})`
    )
    console.log("input    way      CPU µs/run  wall µs/run  runs/round  vs floor  vs model")
    for (const { name } of inputs) {
      const floor = figure("floor", name)
      const model = figure("model", name)
      for (const way of ways) {
        const f = figure(way, name)!
        const ratio = floor === undefined || way !== "runtime" ? "" : `${(f.cpu / floor.cpu).toFixed(2)}x`
        const overModel = model === undefined || way === "model" ? "" : `${(f.cpu / model.cpu).toFixed(1)}x`
        console.log(
          `${name.padEnd(8)} ${way.padEnd(8)} ${f.cpu.toFixed(0).padStart(10)}  ${f.wall.toFixed(0).padStart(11)}  ${
            String(Math.round(f.runs)).padStart(10)
          }  ${ratio.padStart(8)}  ${overModel}`
        )
      }
    }
    const single = figure("runtime", "single")
    const tool = figure("runtime", "tool")
    const fan = figure("runtime", "fan_out")
    if (single !== undefined && tool !== undefined && fan !== undefined) {
      const of = (f: { cpu: number }, input: InputName) => {
        const floor = figure("floor", input)
        return floor === undefined ? "" : `, ${(f.cpu / floor.cpu).toFixed(2)}x the floor (goal ≤ 2x: ${
          goal(f.cpu <= 2 * floor.cpu)
        })`
      }
      console.log(
        `single-call run: ${single.cpu.toFixed(0)} µs of CPU (goal ≤ 1000 µs: ${goal(single.cpu <= 1000)})` +
          `${of(single, "single")}\n` +
          `tool-calling run: ${tool.cpu.toFixed(0)} µs of CPU (goal ≤ 2000 µs: ${goal(tool.cpu <= 2000)})` +
          `${of(tool, "tool")}\n` +
          `3 sub-agents: ${fan.cpu.toFixed(0)} µs of CPU${of(fan, "fan_out")}`
      )
    }
  }
  if (only === undefined || only === "" || only === "gateway") {
    const redis = ManagedRuntime.make(RedisTestServer.layerSpawned)
    try {
      const server = await redis.runPromise(RedisTestServer.RedisTestServer)
      const rows = [...await throughGateway("redis", server.url), ...await throughGateway("memory", undefined)]
      console.log(
        `\nthrough the gateway: sg serve (compiled) in a child process, recording on (10 % of successes kept), ` +
          `${connections} connections × ${seconds} s per row; server CPU from /proc`
      )
      console.log("store   input     runs/s  p50 ms  p99 ms  server CPU µs/run  load average")
      for (const r of rows) {
        console.log(
          `${r.store.padEnd(7)} ${r.input.padEnd(8)} ${r.loaded.rps.toFixed(0).padStart(7)}  ${
            String(r.loaded.p50).padStart(6)
          }  ${String(r.loaded.p99).padStart(6)}  ${r.cpu.toFixed(0).padStart(17)}  ${r.load}`
        )
      }
      const single = rows.find((r) => r.store === "redis" && r.input === "single")!
      console.log(
        `gateway, Redis, full tracing: ${single.loaded.rps.toFixed(0)} single-call runs/s on ${Os.cpus().length} ` +
          `cores (goal ≥ 1000/s: ${goal(single.loaded.rps >= 1000)}), ${single.cpu.toFixed(0)} µs of server CPU each`
      )
    } finally {
      await redis.dispose()
    }
  }
}
