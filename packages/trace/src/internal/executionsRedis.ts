/**
 * Execution records in Redis: the record as a hash at `<prefix>:exec:<id>` (TTL `ttl`; the layout of
 * `execLayout.ts`), and sorted sets scored by start ms: `<prefix>:exec:index`, `<prefix>:exec:index:status:<status>`,
 * `<prefix>:exec:index:agent:<agent>`, `<prefix>:exec:index:tenant:<tenant>`. A save is one script that merges the record into the trace's, moves its
 * status entry, and trims every index it touches of entries older than the retention; listing reads the chosen
 * index newest first, skips entries whose record has expired, and pages by (score, id) so new records never shift a
 * page. A record an earlier version stored as one JSON string is read as it is, and merged into the hash form the
 * first time the trace is saved again. On a Redis Cluster (`layout.ts`) the record and its index entries live in the
 * shard of its trace, under the shard's hash tag, and a listing merges the shards' indexes newest first: the cursor
 * is the same (score, id), so it holds across pages whatever shard each entry came from.
 */
import type { RedisClient } from "@sg/redis"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { agentsOf, type ExecutionRecord, type ExecutionSummary, summarize } from "../ExecutionRecord.js"
import type { Options, Service } from "../ExecutionStore.js"
import { ExecutionRecordCorrupt } from "../ExecutionStoreError.js"
import type { TraceStoreFailure } from "../TraceStoreError.js"
import { encodeCursor, fromJson, isAfter, logOtherTenant, newestFirst, planOf, validate } from "./execQuery.js"
import { assemble, defaultMaxBytes, defaultMaxRuns, type Parts, toParts } from "./execLayout.js"
import * as Scripts from "./execScripts.js"
import { defaultShards, type Layout, layoutFor } from "./layout.js"
import { type StoreRedis, storeRedis } from "./storeFailure.js"

/**
 * The Redis execution store, in `layout`'s keyspace (by default the client's: standalone, or 16 shards on a
 * cluster).
 */
