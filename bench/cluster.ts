/**
 * `pnpm bench cluster`: the trace store on a private Redis Cluster (three masters, three replicas, every node a
 * `redis-server` on this machine) beside one private standalone `redis-server`, in the same run. Two figures:
 * `TraceStore.create` throughput at concurrency 64 (alternating short rounds, so load from other processes falls on
 * both alike; `BENCH_MS` per side, default 4000), and one orphan sweep over N active traces (`SG_BENCH_CLUSTER_N`,
 * default 200,000; 10 % orphans) planted in each keyspace, with the cluster's keys counted per master. On one machine
 * the cluster cannot be faster (six servers share its cores): the figure is the cost per operation of the sharded
 * keyspace and the spread of the work over the masters.
 */
import { randomUUID } from "node:crypto"
import { performance } from "node:perf_hooks"
import { RedisClient } from "@sg/redis"
import { RedisTestCluster, RedisTestServer } from "@sg/redis/testing"
import { TraceStore } from "@sg/trace"
import type { TraceId } from "@sg/trace"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Effect, Layer, Logger, LogLevel, ManagedRuntime } from "effect"
import { layoutFor } from "../packages/trace/src/internal/layout.js"
import { type Figure, measure, report } from "./harness.js"

const minMs = Number(process.env["BENCH_MS"] ?? 4000)
const total = Number(process.env["SG_BENCH_CLUSTER_N"] ?? 200_000)
const rounds = 10
const concurrency = 64
const perWorker = 16
const metadata = { platform: "telegram", channel: "bench" }
const quiet = Logger.minimumLogLevel(LogLevel.Error)

/** Plants `count` traces in flight (every tenth an orphan), pipelined per shard: one slot per pipeline. */
const plant = async (redis: RedisClient.Service, count: number): Promise<number> => {
  const layout = layoutFor(redis, TraceStore.defaults.indexShards)
  const now = Date.now() / 1000
  const young = (now - 60).toFixed(3)
  const old = (now - 45 * 60).toFixed(3)
  const byShard = new Map<number, Array<string>>()
  for (let i = 0; i < count; i++) {
    const id = randomUUID()
    const shard = layout.shardOf(id)
    const list = byShard.get(shard) ?? []
    list.push(i % 10 === 0 ? `o${id}` : id)
    byShard.set(shard, list)
  }
  const started = performance.now()
  const jobs: Array<() => Promise<unknown>> = []
  for (const [shard, ids] of byShard) {
    for (let from = 0; from < ids.length; from += 5_000) {
      jobs.push(() => {
        const pipeline = redis.client.pipeline()
        const chunk = ids.slice(from, from + 5_000).map((marked) => {
          const id = marked.startsWith("o") ? marked.slice(1) : marked
          const at = marked.startsWith("o") ? old : young
          pipeline.hset(layout.trace(id), "state", "INFERRING", "created_at", at, "updated_at", at, "platform", "x")
          pipeline.expire(layout.trace(id), 86_400)
          return id
        })
        pipeline.sadd(layout.active(shard), ...chunk)
        return pipeline.exec()
      })
    }
  }
  // Four pipelines in flight: on a cluster they go to different masters at once.
  const next = async (): Promise<void> => {
    const job = jobs.shift()
    if (job === undefined) return
    await job()
    return next()
  }
  await Promise.all([next(), next(), next(), next()])
  return performance.now() - started
}

/** Seconds of CPU the Redis servers behind `redis` have used (user + sys), every master's on a cluster. */
const redisCpu = async (redis: RedisClient.Service): Promise<number> => {
  const client = redis.client
  const nodes = "nodes" in client ? client.nodes("master") : [client]
  const infos = await Promise.all(nodes.map((node) => node.info("cpu")))
  let seconds = 0
  for (const info of infos) {
    for (const field of ["used_cpu_user", "used_cpu_sys"]) {
      seconds += Number(new RegExp(`^${field}:([\\d.]+)`, "m").exec(info)?.[1] ?? 0)
    }
  }
  return seconds
}

