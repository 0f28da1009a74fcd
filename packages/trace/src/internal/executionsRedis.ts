/**
 * Execution records in Redis: the record as JSON at `<prefix>:exec:<id>` (TTL `ttl`), and sorted sets scored by start
 * ms: `<prefix>:exec:index`, `<prefix>:exec:index:status:<status>`, `<prefix>:exec:index:agent:<agent>`. A save is one
 * MULTI that also trims every index it touches of entries older than the retention; listing reads the chosen index
 * newest first, skips entries whose record has expired, and pages by (score, id) so new records never shift a page.
 */
import type { RedisClient } from "@sg/redis"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { agentsOf, type ExecutionSummary, startMillis, type Status, summarize } from "../ExecutionRecord.js"
import type { ExecutionStore, Options } from "../ExecutionStore.js"
import { encodeCursor, fromJson, isAfter, toJson, validate } from "./execQuery.js"

const statuses: ReadonlyArray<Status> = ["success", "error", "timeout"]

/** The keys of the layout. */
export const keys = (redis: RedisClient.Service) => ({
  record: (id: string) => redis.key("exec", id),
  index: redis.key("exec", "index"),
  status: (status: Status) => redis.key("exec", "index", "status", status),
  agent: (agent: string) => redis.key("exec", "index", "agent", agent)
})

/** The Redis execution store. */
export const makeRedisExecutions = (redis: RedisClient.Service, options: Options): ExecutionStore => {
  const ttlMs = Math.max(1000, Math.round(Duration.toMillis(options.ttl)))
  const k = keys(redis)

  const save: ExecutionStore["save"] = (record) =>
    Effect.gen(function*() {
      const json = yield* toJson(record)
      const now = yield* Clock.currentTimeMillis
      const cutoff = `(${now - ttlMs}`
      const score = startMillis(record)
      const id = record.trace_id
      const indexes = [k.index, k.status(record.status), ...agentsOf(record).map(k.agent)]
      yield* redis.multi("saveExecution", (m) => {
        m.set(k.record(id), json, "PX", ttlMs)
        for (const status of statuses) if (status !== record.status) m.zrem(k.status(status), id)
        for (const index of indexes) m.zadd(index, score, id).zremrangebyscore(index, "-inf", cutoff)
        return m
      })
    })

  const get: ExecutionStore["get"] = (traceId) =>
    Effect.flatMap(
      redis.use("getExecution", (client) => client.get(k.record(traceId))),
      (raw) => raw === null ? Effect.succeedNone : Effect.map(fromJson(traceId, raw), Option.some)
    )

  const list: ExecutionStore["list"] = (options) =>
    Effect.gen(function*() {
      const query = yield* validate(options)
      const now = yield* Clock.currentTimeMillis
      const index = query.agent !== undefined
        ? k.agent(query.agent)
        : query.status !== undefined
        ? k.status(query.status)
        : k.index
      const filterStatus = query.agent !== undefined ? query.status : undefined
      const max = query.cursor === undefined ? "+inf" : String(query.cursor.score)
      const min = `(${now - ttlMs}`
      const batch = Math.max(50, query.limit + 1)
      const items: Array<{ readonly summary: ExecutionSummary; readonly score: number; readonly id: string }> = []
      for (let offset = 0; items.length <= query.limit; offset += batch) {
        const flat = yield* redis.use("listExecutions", (client) =>
          client.zrevrangebyscore(index, max, min, "WITHSCORES", "LIMIT", offset, batch))
        const entries: Array<{ readonly id: string; readonly score: number }> = []
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const id = flat[i]!
          const score = Number(flat[i + 1])
          if (isAfter(query.cursor, score, id)) entries.push({ id, score })
        }
        if (entries.length > 0) {
          const recordKeys = entries.map((e) => k.record(e.id))
          const values = yield* redis.use("listExecutions", (client) => client.mget(...recordKeys))
          for (let i = 0; i < entries.length && items.length <= query.limit; i++) {
            const raw = values[i]
            if (raw === null || raw === undefined) continue
            const decoded = fromJson(entries[i]!.id, raw)
            if (Either.isLeft(decoded)) {
              yield* Effect.logWarning(decoded.left.message).pipe(Effect.annotateLogs({ trace_id: entries[i]!.id }))
              continue
            }
            if (filterStatus !== undefined && decoded.right.status !== filterStatus) continue
            items.push({ summary: summarize(decoded.right), ...entries[i]! })
          }
        }
        if (flat.length < batch * 2) break
      }
      const page = items.slice(0, query.limit)
      const last = page[page.length - 1]
      return {
        items: page.map((item) => item.summary),
        next_cursor: items.length > query.limit && last !== undefined ? encodeCursor(last) : null
      }
    })

  return { save, get, list }
}
