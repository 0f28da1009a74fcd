/**
 * The TraceStore backend over Redis, in the keyspace of `layout.ts`: standalone, `sg:trace:<id>` hashes and the
 * `sg:traces:active` set (the Python module's keys and scripts); on a cluster, the same per shard under the shard's
 * hash tag, every script declaring all its keys (one slot each call), the sweep shard by shard behind each shard's
 * fence.
 */
import type { RedisClient } from "@sg/redis"
import * as Effect from "effect/Effect"
import type { Backend, DecideResult, FenceResult, FinishResult, Refused, Row, SetStateResult } from "./backend.js"
import type { Layout } from "./layout.js"
import * as Scripts from "./scripts.js"
import { storeRedis } from "./storeFailure.js"

const refusedOf = (reply: readonly [string, ...Array<unknown>]): Refused | undefined => {
  switch (reply[0]) {
    case "missing":
      return { _tag: "missing" }
    case "stale":
      return { _tag: "stale", opening: String(reply[1]) }
    case "terminal":
      return { _tag: "terminal", state: String(reply[1]) }
  }
  return undefined
}

const rowsOf = (ids: ReadonlyArray<string>, fields: ReadonlyArray<string | null>): Array<Row> =>
  ids.map((id, i) => ({
    id,
    state: fields[i * 3] ?? null,
    createdAt: fields[i * 3 + 1] ?? null,
    updatedAt: fields[i * 3 + 2] ?? null
  }))

const decided = (reply: typeof Scripts.sweepDecide.reply.Type): DecideResult =>
  reply[0] === "ok"
    ? { _tag: "ok", decisions: reply.slice(1) as ReadonlyArray<number> }
    : { _tag: "lease_lost", holder: reply[1], epoch: reply[2] }