export const makeRedisExecutions = (
  client: RedisClient.Service,
  options: Options,
  layout: Layout = layoutFor(client, defaultShards)
): Service => {
  const redis: StoreRedis = storeRedis(client)
  const ttlMs = Math.max(1000, Math.round(Duration.toMillis(options.ttl)))
  const maxRuns = options.maxRuns ?? defaultMaxRuns
  const maxBytes = options.maxBytes ?? defaultMaxBytes
  const k = layout
  const shards = Array.from({ length: layout.shards }, (_, shard) => shard)

  const write = (parts: Parts, now: number, legacy: string) => {
    const shard = k.shardOf(parts.id)
    return redis.eval(
      Scripts.save,
      [
        k.record(parts.id),
        k.index(shard),
        k.status(shard, "success"),
        k.status(shard, "timeout"),
        k.status(shard, "error"),
        ...(parts.tenant !== undefined ? [k.tenant(shard, parts.tenant)] : []),
        ...parts.agents.map((agent) => k.agent(shard, agent))
      ],
      [
        parts.id,
        ttlMs,
        `(${now - ttlMs}`,
        maxRuns,
        maxBytes,
        parts.status,
        parts.rank,
        parts.error ?? "",
        parts.error === undefined ? "0" : "1",
        parts.conversationId ?? "",
        parts.startedAt,
        parts.startedMs,
        parts.endedAt,
        parts.endedMs,
        parts.durationMs,
        parts.droppedRuns,
        parts.droppedEvents,
        parts.droppedSpans,
        parts.droppedPayloads ? "1" : "0",
        legacy,
        parts.tenant ?? "",
        ...parts.runs.flat()
      ]
    )
  }

  const partsOf = (record: ExecutionRecord) => Either.match(toParts(record, agentsOf(record)), {
    onLeft: Effect.fail,
    onRight: Effect.succeed
  })

  const save: Service["save"] = (record) =>
    Effect.gen(function*() {
      const parts = yield* partsOf(record)
      const now = yield* Clock.currentTimeMillis
      const reply = yield* write(parts, now, "")
      if (reply[0] === "wrongtype") {
        return yield* new ExecutionRecordCorrupt({
          trace_id: parts.id,
          message: `the key of ${parts.id}'s execution record holds a ${reply[1]}, not a record: not overwritten`
        })
      }
      if (reply[0] === "tenant") return yield* logOtherTenant(parts.id, reply[1], parts.tenant)
      if (reply[0] === "legacy") {
        // Stored whole by an earlier version: turn it into the hash form (only if it is still that value), then merge.
        const legacy = yield* fromJson(parts.id, reply[1])
        yield* write(yield* partsOf(legacy), now, reply[1])
        const merged = yield* write(parts, now, "")
        if (merged[0] === "tenant") yield* logOtherTenant(parts.id, merged[1], parts.tenant)
      }
    })

  /** The record of an id, as stored in either form; `undefined` when there is none. */
  const read = (id: string): Effect.Effect<Either.Either<ExecutionRecord, ExecutionRecordCorrupt> | undefined, TraceStoreFailure> =>
    Effect.map(redis.eval(Scripts.read, [k.record(id)], []), (reply) => {
      if (reply[0] === "json") return fromJson(id, reply[1]!)
      if (reply[0] === "hash") {
        const fields: Record<string, string> = {}
        for (let i = 1; i + 1 < reply.length; i += 2) fields[reply[i]!] = reply[i + 1]!
        return assemble(id, fields)
      }
      if (reply[0] === "none") return undefined
      return Either.left(new ExecutionRecordCorrupt({ trace_id: id, message: `the key of ${id}'s record holds a ${reply[1]}` }))
    })

  const get: Service["get"] = (traceId) =>
    Effect.flatMap(read(traceId), (found) =>
      found === undefined ? Effect.succeedNone : Either.match(found, { onLeft: Effect.fail, onRight: (r) => Effect.succeed(Option.some(r)) }))

  const list: Service["list"] = (options) =>
    Effect.gen(function*() {
      const query = yield* validate(options)
      const now = yield* Clock.currentTimeMillis
      const plan = planOf(query)
      const indexOf = (shard: number) =>
        plan.index === "agent"
          ? k.agent(shard, query.agent!)
          : plan.index === "tenant"
          ? k.tenant(shard, query.tenant!)
          : plan.index === "status"
          ? k.status(shard, query.status!)
          : k.index(shard)
      const max = query.cursor === undefined ? "+inf" : String(query.cursor.score)
      const min = `(${now - ttlMs}`
      const batch = Math.max(50, query.limit + 1)
      // Per shard, what has been read of its index past the cursor and not yet merged, and where to read on.
      const sources = shards.map((shard) => ({
        index: indexOf(shard),
        offset: 0,
        done: false,
        buffer: [] as Array<{ readonly id: string; readonly score: number }>
      }))
      const refill = (source: typeof sources[number]) =>
        Effect.map(
          redis.use("listExecutions", (client) =>
            client.zrevrangebyscore(source.index, max, min, "WITHSCORES", "LIMIT", source.offset, batch)),
          (flat) => {
            source.offset += batch
            if (flat.length < batch * 2) source.done = true
            for (let i = 0; i + 1 < flat.length; i += 2) {
              const id = flat[i]!
              const score = Number(flat[i + 1])
              if (isAfter(query.cursor, score, id)) source.buffer.push({ id, score })
            }
          }
        )
      const items: Array<{ readonly summary: ExecutionSummary; readonly score: number; readonly id: string }> = []
      while (items.length <= query.limit) {
        // Every shard that may still hold the next entry has some buffered (read in one round trip, concurrently).
        yield* Effect.forEach(sources.filter((source) => source.buffer.length === 0 && !source.done), refill, {
          concurrency: "unbounded",
          discard: true
        })
        const entries: Array<{ readonly id: string; readonly score: number }> = []
        // The next `batch` entries newest first across the shards; stop where a shard's buffer ran out unread.
        while (entries.length < batch) {
          let best: typeof sources[number] | undefined
          for (const source of sources) {
            const head = source.buffer[0]
            if (head !== undefined && (best === undefined || newestFirst(head, best.buffer[0]!) < 0)) best = source
          }
          if (best === undefined) break
          entries.push(best.buffer.shift()!)
          if (best.buffer.length === 0 && !best.done) break
        }
        if (entries.length === 0) break
        // Sent at once: ioredis writes them back to back, one round trip per node for the batch.
        const values = yield* Effect.forEach(entries, (e) => read(e.id), { concurrency: "unbounded" })
        for (let i = 0; i < entries.length && items.length <= query.limit; i++) {
          const decoded = values[i]
          if (decoded === undefined) continue
          if (Either.isLeft(decoded)) {
            yield* Effect.logWarning(decoded.left.message).pipe(Effect.annotateLogs({ trace_id: entries[i]!.id }))
            continue
          }
          if (!plan.passes(decoded.right)) continue
          items.push({ summary: summarize(decoded.right), ...entries[i]! })
        }
      }
      const page = items.slice(0, query.limit)
      const last = page[page.length - 1]
      return {
        items: page.map((item) => item.summary),
        next_cursor: items.length > query.limit && last !== undefined ? encodeCursor(last) : null
      }
    })

  return { backend: layout.mode, save, get, list }
}
