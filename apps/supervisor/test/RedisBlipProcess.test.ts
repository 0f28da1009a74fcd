import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Clock, Duration, Effect, Fiber, Layer, Ref } from "effect"
import * as Http from "./utils/http.js"
import { startServe } from "./utils/serve.js"

/**
 * What an operator meets when Redis blips under a running `sg serve`: paused (SIGSTOP), busy (`DEBUG SLEEP`), out of
 * memory, restarted. Requests keep their latency, every request that answered 200 ends COMPLETED once Redis is back
 * (none is left in flight for the watchdog to call orphaned), and recording resumes within seconds.
 */
const redis = Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "20 seconds" }), RedisTestServer.layerSpawned)

const command = <A>(name: string, f: (client: RedisClient.Service["client"]) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.orDie(client.use(name, f)))

/** A second connection, for commands that block the server (`DEBUG SLEEP`): the test's own must stay free. */
const sideCommand = (url: string, args: ReadonlyArray<string>) =>
  Effect.promise(async () => {
    const { default: Redis } = await import("ioredis")
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await client.connect()
    await client.call(args[0]!, ...args.slice(1)).catch(() => undefined)
    client.disconnect()
  })

const activeCount = command("SCARD", (c) => c.scard("sg:traces:active"))
const stateOf = (id: string) => command("HGET", (c) => c.hget(`sg:trace:${id}`, "state"))

interface Sample {
  readonly id: string
  readonly ms: number
  readonly status: number
}

/** Sends runs from `workers` clients back to back until `stop` is set, noting each answer and its latency. */
const load = (port: number, workers: number, stop: Ref.Ref<boolean>) =>
  Effect.forEach(Array.from({ length: workers }, (_, i) => i), (worker) =>
    Effect.gen(function*() {
      const samples: Array<Sample> = []
      let n = 0
      while (!(yield* Ref.get(stop))) {
        const start = yield* Clock.currentTimeMillis
        const answer = yield* Http.postRun(port, { input: `what is ${worker}+${n++}?` })
        samples.push({ id: String(answer.headers["x-trace-id"]), ms: (yield* Clock.currentTimeMillis) - start, status: answer.status })
      }
      return samples
    }), { concurrency: "unbounded" }).pipe(Effect.map((all) => all.flat()))

const p99 = (samples: ReadonlyArray<Sample>) => {
  const sorted = samples.map((s) => s.ms).sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0
}

/** Runs load for `before`, applies the blip for `length`, ends it, then `after` more; the samples of each phase. */
const underLoad = <R>(
  port: number,
  blip: { readonly begin: Effect.Effect<unknown, never, R>; readonly end: Effect.Effect<unknown, never, R> },
  length: Duration.DurationInput
) =>
  Effect.gen(function*() {
    const stop = yield* Ref.make(false)
    const fiber = yield* Effect.fork(load(port, 4, stop))
    yield* Effect.sleep("500 millis")
    const began = yield* Clock.currentTimeMillis
    yield* blip.begin
    yield* Effect.sleep(length)
    yield* blip.end
    const ended = yield* Clock.currentTimeMillis
    yield* Effect.sleep("500 millis")
    yield* Ref.set(stop, true)
    const samples = yield* Fiber.join(fiber)
    return { samples, began, ended }
  })

/**
 * Once Redis is back: waits (10 s at most: the suite runs beside it on 2 cores) until every request that answered
 * 200 is COMPLETED and the active set is empty; how long that took, the states it ended with, and the hashes of
 * the traces left behind.
 */
const settles = (samples: ReadonlyArray<Sample>, ended: number) =>
  Effect.gen(function*() {
    const check = Effect.gen(function*() {
      const states = yield* Effect.forEach(samples, (s) => stateOf(s.id), { concurrency: 16 })
      const active = yield* activeCount
      return { states, active }
    })
    let last = yield* check
    const limit = (yield* Clock.currentTimeMillis) + 10_000
    while ((last.active > 0 || last.states.some((s) => s !== "COMPLETED")) && (yield* Clock.currentTimeMillis) < limit) {
      yield* Effect.sleep("100 millis")
      last = yield* check
    }
    const settled = (yield* Clock.currentTimeMillis) - ended
    // What an operator would look at for each trace left behind: its whole hash (requests, opening, in_flight, tokens).
    const left = samples.filter((_, i) => last.states[i] !== "COMPLETED").slice(0, 5)
    const hashes = yield* Effect.forEach(left, (s) => command("HGETALL", (c) => c.hgetall(`sg:trace:${s.id}`)))
    const stuck = JSON.stringify(left.map((s, i) => ({ id: s.id, ms: s.ms, hash: hashes[i] })))
    return { settled, states: last.states, active: last.active, stuck }
  })

