/**
 * `pnpm bench peer`: sg beside a peer AI gateway, Portkey's open-source `@portkey-ai/gateway`, in front of the same
 * local fake Chat Completions upstream, all in one run, each as its own process, as an operator runs them:
 *
 * - `direct`: the fake upstream itself (`POST /v1/chat/completions`), the baseline;
 * - `sg memory`: `sg serve` with `SG_MODEL=openai-compat` pointed at the upstream, full tracing (lifecycle writes,
 *   recorder, watchdog), the in-memory store; the client calls its `POST /v1/chat/completions` with `model` =
 *   `assistant` (the default demo agent: its tools are offered to the upstream, which answers without calling them);
 * - `sg redis`: the same with `REDIS_URL` on a private `redis-server` (a free port, this run's only);
 * - `portkey`: `node node_modules/@portkey-ai/gateway/build/start-server.js`, called with `x-portkey-provider:
 *   openai` and `x-portkey-custom-host` naming the upstream.
 *
 * The load comes from a second process (autocannon), the targets taking turns, `SG_BENCH_ROUNDS` (3) rounds:
 * `SG_BENCH_CONNECTIONS` (16) connections for `SG_BENCH_SECONDS` (5) per turn, then `SG_BENCH_PROBES` (500)
 * requests one at a time on a kept-alive connection, timed with hrtime. Each figure is the median of its rounds;
 * latency is reported as added over `direct`. sg asks the upstream to stream (it always does, to tell a silent
 * provider from a slow one); Portkey forwards the client's non-streaming call as is. The upstream answers both.
 * Goal: sg with Redis adds less latency at p50 than Portkey and reaches at least its throughput.
 */
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, ManagedRuntime } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { createRequire } from "node:module"
import * as Net from "node:net"
import * as Path from "node:path"
import { type Figure, median, report } from "./harness.js"

const seconds = Number(process.env["SG_BENCH_SECONDS"] ?? 5)
const rounds = Number(process.env["SG_BENCH_ROUNDS"] ?? 3)
const connections = Number(process.env["SG_BENCH_CONNECTIONS"] ?? 16)
const probes = Number(process.env["SG_BENCH_PROBES"] ?? 500)

const root = Path.join(import.meta.dirname, "..")
// autocannon is a devDependency of @sg/gateway, not of the root.
const autocannonPath = createRequire(Path.join(root, "packages/gateway/package.json")).resolve("autocannon")

/** The fake upstream, run as `node -e`: a chat completion, or its stream when asked. Prints its port. */
const upstreamScript = `
const http = require("node:http")
const text = "Hello from the fake upstream."
const base = { id: "chatcmpl-bench", created: 1741569952, model: "gpt-4o-mini", system_fingerprint: "fp_bench" }
const usage = { prompt_tokens: 19, completion_tokens: 7, total_tokens: 26 }
const completion = JSON.stringify({ ...base, object: "chat.completion", choices: [{ index: 0,
  message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: "stop" }], usage })
const chunk = (delta, finish) => "data: " + JSON.stringify({ ...base, object: "chat.completion.chunk",
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] }) + "\\n\\n"
const stream = chunk({ role: "assistant", content: "" }, null) + chunk({ content: "Hello from " }, null) +
  chunk({ content: "the fake upstream." }, null) + chunk({}, "stop") +
  "data: " + JSON.stringify({ ...base, object: "chat.completion.chunk", choices: [], usage }) +
  "\\n\\ndata: [DONE]\\n\\n"
const server = http.createServer((req, res) => {
  const chunks = []
  req.on("data", (c) => chunks.push(c))
  req.on("end", () => {
    let body = {}
    try { body = JSON.parse(Buffer.concat(chunks).toString("utf8")) } catch {}
    if (body.stream === true) {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
      res.end(stream)
    } else {
      res.writeHead(200, { "content-type": "application/json" })
      res.end(completion)
    }
  })
})
server.keepAliveTimeout = 60000
server.listen(0, "127.0.0.1", () => console.log("port " + server.address().port))
`

/** The load generator, run as `node -e`; prints one JSON line. */
const loadScript = `
const autocannon = require(process.argv[1])
const http = require("node:http")
const [url, seconds, connections, probes] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]]
const extra = JSON.parse(process.argv[6])
const body = JSON.stringify({ model: process.argv[7], messages: [{ role: "user", content: "hello" }] })
const headers = { "content-type": "application/json", authorization: "Bearer sk-bench", ...extra }
const probe = (agent) => new Promise((resolve, reject) => {
  const start = process.hrtime.bigint()
  const req = http.request(url, { method: "POST", agent, headers }, (res) => {
    res.resume()
    res.on("end", () => res.statusCode === 200
      ? resolve(Number(process.hrtime.bigint() - start) / 1000)
      : reject(new Error("status " + res.statusCode)))
  })
  req.on("error", reject)
  req.end(body)
})
;(async () => {
  const loaded = await autocannon({ url, method: "POST", headers, body, connections, duration: seconds })
  if (loaded.non2xx > 0 || loaded.errors > 0) {
    throw new Error(url + ": non-2xx answers: " + loaded.non2xx + ", errors: " + loaded.errors)
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  for (let i = 0; i < 50; i++) await probe(agent)
  const micros = []
  for (let i = 0; i < probes; i++) micros.push(await probe(agent))
  agent.destroy()
  micros.sort((a, b) => a - b)
  const at = (q) => micros[Math.min(micros.length - 1, Math.floor(q * micros.length))]
  process.stdout.write(JSON.stringify({
    rps: loaded.requests.average, loadedP50: loaded.latency.p50, loadedP99: loaded.latency.p99,
    p50: at(0.5), p99: at(0.99)
  }) + "\\n")
})().catch((e) => { console.error(e); process.exit(1) })
`

