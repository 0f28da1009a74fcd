/**
 * `pnpm bench gateway`: what the gateway's tracing costs an HTTP request. One trivial handler (`POST /v1/runs`,
 * read the JSON body, answer a small JSON inside an agent-run span) is served in this process three ways (see
 * bench/gateway-servers.ts): `bare` (platform tracer off), `plain` (as @effect/platform serves it by
 * default), `traced` (the `Ingress` middleware with lifecycle writes to the Redis store on a private redis-server,
 * plus the `Recorder` saving to Redis: what a deployment runs), `traced (memory)` (the same over the memory stores),
 * and two partial ones to tell the costs apart: `ingress` (the middleware alone) and `ingress+recorder` (no
 * lifecycle).
 * The load comes from a second process on loopback:
 * - throughput: autocannon, `SG_BENCH_CONNECTIONS` (16) connections for `SG_BENCH_SECONDS` (3) per round;
 * - latency: `SG_BENCH_PROBES` (2000) requests one after another on one kept-alive connection, timed with hrtime
 *   (autocannon's histogram has millisecond resolution, too coarse for a sub-millisecond budget).
 * The variants take turns, `SG_BENCH_ROUNDS` (3) rounds; each figure is the median of its rounds.
 * Goal: `traced` at ≥ 0.85x the requests per second of `plain`, and < 0.5 ms added at p50.
 */
import { createRequire } from "node:module"
import * as Path from "node:path"
import { layer, ManagedRuntime, url, type Variant } from "./gateway-servers.js"
import { type Figure, median, report } from "./harness.js"
import { runLoadScript } from "./processes.js"

const seconds = Number(process.env["SG_BENCH_SECONDS"] ?? 3)
const rounds = Number(process.env["SG_BENCH_ROUNDS"] ?? 3)
const connections = Number(process.env["SG_BENCH_CONNECTIONS"] ?? 16)
const probes = Number(process.env["SG_BENCH_PROBES"] ?? 2000)

// autocannon is a devDependency of @sg/gateway, not of the root.
const autocannonPath = createRequire(Path.join(import.meta.dirname, "../packages/gateway/package.json"))
  .resolve("autocannon")

/** The load generator, run as `node -e` in a child process; prints one JSON line. */
const loadScript = `
const autocannon = require(process.argv[1])
const http = require("node:http")
const [url, seconds, connections, probes] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]]
const body = JSON.stringify({ input: "hello" })
const headers = { "content-type": "application/json" }
const probe = (agent) => new Promise((resolve, reject) => {
  const start = process.hrtime.bigint()
  const req = http.request(url + "/v1/runs", { method: "POST", agent, headers }, (res) => {
    res.resume()
    res.on("end", () => res.statusCode === 200
      ? resolve(Number(process.hrtime.bigint() - start) / 1000)
      : reject(new Error("status " + res.statusCode)))
  })
  req.on("error", reject)
  req.end(body)
})
;(async () => {
  const loaded = await autocannon({
    url: url + "/v1/runs", method: "POST", headers, body, connections, duration: seconds
  })
  if (loaded.non2xx > 0 || loaded.errors > 0) {
    throw new Error("non-2xx answers: " + loaded.non2xx + ", errors: " + loaded.errors)
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  for (let i = 0; i < 200; i++) await probe(agent)
  const micros = []
  for (let i = 0; i < probes; i++) micros.push(await probe(agent))
  agent.destroy()
  micros.sort((a, b) => a - b)
  const at = (q) => micros[Math.min(micros.length - 1, Math.floor(q * micros.length))]
  const latency = loaded.latency
  const result = {
    rps: loaded.requests.average, loadedP50: latency.p50, loadedP99: latency.p99, p50: at(0.5), p99: at(0.99)
  }
  process.stdout.write(JSON.stringify(result) + "\\n")
})().catch((e) => { console.error(e); process.exit(1) })
`

interface Round {
  readonly rps: number
  /** Milliseconds, under load (autocannon). */
  readonly loadedP50: number
  readonly loadedP99: number
  /** Microseconds, one request at a time. */
  readonly p50: number
  readonly p99: number
}

const load = (target: string): Promise<Round> =>
  runLoadScript<Round>(loadScript, [autocannonPath, target, String(seconds), String(connections), String(probes)])

export const run = async (): Promise<void> => {
  const variants: ReadonlyArray<Variant> = ["bare", "plain", "ingress", "ingress+recorder", "traced (memory)", "traced"]
  const servers = variants.map((variant) => ({ variant, runtime: ManagedRuntime.make(layer(variant)) }))
  try {
    const targets = await Promise.all(servers.map((s) => s.runtime.runPromise(url)))
    const results = new Map<Variant, Array<Round>>(variants.map((v) => [v, []]))
    for (let round = 0; round < rounds; round++) {
      // Take turns, starting with a different variant each round, so drift in the machine's load hits all alike.
      for (let i = 0; i < variants.length; i++) {
        const index = (round + i) % variants.length
        results.get(variants[index]!)!.push(await load(targets[index]!))
      }
    }
    const figures: Array<Figure> = variants.map((variant) => {
      const rs = results.get(variant)!
      return {
        name: variant,
        opsPerSec: median(rs.map((r) => r.rps)),
        extra: {
          p50: `${median(rs.map((r) => r.p50)).toFixed(0)} µs`,
          p99: `${median(rs.map((r) => r.p99)).toFixed(0)} µs`,
          "loaded p50/p99": `${median(rs.map((r) => r.loadedP50))}/${median(rs.map((r) => r.loadedP99))} ms`
        }
      }
    })
    report(
      `gateway: ${connections} connections × ${seconds} s, then ${probes} sequential probes; ` +
        `median of ${rounds} rounds`,
      figures,
      "plain"
    )
    const p50 = (v: Variant) => median(results.get(v)!.map((r) => r.p50))
    const rps = (v: Variant) => figures[variants.indexOf(v)]!.opsPerSec
    const ratio = rps("traced") / rps("plain")
    console.log(
      `traced vs plain: ${ratio.toFixed(2)}x throughput (goal ≥ 0.85x), ` +
        `${(p50("traced") - p50("plain")).toFixed(0)} µs added at p50 (goal < 500 µs); ` +
        `vs bare: ${(rps("traced") / rps("bare")).toFixed(2)}x, ${(p50("traced") - p50("bare")).toFixed(0)} µs\n` +
        `the middleware alone: ${(rps("ingress") / rps("plain")).toFixed(2)}x, ` +
        `${(p50("ingress") - p50("plain")).toFixed(0)} µs; with the recorder: ` +
        `${(rps("ingress+recorder") / rps("plain")).toFixed(2)}x, ` +
        `${(p50("ingress+recorder") - p50("plain")).toFixed(0)} µs; traced over the memory stores: ` +
        `${(rps("traced (memory)") / rps("plain")).toFixed(2)}x, ${(p50("traced (memory)") - p50("plain")).toFixed(0)} µs`
    )
  } finally {
    await Promise.all(servers.map((s) => s.runtime.dispose()))
  }
}