describe("Redis blips under a running sg serve", () => {
  it.live("paused, busy, out of memory, restarted: answers stay fast, no 200 stays in flight, recording resumes", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      // A queue that holds a 5 s outage at this machine's full rate (3 writes a run; the default 10,000 holds about
      // 3,300 runs): this test is about replay after a blip, not about the cap (MemoryBounds and TraceLifecycle test it).
      const { port } = yield* startServe("serve", {
        REDIS_URL: server.url,
        SG_SAMPLE_SUCCESS: "0",
        SG_LIFECYCLE_QUEUE: "200000"
      })

      // A baseline with Redis healthy.
      const baseline = yield* underLoad(port, { begin: Effect.void, end: Effect.void }, "2 seconds")
      const normal = p99(baseline.samples)

      const report: Array<string> = [`normal p99 ${normal} ms over ${baseline.samples.length} runs`]

      // 1. Paused for 5 s: the writes' own deadline keeps requests fast; the queue replays once Redis is back.
      const paused = yield* underLoad(port, { begin: Effect.orDie(server.pause), end: Effect.orDie(server.resume) }, "5 seconds")
      expect(paused.samples.every((s) => s.status === 200)).toBe(true)
      const during = paused.samples.filter((s) => s.ms >= 0)
      const stallP99 = p99(during)
      expect(stallP99, report.join("; ")).toBeLessThan(2 * normal + 100)
      report.push(`paused p99 ${stallP99}`)
      const afterPause = yield* settles(paused.samples, paused.ended)
      expect(afterPause.states.filter((s) => s !== "COMPLETED"), `afterPause: ${report.join("; ")}; left: ${afterPause.stuck}`).toEqual([])
      expect(afterPause.active).toBe(0)
      report.push(`paused 5 s: p99 ${stallP99} ms over ${during.length} runs; all COMPLETED ${afterPause.settled} ms after`)

      // 2. Busy for 3 s (DEBUG SLEEP blocks the server).
      const busy = yield* underLoad(port, {
        begin: Effect.asVoid(Effect.fork(sideCommand(server.url, ["DEBUG", "SLEEP", "3"]))),
        end: Effect.void
      }, "3 seconds")
      expect(busy.samples.every((s) => s.status === 200)).toBe(true)
      const afterBusy = yield* settles(busy.samples, busy.ended)
      expect(afterBusy.states.filter((s) => s !== "COMPLETED"), `afterBusy: ${report.join("; ")}; left: ${afterBusy.stuck}`).toEqual([])
      expect(afterBusy.active).toBe(0)
      report.push(`busy 3 s: p99 ${p99(busy.samples)} ms; all COMPLETED ${afterBusy.settled} ms after`)

      // 3. Out of memory for 5 s: every write is refused with OOM.
      const oom = yield* underLoad(port, {
        begin: command("CONFIG", (c) => c.config("SET", "maxmemory", "1")),
        end: command("CONFIG", (c) => c.config("SET", "maxmemory", "0"))
      }, "5 seconds")
      expect(oom.samples.every((s) => s.status === 200)).toBe(true)
      const afterOom = yield* settles(oom.samples, oom.ended)
      expect(afterOom.states.filter((s) => s !== "COMPLETED"), `afterOom: ${report.join("; ")}; left: ${afterOom.stuck}`).toEqual([])
      expect(afterOom.active).toBe(0)
      report.push(`out of memory 5 s: p99 ${p99(oom.samples)} ms; all COMPLETED ${afterOom.settled} ms after`)

      // 4. Restarted (its data gone): whatever was written before is lost with it, nothing stays in flight after.
      const restarted = yield* underLoad(port, {
        begin: Effect.orDie(server.stop),
        end: Effect.orDie(server.start)
      }, "2 seconds")
      expect(restarted.samples.every((s) => s.status === 200)).toBe(true)
      const afterRestart = yield* settles(restarted.samples, restarted.ended)
      expect(afterRestart.active).toBe(0)
      const started = restarted.samples.filter((s) => s.ms >= 0).at(-1)!
      report.push(`restarted: p99 ${p99(restarted.samples)} ms; active set empty ${afterRestart.settled} ms after`)

      // Recording resumed: a run after the restart has its lifecycle at once.
      const fresh = yield* Http.postRun(port, { input: "after the blips" })
      expect(yield* stateOf(String(fresh.headers["x-trace-id"]))).toBe("COMPLETED")
      expect(started).toBeDefined()
      yield* Effect.logInfo(report.join("; "))
    }).pipe(Effect.provide(redis), Effect.scoped), { timeout: 120_000 })
})
