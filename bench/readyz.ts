/**
 * `pnpm bench readyz`: how fast `/readyz` answers a load balancer. A real `sg serve` (as `pnpm start` runs it, one
 * process) over a private `redis-server`, loaded from a second process on loopback with autocannon,
 * `SG_BENCH_CONNECTIONS` (64) connections for `SG_BENCH_SECONDS` (5) per row:
 * - `cold`: the first `/readyz` after the start-up line (one request, before anything warmed the route); then
 *   every route is warmed up for 2 s;
 * - `/healthz`: the baseline, a route that reads nothing;
 * - `/readyz`: Redis up, and `/readyz, Redis down` (the server killed: the old route waited out a PING per probe);
 * - `/readyz probe, /v1/runs loaded`: one probe every 50 ms while the 64 connections run agents, as a health check
 *   meets a busy replica.
 * Goal: `/readyz` under 10 ms at p99 with 64 connections.
 */
import { RedisTestServer } from "@sg/redis/testing"
import { ManagedRuntime } from "effect"
import { freePort, processCpuMicros, runLoadScript } from "./processes.js"
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import * as Path from "node:path"

const seconds = Number(process.env["SG_BENCH_SECONDS"] ?? 5)
const connections = Number(process.env["SG_BENCH_CONNECTIONS"] ?? 64)
const root = Path.join(import.meta.dirname, "..")

// autocannon is a devDependency of @sg/gateway, not of the root.
const autocannonPath = createRequire(Path.join(root, "packages/gateway/package.json")).resolve("autocannon")

/** The load generator, run as `node -e` in a child process; prints one JSON line. */
const loadScript = `
const autocannon = require(process.argv[1])
const http = require("node:http")
const [base, path, seconds, connections, probePath] = process.argv.slice(2)
const body = JSON.stringify({ input: "what is 2+3*4?" })
const run = path === "/v1/runs" ? { method: "POST", headers: { "content-type": "application/json" }, body } : {}
const probe = () => new Promise((resolve) => {
  const start = process.hrtime.bigint()
  const req = http.get(base + probePath, { agent: false, timeout: 5000 }, (res) => {
    res.resume()
    res.on("end", () => resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, status: res.statusCode }))
  })
  req.on("timeout", () => req.destroy(new Error("timeout")))
  req.on("error", () => resolve({ ms: -1, status: 0 }))
})
;(async () => {
  const probes = []
  let loading = true
  const prober = (async () => {
    if (probePath === "-") return
    while (loading) {
      probes.push(await probe())
      await new Promise((r) => setTimeout(r, 50))
    }
  })()
  const loaded = await autocannon({ url: base + path, connections: +connections, duration: +seconds, ...run })
  loading = false
  await prober
  const sorted = probes.filter((p) => p.ms >= 0).map((p) => p.ms).sort((a, b) => a - b)
  const at = (q) => sorted.length === 0 ? -1 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  process.stdout.write(JSON.stringify({
    rps: loaded.requests.average, p50: loaded.latency.p50, p99: loaded.latency.p99, max: loaded.latency.max,
    non2xx: loaded.non2xx, errors: loaded.errors + loaded.timeouts,
    probes: probes.length, probeP50: at(0.5), probeP99: at(0.99), probeMax: at(1),
    probeNon2xx: probes.filter((p) => p.status !== 200).length
  }) + "\\n")
})().catch((e) => { console.error(e); process.exit(1) })
`

interface Load {
  readonly rps: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly non2xx: number
  readonly errors: number
  readonly probes: number
  readonly probeP50: number
  readonly probeP99: number
  readonly probeMax: number
  readonly probeNon2xx: number
}

const load = (base: string, path: string, probePath = "-", duration = seconds): Promise<Load> =>
  runLoadScript<Load>(loadScript, [autocannonPath, base, path, String(duration), String(connections), probePath])

/** CPU time the process has used, in milliseconds. */
const cpuMs = (pid: number): number => processCpuMicros(pid) / 1000

const timed = async (url: string): Promise<{ readonly ms: number; readonly status: number }> => {
  const start = performance.now()
  const response = await fetch(url)
  await response.arrayBuffer()
  return { ms: performance.now() - start, status: response.status }
}

export const run = async (): Promise<void> => {
  const runtime = ManagedRuntime.make(RedisTestServer.layerSpawned)
  const redis = await runtime.runPromise(RedisTestServer.RedisTestServer)
  const port = await freePort()
  const serve = spawn(process.execPath, ["--import", "tsx", "apps/supervisor/src/bin.ts", "serve"], {
    cwd: root,
    env: { ...process.env, REDIS_URL: redis.url, PORT: String(port), SG_SAMPLE_SUCCESS: "0" },
    stdio: ["ignore", "ignore", "pipe"]
  })
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
    const cold = await timed(`${base}/readyz`)
    // Warm every route up (JIT, connection pools) before anything is measured.
    for (const path of ["/healthz", "/readyz", "/v1/runs"]) await load(base, path, "-", 2)
    const rows: Array<readonly [string, Load, number]> = []
    const row = async (name: string, path: string, probePath?: string) => {
      const before = cpuMs(serve.pid!)
      const result = await load(base, path, probePath)
      const requests = result.rps * seconds
      rows.push([name, result, ((cpuMs(serve.pid!) - before) * 1000) / Math.max(1, requests)])
    }
    await row("/healthz", "/healthz")
    await row("/readyz", "/readyz")
    await row("/readyz probe, /v1/runs loaded", "/v1/runs", "/readyz")
    await runtime.runPromise(redis.stop)
    // Let the background check notice (one interval and a PING timeout).
    await new Promise((r) => setTimeout(r, 2000))
    await row("/readyz, Redis down", "/readyz")
    const degraded = await (await fetch(`${base}/readyz`)).json()

    console.log(`\n## readyz: sg serve over redis-server, ${connections} connections × ${seconds} s per row`)
    console.log(`cold: the first /readyz after the start-up line answered ${cold.status} in ${cold.ms.toFixed(1)} ms`)
    console.log(
      "row                             req/s    p50 ms  p99 ms  max ms  non-2xx  errors  CPU µs/req  " +
        "probes p50/p99/max ms"
    )
    for (const [name, r, cpu] of rows) {
      const probes = r.probes === 0
        ? ""
        : `${r.probes} (${r.probeNon2xx} non-200) ${r.probeP50.toFixed(1)}/${r.probeP99.toFixed(1)}/${
          r.probeMax.toFixed(1)
        }`
      console.log(
        `${name.padEnd(30)}  ${r.rps.toFixed(0).padStart(6)}  ${String(r.p50).padStart(6)}  ${
          String(r.p99).padStart(6)
        }  ${String(r.max).padStart(6)}  ${String(r.non2xx).padStart(7)}  ${String(r.errors).padStart(6)}  ${
          cpu.toFixed(0).padStart(10)
        }  ${probes}`
      )
    }
    console.log(`with Redis down /readyz says: ${JSON.stringify(degraded)}`)
    const [, readyz, readyzCpu] = rows.find(([name]) => name === "/readyz")!
    console.log(
      `/readyz p99 at ${connections} connections: ${readyz.p99} ms ` +
        `(goal < 10 ms: ${readyz.p99 < 10 ? "met" : "missed"}); ` +
        `the server spends ${readyzCpu.toFixed(0)} µs of CPU per probe, so ${connections} queued probes take ` +
        `${((readyzCpu * connections) / 1000).toFixed(1)} ms on a core of its own`
    )
  } finally {
    serve.kill("SIGTERM")
    await new Promise((r) => serve.once("exit", r))
    await runtime.dispose()
  }
}

