/**
 * `pnpm bench memory`: does the default store stay in flat memory? `sg serve` runs as a process, as an operator starts
 * it (in-memory store, `PORT=0`, the port read from its start-up line); this process drives autocannon against it:
 * a warm-up of `SG_BENCH_WARMUP` (10,000) `POST /v1/runs {"input":"hello"}`, then `SG_BENCH_REQUESTS` (100,000)
 * more in slices of a tenth, sampling the server's RSS (`VmRSS` of `/proc/<pid>/status`) every second and after each
 * slice, and once more after a few idle seconds. Goal: RSS at the end within 15 % of RSS after the warm-up.
 *
 * Scenarios (`SG_BENCH_SCENARIOS`, comma-separated; all by default):
 * - `default`: DESIGN.md's settings (10 % of successes recorded, cap 100,000, 1 hour / 7 days TTLs);
 * - `keep-all`: `SG_SAMPLE_SUCCESS=1`, every record kept;
 * - `small-cap`: every record kept, `SG_MEMORY_MAX_TRACES=5000`: the cap is reached in the warm-up and holds after;
 * - `short-ttl`: every record kept, `SG_TERMINAL_TTL` and `SG_EXEC_TTL` 5 seconds: the purge keeps up with the load.
 * Each scenario prints its RSS samples, the `/metrics` lines of what the stores evicted and the recorder dropped, and
 * whether the goal held. `SG_BENCH_CONNECTIONS` (16) sets autocannon's connections.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import * as Http from "node:http"
import { createRequire } from "node:module"
import * as Path from "node:path"

const warmup = Number(process.env["SG_BENCH_WARMUP"] ?? 10_000)
const requests = Number(process.env["SG_BENCH_REQUESTS"] ?? 100_000)
const connections = Number(process.env["SG_BENCH_CONNECTIONS"] ?? 16)
const slices = 10
const tolerance = 0.15

const scenarios: Record<string, Readonly<Record<string, string>>> = {
  default: {},
  "keep-all": { SG_SAMPLE_SUCCESS: "1" },
  "small-cap": { SG_SAMPLE_SUCCESS: "1", SG_MEMORY_MAX_TRACES: "5000" },
  "short-ttl": { SG_SAMPLE_SUCCESS: "1", SG_TERMINAL_TTL: "5 seconds", SG_EXEC_TTL: "5 seconds" }
}

const root = Path.join(import.meta.dirname, "..")

interface Result {
  readonly requests: { readonly total: number }
  readonly non2xx: number
  readonly errors: number
  readonly timeouts: number
  readonly duration: number
}
type Autocannon = (options: Readonly<Record<string, unknown>>) => Promise<Result>
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon

/** The server's RSS in kB; undefined once it has exited (its status has no VmRSS then). */
const rssKb = (pid: number): number | undefined => {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match === null ? undefined : Number(match[1])
  } catch {
    return undefined
  }
}

const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** `sg serve` in a child process with `env`; resolves once it says where it listens. */
const startServe = (env: Readonly<Record<string, string>>) =>
  new Promise<{ readonly child: ChildProcess; readonly port: number; readonly log: () => string }>(
    (resolve, reject) => {
      const environment: Record<string, string | undefined> = { ...process.env, PORT: "0", ...env }
      delete environment["REDIS_URL"]
      const child = spawn(process.execPath, ["--import", "tsx", "apps/supervisor/src/bin.ts", "serve"], {
        cwd: root,
        env: environment,
        stdio: ["ignore", "ignore", "pipe"]
      })
      let log = ""
      let listening = false
      const timer = setTimeout(() => {
        child.kill("SIGKILL")
        reject(new Error(`sg serve did not listen within 60 s:\n${log}`))
      }, 60_000)
      child.stderr!.on("data", (chunk: Buffer) => {
        log += chunk.toString()
        const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log)
        if (match !== null && !listening) {
          listening = true
          clearTimeout(timer)
          resolve({ child, port: Number(match[1]), log: () => log })
        }
      })
      child.once("exit", (code) => {
        clearTimeout(timer)
        reject(new Error(`sg serve exited with ${code}:\n${log}`))
      })
    }
  )

const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve()
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill("SIGTERM")
  })

