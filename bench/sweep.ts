/**
 * `pnpm bench sweep`: one orphan sweep over N active traces (default 1,000,000; `SG_BENCH_SWEEP_N` overrides it for a
 * smoke run), 10 % of them orphans, in a private `redis-server`. `TraceStore.sweepOrphans` (SSCAN batches of 500,
 * one pipelined HMGET round trip and one decision script per batch) beside two hand-written sweeps, each on its own
 * copy of the same dataset in the same server:
 * - fair: what a competent hand-written sweep does: SSCAN batches of 500, the batch's HMGETs pipelined in one round
 *   trip, the orphans' HSET/EXPIRE/SREM pipelined in another (not atomic: a trace that completes between the read and
 *   the write is marked orphaned all the same, which sg's decision script prevents);
 * - naive: the sweep the Python module describes (SMEMBERS, then HGET per id, then HSET/EXPIRE/SREM per orphan, one
 *   awaited command at a time).
 * Figures: wall time, and the slowest single command Redis ran during each sweep, from SLOWLOG (reset before each
 * sweep; entries over 100 µs are kept, so a sweep with none has no command that slow). Goals: at least 3x the fair
 * sweep and 10x the naive one, and no command over 10 ms.
 */
import { createHash, randomUUID } from "node:crypto"
import { performance } from "node:perf_hooks"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { TraceStore } from "@sg/trace"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Effect, Layer, Logger, ManagedRuntime } from "effect"
import * as TraceStoreScripts from "../packages/trace/src/internal/scripts.js"
import { report } from "./harness.js"

const total = Number(process.env["SG_BENCH_SWEEP_N"] ?? 1_000_000)
const orphanEvery = 10
const slowlogMicros = 100
const populateChunk = 5_000

interface Slowest {
  readonly micros: number
  readonly command: string
  readonly logged: number
  readonly over10ms: number
}

/** Names a SLOWLOG entry's command, our scripts by name rather than by SHA or source. */
const scriptNames = new Map<string, string>()
for (const script of Object.values(TraceStoreScripts)) {
  scriptNames.set(createHash("sha1").update(script.lua).digest("hex"), script.name)
  scriptNames.set(script.lua, script.name)
}
const describe = (args: ReadonlyArray<string>): string =>
  args[0]?.toLowerCase().startsWith("eval")
    ? `${args[0]} ${scriptNames.get(args[1] ?? "") ?? "a script"}`
    : args.slice(0, 2).join(" ")