interface Round {
  readonly rps: number
  readonly loadedP50: number
  readonly loadedP99: number
  readonly p50: number
  readonly p99: number
}

interface Target {
  readonly name: string
  readonly url: string
  readonly model: string
  readonly headers: Readonly<Record<string, string>>
}

const children: Array<ChildProcess> = []

/** Starts a child process of this run and resolves with the first match of `ready` in its output. */
const start = (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  ready: RegExp,
  env: Readonly<Record<string, string>> = {}
): Promise<RegExpMatchArray> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    children.push(child)
    let seen = ""
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start within 90 s:\n${seen.slice(-2000)}`)),
      90_000
    )
    const onData = (chunk: Buffer) => {
      seen += chunk.toString()
      const match = seen.match(ready)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match)
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`${name} exited with ${code}:\n${seen.slice(-2000)}`))
    })
  })

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const load = (target: Target): Promise<Round> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [
      "-e",
      loadScript,
      autocannonPath,
      target.url,
      String(seconds),
      String(connections),
      String(probes),
      JSON.stringify(target.headers),
      target.model
    ], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.on("error", reject)
    child.on("exit", (code) =>
      code === 0 ? resolve(JSON.parse(out) as Round) : reject(new Error(`load generator exited with ${code}`)))
  })

const listening = /listening on http:\/\/(?:127\.0\.0\.1|0\.0\.0\.0|\[::\]|\[::1\]|localhost):(\d+)/

const sg = (name: string, upstream: string, env: Readonly<Record<string, string>>) =>
  start(name, process.execPath, ["--import", "tsx", "apps/supervisor/src/bin.ts", "serve"], listening, {
    PORT: "0",
    SG_MODEL: "openai-compat",
    SG_COMPAT_BASE_URL: `${upstream}/v1`,
    SG_COMPAT_MODEL: "gpt-4o-mini",
    ...env
  })

export const run = async (): Promise<void> => {
  const redis = ManagedRuntime.make(RedisTestServer.layerSpawned)
  try {
    const server = await redis.runPromise(Effect.map(RedisTestServer.RedisTestServer, (s) => s.url))
    const [, upstreamPort] = await start("upstream", process.execPath, ["-e", upstreamScript], /port (\d+)/)
    const upstream = `http://127.0.0.1:${upstreamPort}`
    const portkeyPort = await freePort()
    const [[, memoryPort], [, redisPort]] = await Promise.all([
      sg("sg memory", upstream, { REDIS_URL: "" }),
      sg("sg redis", upstream, { REDIS_URL: server }),
      start(
        "portkey",
        process.execPath,
        ["node_modules/@portkey-ai/gateway/build/start-server.js", `--port=${portkeyPort}`, "--headless"],
        /Ready for connections/
      )
    ])
    const chat = "/v1/chat/completions"
    const targets: ReadonlyArray<Target> = [
      { name: "direct", url: `${upstream}${chat}`, model: "gpt-4o-mini", headers: {} },
      { name: "sg memory", url: `http://127.0.0.1:${memoryPort}${chat}`, model: "assistant", headers: {} },
      { name: "sg redis", url: `http://127.0.0.1:${redisPort}${chat}`, model: "assistant", headers: {} },
      {
        name: "portkey",
        url: `http://127.0.0.1:${portkeyPort}${chat}`,
        model: "gpt-4o-mini",
        headers: { "x-portkey-provider": "openai", "x-portkey-custom-host": `${upstream}/v1` }
      }
    ]
    const results = new Map<string, Array<Round>>(targets.map((t) => [t.name, []]))
    for (let round = 0; round < rounds; round++) {
      // Take turns, starting with a different target each round, so drift in the machine's load hits all alike.
      for (let i = 0; i < targets.length; i++) {
        const target = targets[(round + i) % targets.length]!
        results.get(target.name)!.push(await load(target))
      }
    }
    const of = (name: string, pick: (r: Round) => number) => median(results.get(name)!.map(pick))
    const base = { p50: of("direct", (r) => r.p50), p99: of("direct", (r) => r.p99) }
    const figures: Array<Figure> = targets.map((target) => {
      const p50 = of(target.name, (r) => r.p50)
      const p99 = of(target.name, (r) => r.p99)
      return {
        name: target.name,
        opsPerSec: of(target.name, (r) => r.rps),
        extra: {
          p50: `${p50.toFixed(0)} µs`,
          p99: `${p99.toFixed(0)} µs`,
          "added p50/p99": target.name === "direct"
            ? ""
            : `+${(p50 - base.p50).toFixed(0)}/+${(p99 - base.p99).toFixed(0)} µs`,
          "loaded p50/p99": `${of(target.name, (r) => r.loadedP50)}/${of(target.name, (r) => r.loadedP99)} ms`
        }
      }
    })
    report(
      `peer: ${connections} connections × ${seconds} s, then ${probes} sequential probes; median of ${rounds} rounds`,
      figures,
      "direct"
    )
    const rps = (name: string) => figures.find((f) => f.name === name)!.opsPerSec
    const added = (name: string) => of(name, (r) => r.p50) - base.p50
    console.log(
      `sg redis vs portkey: ${(rps("sg redis") / rps("portkey")).toFixed(2)}x throughput (goal ≥ 1x), ` +
        `+${added("sg redis").toFixed(0)} µs vs +${added("portkey").toFixed(0)} µs added at p50 (goal: less)`
    )
  } finally {
    for (const child of children) child.kill("SIGTERM")
    await redis.dispose()
  }
}