export const run = async (): Promise<void> => {
  const standalone = ManagedRuntime.make(
    Layer.mergeAll(
      Layer.provideMerge(
        TraceStoreRedis.layer(),
        Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "60 seconds" }), RedisTestServer.layerSpawned)
      ),
      quiet
    )
  )
  const cluster = ManagedRuntime.make(
    Layer.mergeAll(
      Layer.provideMerge(
        TraceStoreRedis.layer(),
        Layer.provideMerge(RedisTestCluster.layerClient({ commandTimeout: "60 seconds" }), RedisTestCluster.layer())
      ),
      quiet
    )
  )
  try {
    const sides = await Promise.all([standalone, cluster].map((runtime) =>
      runtime.runPromise(Effect.all({ redis: RedisClient.RedisClient, store: TraceStore.TraceStore }))
    ))
    const testCluster = await cluster.runPromise(RedisTestCluster.RedisTestCluster)
    const names = ["standalone", "cluster (3 masters)"]
    for (const { redis } of sides) await redis.client.ping()

    // create throughput, alternating rounds
    const batches = sides.map(({ store }, i) => {
      const one = Effect.suspend(() => store.create(randomUUID() as TraceId.TraceId, "RECEIVED", metadata))
      const program = Effect.forEach(Array.from({ length: concurrency }), () => Effect.repeatN(one, perWorker - 1), {
        concurrency,
        discard: true
      })
      const runtime = i === 0 ? standalone : cluster
      return () => runtime.runPromise(program)
    })
    const rates = [0, 0]
    const cpu = [0, 0]
    const creates = [0, 0]
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < 2; k++) {
        const side = (k + round) % 2
        const before = await redisCpu(sides[side]!.redis)
        const figure = await measure("", concurrency * perWorker, () => {
          creates[side]! += concurrency * perWorker
          return batches[side]!()
        }, {
          minMs: minMs / rounds,
          warmupMs: 20
        })
        cpu[side]! += (await redisCpu(sides[side]!.redis)) - before
        rates[side]! += figure.opsPerSec / rounds
      }
    }
    const cpuPerCreate = cpu.map((seconds, i) => (seconds / creates[i]!) * 1e6)
    const createFigures: Array<Figure> = names.map((name, i) => ({
      name: `create c=${concurrency}, ${name}`,
      opsPerSec: rates[i]!,
      extra: { "Redis CPU per create (masters)": `${cpuPerCreate[i]!.toFixed(1)} µs` }
    }))
    report("TraceStore.create, standalone vs cluster (same run)", createFigures, createFigures[0]!.name)
    // A request makes three lifecycle writes (create, a transition, finish), each one script like create.
    const perRequest = 3 * cpuPerCreate[0]!
    console.log(
      `one standalone Redis core: about ${perRequest.toFixed(0)} µs of its CPU per request's lifecycle writes, so it ` +
        `saturates near ${Math.round(1e6 / perRequest).toLocaleString("en")} requests/s (estimate from this run)`
    )

    // one sweep over `total` planted traces on each
    const sweepFigures: Array<Figure> = []
    for (let i = 0; i < 2; i++) {
      // A keyspace of its own (prefix `sweep`), apart from the traces the create rounds left.
      const shared = sides[i]!.redis
      const redis: RedisClient.Service = { ...shared, prefix: "sweep", key: (...parts) => ["sweep", ...parts].join(":") }
      const runtime = i === 0 ? standalone : cluster
      const store = await runtime.runPromise(
        TraceStoreRedis.make().pipe(Effect.provideService(RedisClient.RedisClient, redis))
      )
      const plantedMs = await plant(redis, total)
      const started = performance.now()
      const swept = await runtime.runPromise(store.sweepOrphans())
      const ms = performance.now() - started
      const extra: Record<string, string> = {
        wall: `${(ms / 1000).toFixed(2)} s`,
        scanned: String(swept.scanned),
        orphaned: String(swept.orphaned),
        planted: `${(plantedMs / 1000).toFixed(1)} s`
      }
      if (i === 1) {
        const perMaster = await Effect.runPromise(testCluster.keysPerMaster(`${redis.prefix}:{*}:trace:*`))
        extra["keys per master"] = Array.from(perMaster.values()).join(" / ")
      }
      sweepFigures.push({ name: `sweep ${total}, ${names[i]}`, opsPerSec: (total / ms) * 1000, extra })
    }
    report("sweepOrphans over planted traces (10 % orphans), ids per second", sweepFigures, sweepFigures[0]!.name)
    console.log(
      `(standalone ${sides[0]!.redis.target}; cluster seeds ${sides[1]!.redis.target}, ${
        TraceStore.defaults.indexShards
      } shards; every server on this machine)`
    )
  } finally {
    await cluster.dispose()
    await standalone.dispose()
  }
}
