/**
 * Execution records in memory: the Redis store's twin, over a bounded map of the same JSON (`expiringMap.ts`), with
 * TTL and retention read from `Clock` (so `TestClock` drives them). Expired records are purged on later saves; past
 * `maxTraces` the record saved longest ago goes, counted in `sg_records_evicted_total{store="execution"}`.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { agentsOf, type ExecutionSummary, startMillis, type Status, summarize } from "../ExecutionRecord.js"
import type { ExecutionStore, Options } from "../ExecutionStore.js"
import { countEviction, defaultMaxTraces } from "./evictions.js"
import { encodeCursor, fromJson, isAfter, newestFirst, toJson, validate } from "./execQuery.js"
import { ExpiringMap, type Stats } from "./expiringMap.js"

interface Entry {
  readonly json: string
  readonly score: number
  readonly expiresAt: number
  readonly status: string
  readonly agents: ReadonlyArray<string>
}

/** The memory execution store, a way for tests to store a raw value as Redis could hold one, and its size. */
export interface MemoryExecutions extends ExecutionStore {
  readonly putRaw: (
    id: string,
    raw: string,
    index: { readonly score: number; readonly status: Status; readonly agents: ReadonlyArray<string> }
  ) => Effect.Effect<void>
  /** What the bounded map holds and has dropped. */
  readonly stats: Effect.Effect<Stats>
}

/** The memory execution store. */
export const makeMemoryExecutions = (options: Options): MemoryExecutions => {
  const ttlMs = Math.max(1000, Math.round(Duration.toMillis(options.ttl)))
  const entries = new ExpiringMap<string, Entry>({
    capacity: options.maxTraces ?? defaultMaxTraces,
    onRemove: (_id, _entry, why) => why === "evicted" && countEviction("execution")
  })

  const put = (id: string, json: string, index: { score: number; status: string; agents: ReadonlyArray<string> }) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      entries.set(id, { json, ...index, expiresAt: now + ttlMs }, now, now + ttlMs)
    })

  const save: ExecutionStore["save"] = (record) =>
    Effect.flatMap(toJson(record), (json) =>
      put(record.trace_id, json, { score: startMillis(record), status: record.status, agents: agentsOf(record) }))

  const get: ExecutionStore["get"] = (traceId) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const entry = entries.get(traceId, now)
      if (entry === undefined) return Effect.succeedNone
      return Effect.map(fromJson(traceId, entry.json), Option.some)
    })

  const list: ExecutionStore["list"] = (options) =>
    Effect.gen(function*() {
      const query = yield* validate(options)
      const now = yield* Clock.currentTimeMillis
      const cutoff = now - ttlMs
      const indexed = (entry: Entry) =>
        query.agent !== undefined
          ? entry.agents.includes(query.agent)
          : query.status === undefined || entry.status === query.status
      const candidates = Array.from(entries, ([id, entry]) => ({ id, score: entry.score, entry }))
        .filter(({ entry, id, score }) =>
          entry.expiresAt > now && score > cutoff && isAfter(query.cursor, score, id) && indexed(entry)
        )
        .sort(newestFirst)
      const items: Array<{ readonly summary: ExecutionSummary; readonly score: number; readonly id: string }> = []
      for (const { entry, id, score } of candidates) {
        if (items.length > query.limit) break
        const decoded = fromJson(id, entry.json)
        if (Either.isLeft(decoded)) {
          yield* Effect.logWarning(decoded.left.message).pipe(Effect.annotateLogs({ trace_id: id }))
          continue
        }
        if (query.agent !== undefined && query.status !== undefined && decoded.right.status !== query.status) continue
        items.push({ summary: summarize(decoded.right), score, id })
      }
      const page = items.slice(0, query.limit)
      const last = page[page.length - 1]
      return {
        items: page.map((item) => item.summary),
        next_cursor: items.length > query.limit && last !== undefined ? encodeCursor(last) : null
      }
    })

  return { save, get, list, putRaw: (id, raw, index) => put(id, raw, index), stats: Effect.sync(() => entries.stats()) }
}