export const run = async (): Promise<void> => {
  let orphanLogs = 0
  const countingLogger = Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ message }) => {
      if (Array.isArray(message) && message[0] === "trace_orphaned") orphanLogs++
    })
  )
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(
      Layer.provideMerge(
        TraceStoreRedis.layer(),
        Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "120 seconds" }), RedisTestServer.layerSpawned)
      ),
      countingLogger
    )
  )
  try {
    const { redis, store } = await runtime.runPromise(
      Effect.all({ redis: RedisClient.RedisClient, store: TraceStore.TraceStore })
    )
    const client = redis.client
    await client.ping()

    const ids = Array.from({ length: total }, () => randomUUID())
    const nowSeconds = Date.now() / 1000
    const youngAt = (nowSeconds - 60).toFixed(3)
    const orphanAt = (nowSeconds - 45 * 60).toFixed(3)
    const populate = async (prefix: string) => {
      const started = performance.now()
      for (let from = 0; from < total; from += populateChunk) {
        const pipeline = client.pipeline()
        const chunk = ids.slice(from, from + populateChunk)
        chunk.forEach((id, i) => {
          const key = `${prefix}:trace:${id}`
          const createdAt = (from + i) % orphanEvery === 0 ? orphanAt : youngAt
          pipeline.hset(key, "state", "INFERRING", "created_at", createdAt, "updated_at", createdAt, "platform", "x")
          pipeline.expire(key, 86_400)
        })
        pipeline.sadd(`${prefix}:traces:active`, ...chunk)
        await pipeline.exec()
      }
      return performance.now() - started
    }
    const populatedMs = (await populate(redis.prefix)) + (await populate("fair")) + (await populate("naive"))
    const orphans = Math.ceil(total / orphanEvery)
    console.log(`populated 3 x ${total} traces (${orphans} orphans each) in ${(populatedMs / 1000).toFixed(1)} s`)

    await client.config("SET", "slowlog-log-slower-than", String(slowlogMicros))
    await client.config("SET", "slowlog-max-len", "100000")
    const slowest = async (): Promise<Slowest> => {
      const entries = (await client.call("SLOWLOG", "GET", "-1")) as Array<[number, number, number, Array<string>]>
      const over10ms = entries.filter(([, , micros]) => micros > 10_000).length
      let worst: Slowest = { micros: 0, command: "-", logged: entries.length, over10ms }
      for (const [, , micros, args] of entries) {
        if (micros > worst.micros) worst = { micros, command: describe(args), logged: entries.length, over10ms }
      }
      return worst
    }

    await client.slowlog("RESET")
    const oursStarted = performance.now()
    const ours = await runtime.runPromise(store.sweepOrphans())
    const oursMs = performance.now() - oursStarted
    const oursSlowest = await slowest()

    await client.slowlog("RESET")
    const fairStarted = performance.now()
    const fair = await fairSweep(client, "fair")
    const fairMs = performance.now() - fairStarted
    const fairSlowest = await slowest()

    await client.slowlog("RESET")
    const naiveStarted = performance.now()
    const naive = await naiveSweep(client, "naive")
    const naiveMs = performance.now() - naiveStarted
    const naiveSlowest = await slowest()

    const row = (name: string, ms: number, orphaned: number, worst: Slowest) => ({
      name,
      opsPerSec: (total / ms) * 1000,
      extra: {
        wall: `${(ms / 1000).toFixed(2)} s`,
        orphaned: String(orphaned),
        slowest_command: worst.logged === 0
          ? `< ${slowlogMicros} us`
          : `${(worst.micros / 1000).toFixed(2)} ms (${worst.command})`,
        commands_over_10ms: String(worst.over10ms)
      }
    })
    const naiveName = "naive (SMEMBERS + HGET each)"
    const fairName = "fair (SSCAN + pipelined HMGET)"
    report(
      `orphan sweep of ${total} active traces, 10 % orphans`,
      [
        row("TraceStore.sweepOrphans", oursMs, ours.orphaned, oursSlowest),
        row(fairName, fairMs, fair, fairSlowest),
        row(naiveName, naiveMs, naive, naiveSlowest)
      ],
      fairName
    )
    const [vsFair, vsNaive] = [fairMs / oursMs, naiveMs / oursMs]
    console.log(
      `goals: ≥ 3x the fair sweep: ${vsFair.toFixed(1)}x (${vsFair >= 3 ? "met" : "MISSED"}); ≥ 10x the naive one: ` +
        `${vsNaive.toFixed(1)}x (${vsNaive >= 10 ? "met" : "MISSED"}); no command over 10 ms: ` +
        `${oursSlowest.over10ms === 0 ? "met" : `MISSED (${oursSlowest.over10ms})`}`
    )
    console.log(`report: ${JSON.stringify(ours)}; trace_orphaned warnings logged: ${orphanLogs}`)
  } finally {
    await runtime.dispose()
  }
}

/** A competent hand-written sweep: SSCAN batches, their reads and their writes each pipelined; returns the orphans. */
const fairSweep = async (client: RedisClient.Service["client"], prefix: string): Promise<number> => {
  const active = `${prefix}:traces:active`
  let orphaned = 0
  let cursor = "0"
  do {
    const [next, ids] = await client.sscan(active, cursor, "COUNT", 500)
    cursor = next
    const reads = client.pipeline()
    for (const id of ids) reads.hmget(`${prefix}:trace:${id}`, "state", "created_at", "updated_at")
    const rows = (await reads.exec()) ?? []
    const now = Date.now() / 1000
    const writes = client.pipeline()
    ids.forEach((id, i) => {
      const [state, createdAt, updatedAt] = (rows[i]?.[1] ?? []) as Array<string | null>
      if (state === null || state === undefined) return void writes.srem(active, id)
      if (state === "COMPLETED" || state === "ERRORED") return void writes.srem(active, id)
      if (now - Number(updatedAt ?? createdAt) <= 1800) return
      const key = `${prefix}:trace:${id}`
      writes.hset(key, "state", "ERRORED", "error", "orphaned", "updated_at", now.toFixed(3))
      writes.expire(key, 3600)
      writes.srem(active, id)
      orphaned++
    })
    if (writes.length > 0) await writes.exec()
  } while (cursor !== "0")
  return orphaned
}

/** The sweep as the Python `TraceWatchdog.sweep` documents it, one awaited command at a time; returns the orphans. */
const naiveSweep = async (client: RedisClient.Service["client"], prefix: string): Promise<number> => {
  const active = `${prefix}:traces:active`
  const now = Date.now() / 1000
  let orphaned = 0
  for (const id of await client.smembers(active)) {
    const key = `${prefix}:trace:${id}`
    const createdAt = await client.hget(key, "created_at")
    if (createdAt === null) {
      await client.srem(active, id)
      continue
    }
    if (now - Number(createdAt) <= 1800) continue
    const state = await client.hget(key, "state")
    if (state === "COMPLETED" || state === "ERRORED") continue
    await client.hset(key, "state", "ERRORED", "error", "orphaned", "updated_at", (Date.now() / 1000).toFixed(3))
    await client.expire(key, 3600)
    await client.srem(active, id)
    orphaned++
  }
  return orphaned
}