/** The backend over a Redis client, in `layout`'s keyspace. */
export const makeRedisBackend = (client: RedisClient.Service, layout: Layout): Backend => {
  const redis = storeRedis(client)
  const traceKey = layout.trace
  const activeOf = (id: string) => layout.active(layout.shardOf(id))
  const cluster = layout.mode === "redis-cluster"
  const shardList = Array.from({ length: layout.shards }, (_, shard) => shard)

  // Standalone: one script per batch, SSCAN and the reads together (the keys built in Lua, as the Python module's are).
  const walkStandalone = (batchSize: number) =>
    Effect.sync(() => {
      const activeKey = layout.active(0)
      let cursor: string | undefined = "0"
      return Effect.suspend(() => {
        if (cursor === undefined) return Effect.succeed(undefined)
        return Effect.map(redis.eval(Scripts.sweepRead, [activeKey], [cursor, batchSize, traceKey("")]), (reply) => {
          cursor = reply[0] === "0" || reply[0] === null ? undefined : reply[0]
          const rows: Array<Row> = []
          for (let i = 1; i + 3 < reply.length; i += 4) {
            rows.push({
              id: reply[i]!,
              state: reply[i + 1] ?? null,
              createdAt: reply[i + 2] ?? null,
              updatedAt: reply[i + 3] ?? null
            })
          }
          return rows
        })
      })
    })

  // Cluster: SSCAN the shard, then read the batch's hashes in one script that declares them (all in the shard's slot).
  const walkShard = (shard: number, batchSize: number) =>
    Effect.sync(() => {
      const activeKey = layout.active(shard)
      let cursor: string | undefined = "0"
      return Effect.suspend(() => {
        if (cursor === undefined) return Effect.succeed(undefined)
        return redis.use("SSCAN", (client) => client.sscan(activeKey, cursor!, "COUNT", batchSize)).pipe(
          Effect.flatMap(([next, ids]) => {
            cursor = next === "0" ? undefined : next
            if (ids.length === 0) return Effect.succeed<ReadonlyArray<Row>>([])
            return Effect.map(redis.eval(Scripts.sweepRows, ids.map(traceKey), []), (fields) => rowsOf(ids, fields))
          })
        )
      })
    })

  return {
    kind: cluster ? "redis-cluster" : "redis",
    address: { target: client.target, prefix: client.prefix, masters: client.masters },
    shards: layout.shards,
    create: (id, state, now, metadata, ttlSeconds, request) =>
      Effect.map(
        redis.eval(Scripts.create, [traceKey(id), activeOf(id)], [id, state, now, ttlSeconds, request ?? "", ...metadata]),
        ([opening, kind, inFlight]) => ({ opening, kind, inFlight })
      ),
    transition: (id, state, now, opening) =>
      Effect.map(
        redis.eval(Scripts.transition, [traceKey(id), activeOf(id)], [id, state, now, opening ?? ""]),
        (reply): SetStateResult => refusedOf(reply) ?? { _tag: "ok" }
      ),
    finish: (id, state, now, opening, fields, terminalTtlSeconds, request) =>
      Effect.map(
        redis.eval(
          Scripts.finish,
          [traceKey(id), activeOf(id)],
          [id, state, now, opening ?? "", terminalTtlSeconds, request ?? "", ...fields]
        ),
        (reply): FinishResult =>
          reply[0] === "ended"
            ? { _tag: "ended", state: reply[1] }
            : reply[0] === "pending"
            ? { _tag: "pending", inFlight: reply[1] }
            : reply[0] === "duplicate"
            ? { _tag: "duplicate" }
            : refusedOf(reply)!
      ),
    annotate: (id, fields, reserved) =>
      Effect.map(
        redis.eval(Scripts.annotate, [traceKey(id)], [reserved.length, ...reserved, ...fields]),
        (found) => found === 1
      ),
    read: (id) =>
      Effect.map(redis.use("HGETALL", (client) => client.hgetall(traceKey(id))), (hash) =>
        Object.keys(hash).length === 0 ? undefined : hash),
    ttlMillis: (id) =>
      Effect.map(redis.use("PTTL", (client) => client.pttl(traceKey(id))), (ms) => ms >= 0 ? ms : undefined),
    isActive: (id) =>
      Effect.map(redis.use("SISMEMBER", (client) => client.sismember(activeOf(id), id)), (n) => n === 1),
    activeCount: Effect.map(
      Effect.forEach(shardList, (shard) => redis.use("SCARD", (client) => client.scard(layout.active(shard))), {
        concurrency: "unbounded"
      }),
      (counts) => counts.reduce((a, b) => a + b, 0)
    ),
    ping: redis.ping,
    raiseFence: (shard, fence) =>
      !cluster
        ? Effect.succeed<FenceResult>({ _tag: "ok" })
        : Effect.map(
          redis.eval(Scripts.raiseFence, [layout.fence(shard, fence.name)], [fence.epoch]),
          (reply): FenceResult => reply[0] === "ok" ? { _tag: "ok" } : { _tag: "lease_lost", epoch: reply[1] }
        ),
    walk: (shard, batchSize) => cluster ? walkShard(shard, batchSize) : walkStandalone(batchSize),
    decide: (shard, candidates, now, terminalTtlSeconds, fence) => {
      if (cluster) {
        const keys = [layout.active(shard), layout.fence(shard, fence?.name ?? "-")]
        const args: Array<string | number> = [fence === undefined ? "0" : "1", fence?.epoch ?? 0, now, terminalTtlSeconds]
        for (const candidate of candidates) {
          keys.push(traceKey(candidate.id))
          args.push(candidate.id, candidate.kind[0]!, candidate.seen)
        }
        const run = Effect.map(redis.eval(Scripts.sweepDecideSharded, keys, args), decided)
        // The lease lives in another slot: it is read first (as the memory twin does), and the script checks the
        // shard's fence, which a newer leader raised before sweeping the shard.
        return fence === undefined ? run : Effect.flatMap(fence.stillHeld, (held) =>
          held ? run : Effect.succeed<DecideResult>({ _tag: "lease_lost", holder: null, epoch: null }))
      }
      const args: Array<string | number> = [
        fence === undefined ? "0" : "1",
        fence?.token ?? "",
        fence === undefined ? "" : String(fence.epoch),
        now,
        terminalTtlSeconds
      ]
      for (const candidate of candidates) {
        args.push(traceKey(candidate.id), candidate.id, candidate.kind[0]!, candidate.seen)
      }
      const lease = fence?.name ?? "-"
      const keys = [layout.active(0), client.key("lease", lease), client.key("lease", lease, "epoch")]
      return Effect.map(redis.eval(Scripts.sweepDecide, keys, args), decided)
    }
  }
}