const get = (port: number, path: string) =>
  new Promise<string>((resolve, reject) => {
    const request = Http.get({ host: "127.0.0.1", port, path, timeout: 10_000 }, (response) => {
      let body = ""
      response.on("data", (chunk: Buffer) => (body += chunk.toString()))
      response.on("end", () => resolve(body))
    })
    request.on("timeout", () => request.destroy(new Error(`GET ${path} timed out`)))
    request.on("error", reject)
  })

const load = async (port: number, amount: number) => {
  const result = await autocannon({
    url: `http://127.0.0.1:${port}/v1/runs`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ input: "hello" }),
    connections,
    amount,
    timeout: 30
  })
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(`non-2xx answers: ${result.non2xx}, errors: ${result.errors}, timeouts: ${result.timeouts}`)
  }
  return result
}

interface Figures {
  readonly name: string
  readonly warm: number
  readonly peak: number
  readonly end: number
  readonly rps: number
  readonly held: boolean
}

const runScenario = async (name: string, env: Readonly<Record<string, string>>): Promise<Figures> => {
  const { child, log, port } = await startServe(env)
  const pid = child.pid!
  let exited: string | undefined
  child.once("exit", (code, signal) => (exited = `sg serve exited (code ${code}, signal ${signal})`))
  const rss = () => {
    const kb = rssKb(pid)
    if (kb !== undefined) return kb
    throw new Error(`${exited ?? "sg serve is gone"}; its last log lines:\n${log().split("\n").slice(-20).join("\n")}`)
  }
  try {
    const started = rss()
    await load(port, warmup)
    await sleep(2000)
    const warm = rss()
    console.log(`\n## memory: ${name} ${JSON.stringify(env)}`)
    console.log(`start ${mb(started)}; after ${warmup} warm-up requests ${mb(warm)}`)
    let peak = warm
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(pid) ?? 0)), 1000)
    const begun = Date.now()
    const row: Array<string> = []
    try {
      for (let i = 1; i <= slices; i++) {
        await load(port, Math.round(requests / slices))
        const now = rss()
        peak = Math.max(peak, now)
        row.push(`${Math.round((requests / slices) * i / 1000)}k ${(now / 1024).toFixed(0)}`)
        console.log(`  ${row[row.length - 1]} MB (${((Date.now() - begun) / 1000).toFixed(0)} s)`)
      }
    } finally {
      clearInterval(sampler)
    }
    const seconds = (Date.now() - begun) / 1000
    console.log(`RSS (MB) after each slice: ${row.join(" | ")}`)
    await sleep(3000)
    const end = rss()
    const metrics = await get(port, "/metrics")
    const wanted = /^(sg_records_evicted_total|records_dropped|records_saved|sg_traces_active)\b/
    for (const line of metrics.split("\n")) if (wanted.test(line)) console.log(`  ${line}`)
    const held = end <= warm * (1 + tolerance)
    const rps = requests / seconds
    console.log(
      `${requests} requests in ${seconds.toFixed(0)} s (${rps.toFixed(0)}/s); RSS after warm-up ${mb(warm)}, peak ` +
        `${mb(peak)}, after ${mb(end)} idle 3 s: ${((end / warm - 1) * 100).toFixed(1)} % ` +
        `(goal within ${tolerance * 100} %: ${held ? "held" : "MISSED"})`
    )
    return { name, warm, peak, end, rps, held }
  } catch (error) {
    if (exited === undefined) throw error
    throw new Error(`${String(error)}; ${exited}; its last log lines:\n${log().split("\n").slice(-20).join("\n")}`)
  } finally {
    await stop(child)
  }
}

export const run = async (): Promise<void> => {
  const wanted = (process.env["SG_BENCH_SCENARIOS"] ?? Object.keys(scenarios).join(",")).split(",")
  const figures: Array<Figures> = []
  for (const name of wanted) {
    const env = scenarios[name]
    if (env === undefined) throw new Error(`unknown scenario ${name}; known: ${Object.keys(scenarios).join(", ")}`)
    figures.push(await runScenario(name, env))
  }
  console.log("\n## memory: summary")
  for (const f of figures) {
    console.log(
      `${f.name.padEnd(10)} warm ${mb(f.warm).padStart(9)}  peak ${mb(f.peak).padStart(9)}  end ${mb(f.end).padStart(9)}  ` +
        `${(((f.end / f.warm) - 1) * 100).toFixed(1).padStart(6)} %  ${f.rps.toFixed(0)}/s  ${f.held ? "held" : "MISSED"}`
    )
  }
}
