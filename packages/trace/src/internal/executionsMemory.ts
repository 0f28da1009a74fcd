/**
 * Execution records in memory: the Redis store's twin, over a bounded map (`expiringMap.ts`) of the same record fields
 * (`execLayout.ts`), merged by the same rules, with TTL and retention read from `Clock` (so `TestClock` drives them).
 * Expired records are purged on later saves; past `maxTraces` the record saved longest ago goes, counted in
 * `sg_records_evicted_total{store="execution"}`.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { agentsOf, type ExecutionRecord, type ExecutionSummary, type Status, summarize } from "../ExecutionRecord.js"
import type { Options, Service } from "../ExecutionStore.js"
import type { ExecutionRecordCorrupt } from "../ExecutionStoreError.js"
import { countEviction, defaultMaxTraces } from "./evictions.js"
import { assemble, defaultMaxBytes, defaultMaxRuns, merge, toParts } from "./execLayout.js"
import { encodeCursor, fromJson, isAfter, logOtherTenant, newestFirst, planOf, validate } from "./execQuery.js"
import { ExpiringMap, type Stats } from "./expiringMap.js"

interface Entry {
  /** The record's fields, or the raw value a test stored (as an earlier version's JSON string would be). */
  readonly value: Map<string, string> | string
  score: number
  status: string
  readonly agents: Set<string>
  /** The record's tenant, if it has one. */
  readonly tenant?: string | undefined
}

/** The memory execution store, and a way for tests to store a raw value as Redis could hold one. */
export interface MemoryExecutions extends Service {
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

  const maxRuns = options.maxRuns ?? defaultMaxRuns
  const maxBytes = options.maxBytes ?? defaultMaxBytes

  const recordOf = (id: string, entry: Entry): Either.Either<ExecutionRecord, ExecutionRecordCorrupt> =>
    typeof entry.value === "string" ? fromJson(id, entry.value) : assemble(id, Object.fromEntries(entry.value))

  const live = (id: string, now: number): Entry | undefined => entries.get(id, now)

  const save: Service["save"] = (record) =>
    Effect.flatMap(
      Either.match(toParts(record, agentsOf(record)), { onLeft: Effect.fail, onRight: Effect.succeed }),
      (parts) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const current = live(parts.id, now)
          let fields: Map<string, string>
          if (current !== undefined && typeof current.value === "string") {
            // Stored whole (as an earlier version did): merged into the field form first, as the Redis store does.
            const legacy = fromJson(parts.id, current.value)
            if (Either.isLeft(legacy)) return Effect.fail(legacy.left)
            const legacyParts = toParts(legacy.right, agentsOf(legacy.right))
            if (Either.isLeft(legacyParts)) return Effect.fail(legacyParts.left)
            fields = new Map()
            merge(fields, legacyParts.right, { maxRuns, maxBytes })
            for (const agent of legacyParts.right.agents) current.agents.add(agent)
          } else {
            fields = current?.value instanceof Map ? current.value : new Map()
          }
          const merged = merge(fields, parts, { maxRuns, maxBytes })
          if (merged.otherTenant !== undefined) return logOtherTenant(parts.id, merged.otherTenant, parts.tenant)
          const agents = current?.agents ?? new Set<string>()
          for (const agent of parts.agents) agents.add(agent)
          const tenant = fields.get("tenant")
          entries.set(
            parts.id,
            { value: fields, score: merged.startedMs, status: merged.status, agents, tenant },
            now,
            now + ttlMs
          )
          return Effect.void
        })
    )

  const get: Service["get"] = (traceId) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const entry = live(traceId, now)
      if (entry === undefined) return Effect.succeedNone
      return Either.match(recordOf(traceId, entry), {
        onLeft: Effect.fail,
        onRight: (record) => Effect.succeed(Option.some(record))
      })
    })

  const list: Service["list"] = (options) =>
    Effect.gen(function*() {
      const query = yield* validate(options)
      const now = yield* Clock.currentTimeMillis
      const cutoff = now - ttlMs
      const plan = planOf(query)
      // What the Redis store's index gives: only entries in the index the listing reads.
      const indexed = (entry: Entry) =>
        plan.index === "agent"
          ? entry.agents.has(query.agent!)
          : plan.index === "tenant"
          ? entry.tenant === query.tenant
          : plan.index === "status"
          ? entry.status === query.status
          : true
      const candidates = Array.from(entries, ([id, entry]) => ({ id, score: entry.score, entry }))
        .filter(({ entry, id, score }) =>
          (entries.expiresAt(id) ?? Infinity) > now && score > cutoff && isAfter(query.cursor, score, id) &&
          indexed(entry)
        )
        .sort(newestFirst)
      const items: Array<{ readonly summary: ExecutionSummary; readonly score: number; readonly id: string }> = []
      for (const { entry, id, score } of candidates) {
        if (items.length > query.limit) break
        const decoded = recordOf(id, entry)
        if (Either.isLeft(decoded)) {
          yield* Effect.logWarning(decoded.left.message).pipe(Effect.annotateLogs({ trace_id: id }))
          continue
        }
        if (!plan.passes(decoded.right)) continue
        items.push({ summary: summarize(decoded.right), score, id })
      }
      const page = items.slice(0, query.limit)
      const last = page[page.length - 1]
      return {
        items: page.map((item) => item.summary),
        next_cursor: items.length > query.limit && last !== undefined ? encodeCursor(last) : null
      }
    })

  return {
    backend: "memory",
    save,
    get,
    list,
    putRaw: (id, raw, index) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        entries.set(id, { value: raw, ...index, agents: new Set(index.agents) }, now, now + ttlMs)
      }),
    stats: Effect.sync(() => entries.stats())
  }
}
