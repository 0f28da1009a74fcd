/**
 * `pnpm bench scaling`: how `sg serve` scales over one Redis. 1, 2 and 4 `sg serve` processes (the compiled build, as
 * `pnpm start` runs it; full tracing: `REDIS_URL` set, recording on, the demo model) share one private
 * `redis-server`; a separate load process runs one autocannon per server, `SG_BENCH_CONNECTIONS` (16) connections in
 * all, for `SG_BENCH_SECONDS` (5) per row after a warm-up, `POST /v1/runs` `{"input":"hello"}` (one model call).
 * Each row: runs per second, p50 and p99, the servers' CPU per run (/proc), and Redis' own CPU and commands per
 * request (`INFO cpu`, `INFO stats`: the commands a Lua script calls count one each), from which the run says where one Redis core saturates. On 2 cores the servers,
 * Redis and the load generator share the cores: more processes cannot add throughput here; the point is the Redis
 * cost per request, which decides how many replicas one Redis carries.
 */
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, Layer, ManagedRuntime } from "effect"
import { freePort, processCpuMicros, runLoadScript } from "./processes.js"

const seconds = Number(process.env["SG_BENCH_SECONDS"] ?? 5)
const connections = Number(process.env["SG_BENCH_CONNECTIONS"] ?? 16)
const counts = (process.env["SG_BENCH_PROCESSES"] ?? "1,2,4").split(",").map(Number)
const root = Path.join(import.meta.dirname, "..")

// autocannon is a devDependency of @sg/gateway, not of the root.
const autocannonPath = createRequire(Path.join(root, "packages/gateway/package.json")).resolve("autocannon")

/** The load generator: one autocannon per base URL at once, the connections split among them; one JSON line. */
const loadScript = `
const autocannon = require(process.argv[1])
const [seconds, connections] = [+process.argv[2], +process.argv[3]]
const bases = process.argv.slice(4)
const each = Math.max(1, Math.floor(connections / bases.length))
;(async () => {
  const results = await Promise.all(bases.map((url) => autocannon({
    url: url + "/v1/runs", method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ input: "hello" }), connections: each, duration: seconds
  })))
  let requests = 0, rps = 0, non2xx = 0, errors = 0, p50 = 0, p99 = 0
  for (const r of results) {
    requests += r.requests.total; rps += r.requests.average; non2xx += r.non2xx; errors += r.errors
    p50 = Math.max(p50, r.latency.p50); p99 = Math.max(p99, r.latency.p99)
  }
  if (non2xx > 0 || errors > 0) throw new Error("non-2xx answers: " + non2xx + ", errors: " + errors)
  process.stdout.write(JSON.stringify({ requests, rps, p50, p99 }) + "\\n")
})().catch((e) => { console.error(e); process.exit(1) })
`

interface Loaded {
  readonly requests: number
  readonly rps: number
  /** The slowest server's, in ms. */
  readonly p50: number
  readonly p99: number
}

/** Redis' CPU seconds (user + sys) and commands processed so far. */
const redisCounters = (redis: RedisClient.Service) =>
  Effect.promise(async () => {
    const info = await redis.client.info()
    const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? 0)
    return { cpu: field("used_cpu_user") + field("used_cpu_sys"), commands: field("total_commands_processed") }
  })

/** Waits until `url` answers 200, each probe bounded by a timeout, at most 30 s in all. */
const ready = async (url: string): Promise<void> => {
  const until = performance.now() + 30_000
  while (performance.now() < until) {
    const ok = await fetch(url, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)
    if (ok) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${url} did not answer 200 within 30 s`)
}

interface Row {
  readonly processes: number
  readonly loaded: Loaded
  readonly serverCpu: number
  readonly redisCpu: number
  readonly commands: number
}

const measureRow = async (
  processes: number,
  redisUrl: string,
  counters: () => Promise<{ cpu: number; commands: number }>
): Promise<Row> => {
  const ports = await Promise.all(Array.from({ length: processes }, () => freePort()))
  const servers = ports.map((port) => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      PORT: String(port),
      REDIS_URL: redisUrl,
      SG_RECORD: "on"
    }
    return spawn(process.execPath, ["apps/supervisor/dist/bin.js", "serve"], { cwd: root, env, stdio: "ignore" })
  })
  try {
    const bases = ports.map((port) => `http://127.0.0.1:${port}`)
    await Promise.all(bases.map((base) => ready(`${base}/readyz`)))
    await runLoadScript<Loaded>(loadScript, [autocannonPath, "1", String(connections), ...bases])
    const cpuBefore = servers.map((s) => processCpuMicros(s.pid!))
    const before = await counters()
    const loaded = await runLoadScript<Loaded>(loadScript, [autocannonPath, String(seconds), String(connections), ...bases])
    const after = await counters()
    const serverCpu = servers.reduce((sum, s, i) => sum + processCpuMicros(s.pid!) - cpuBefore[i]!, 0)
    return {
      processes,
      loaded,
      serverCpu: serverCpu / loaded.requests,
      redisCpu: ((after.cpu - before.cpu) * 1e6) / loaded.requests,
      commands: (after.commands - before.commands) / loaded.requests
    }
  } finally {
    await Promise.all(servers.map((s) =>
      new Promise((resolve) => {
        if (s.exitCode !== null) return resolve(undefined)
        s.once("exit", resolve)
        s.kill("SIGTERM")
      })
    ))
  }
}

/** Runs the benchmark and prints its figures. */
export const run = async (): Promise<void> => {
  const redis = ManagedRuntime.make(
    Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "5 seconds" }), RedisTestServer.layerSpawned)
  )
  try {
    const server = await redis.runPromise(RedisTestServer.RedisTestServer)
    const client = await redis.runPromise(RedisClient.RedisClient)
    const counters = () => redis.runPromise(redisCounters(client))
    const rows: Array<Row> = []
    for (const n of counts) rows.push(await measureRow(n, server.url, counters))
    console.log(
      `\n## scaling: 1, 2, 4 sg serve (compiled, Redis, full tracing) over one redis-server; ${connections} ` +
        `connections in all × ${seconds} s per row, from a separate process; ${Os.cpus().length} CPUs, load average ${
          Os.loadavg().map((l) => l.toFixed(2)).join(" ")
        }`
    )
    console.log("processes  runs/s  p50 ms  p99 ms  sg CPU µs/run  Redis CPU µs/req  Redis commands/req (Lua's own calls counted)")
    for (const r of rows) {
      console.log(
        `${String(r.processes).padStart(9)}  ${r.loaded.rps.toFixed(0).padStart(6)}  ${
          String(r.loaded.p50).padStart(6)
        }  ${String(r.loaded.p99).padStart(6)}  ${r.serverCpu.toFixed(0).padStart(13)}  ${
          r.redisCpu.toFixed(1).padStart(16)
        }  ${r.commands.toFixed(1).padStart(18)}`
      )
    }
    const redisPerRequest = Math.min(...rows.map((r) => r.redisCpu))
    const serverPerRequest = Math.min(...rows.map((r) => r.serverCpu))
    console.log(
      `one Redis core saturates near ${(1e6 / redisPerRequest).toFixed(0)} runs/s (${
        redisPerRequest.toFixed(1)
      } µs of its CPU per run); at ${serverPerRequest.toFixed(0)} µs of sg CPU per run, that is about ${
        Math.floor(serverPerRequest / redisPerRequest)
      } sg cores per Redis core. Here ${Os.cpus().length} cores are shared by the servers, Redis and the load, so ` +
        `more processes cannot add throughput on this machine`
    )
  } finally {
    await redis.dispose()
  }
}
