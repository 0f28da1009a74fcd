/**
 * One conformance suite for both execution stores (Redis and memory), so they cannot drift apart. Each test takes a
 * fresh, empty store from `ExecStoreFactory` (a key prefix of its own on Redis), and lets time pass through it: with
 * `TestClock` in memory, for real against Redis.
 */
import type { Vitest } from "@effect/vitest"
import { expect } from "@effect/vitest"
import type { ExecutionRecord, ExecutionStore, TraceId } from "@sg/trace"
import { Clock, Context, Duration, Effect, Either, Option } from "effect"
import { traceIdOf } from "./execRecording.js"

/** A store under test and what the suite needs around it. */
export interface StoreUnderTest {
  readonly store: ExecutionStore.Service
  /** The TTL the store was made with. */
  readonly ttl: Duration.Duration
  /** Stores `raw` where the record of `id` lives, indexed as a record with these fields. */
  readonly putRaw: (
    id: string,
    raw: string,
    index: { readonly score: number; readonly status: ExecutionRecord.Status; readonly agents: ReadonlyArray<string> }
  ) => Effect.Effect<void>
  /** Lets time pass for the store (its clock and its expiry). */
  readonly passTime: (duration: Duration.DurationInput) => Effect.Effect<void>
}

/** Makes a fresh, empty store per test, with the given TTL. */
export class ExecStoreFactory extends Context.Tag("test/ExecStoreFactory")<ExecStoreFactory, {
  readonly fresh: (
    ttl: Duration.DurationInput,
    caps?: { readonly maxRuns: number; readonly maxBytes: number }
  ) => Effect.Effect<StoreUnderTest>
}>() {}

let counter = 10_000
/** A trace id no other record of the run uses. */
export const freshId = (): TraceId.TraceId => traceIdOf(++counter)

const iso = (ms: number) => new Date(ms).toISOString()

/** The record with run ids of its own (`<id>-<tag><i>`), as another request of the same trace would have. */
export const withRunIds = (record: ExecutionRecord.ExecutionRecord, tag: string): ExecutionRecord.ExecutionRecord => ({
  ...record,
  runs: record.runs.map((run, i) => ({ ...run, run_id: `${record.trace_id}-${tag}${i}` }))
})

/** A record started at `startMs`, with one run per agent. */
export const recordAt = (
  id: TraceId.TraceId,
  startMs: number,
  options: {
    readonly status?: ExecutionRecord.Status
    readonly agents?: ReadonlyArray<string>
    readonly tenant?: string
  } = {}
): ExecutionRecord.ExecutionRecord => {
  const status = options.status ?? "success"
  return {
    trace_id: id,
    ...(options.tenant !== undefined ? { tenant: options.tenant } : {}),
    conversation_id: "conv",
    status,
    started_at: iso(startMs),
    ended_at: iso(startMs + 10),
    duration_ms: 10,
    ...(status === "success" ? {} : { error: `${status} happened` }),
    runs: (options.agents ?? ["agent"]).map((agent, i) => ({
      run_id: `${id}-${i}`,
      agent_id: agent,
      status,
      started_at: iso(startMs),
      duration_ms: 10,
      steps: 1,
      tokens: { input: 3, output: 4 },
      tool_calls: [{
        call_id: "t1",
        tool: "search",
        started_at: iso(startMs + 1),
        duration_ms: 2,
        status: "success",
        input: "q",
        output: "a"
      }],
      inference_calls: [],
      events: []
    }))
  }
}

const ids = (page: ExecutionStore.Page) => page.items.map((item) => item.trace_id)

const allPages = (store: ExecutionStore.Service, options: ExecutionStore.ListOptions) =>
  Effect.gen(function*() {
    const pages: Array<ReadonlyArray<TraceId.TraceId>> = []
    let cursor = options.cursor
    do {
      const page = yield* store.list({ ...options, cursor })
      pages.push(ids(page))
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined && pages.length < 100)
    return pages
  })

/** The contract of an execution store. */
export const executionStoreConformance = (it: Vitest.MethodsNonLive<ExecStoreFactory, boolean>) => {
  const freshWith = (ttl: Duration.DurationInput) => Effect.flatMap(ExecStoreFactory, (factory) => factory.fresh(ttl))
  const fresh = freshWith("1 hour")

  it.effect("saves a record and reads it back as it was; an unknown id is None", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const record = recordAt(freshId(), now, { status: "error", agents: ["planner", "worker"] })
      yield* store.save(record)
      expect(yield* store.get(record.trace_id)).toEqual(Option.some(record))
      expect(yield* store.get(freshId())).toEqual(Option.none())
    }))

  it.effect("lists summaries newest first, by status, by agent, and by both", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const a = recordAt(freshId(), now - 3000, { status: "success", agents: ["planner"] })
      const b = recordAt(freshId(), now - 2000, { status: "error", agents: ["planner", "worker"] })
      const c = recordAt(freshId(), now - 1000, { status: "timeout", agents: ["worker"] })
      const d = recordAt(freshId(), now - 500, { status: "error", agents: ["critic"] })
      for (const record of [b, d, a, c]) yield* store.save(record)
      const page = yield* store.list()
      expect(ids(page)).toEqual([d.trace_id, c.trace_id, b.trace_id, a.trace_id])
      expect(page.next_cursor).toBeNull()
      expect(page.items[2]).toEqual({
        trace_id: b.trace_id,
        conversation_id: "conv",
        status: "error",
        started_at: b.started_at,
        ended_at: b.ended_at,
        duration_ms: 10,
        error: "error happened",
        agents: ["planner", "worker"],
        runs: 2,
        tool_calls: 2,
        inference_calls: 2,
        tokens: { input: 6, output: 8 }
      })
      expect(ids(yield* store.list({ status: "error" }))).toEqual([d.trace_id, b.trace_id])
      expect(ids(yield* store.list({ status: "timeout" }))).toEqual([c.trace_id])
      expect(ids(yield* store.list({ agent: "worker" }))).toEqual([c.trace_id, b.trace_id])
      expect(ids(yield* store.list({ agent: "planner", status: "error" }))).toEqual([b.trace_id])
      expect(ids(yield* store.list({ agent: "nobody" }))).toEqual([])
    }))

  it.effect("files records by tenant: lists one tenant's, alone or with status and agent, the tenant in summaries", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const a1 = recordAt(freshId(), now - 4000, { tenant: "acme", agents: ["planner"] })
      const b1 = recordAt(freshId(), now - 3000, { tenant: "globex", status: "error", agents: ["planner"] })
      const open = recordAt(freshId(), now - 2000, { agents: ["planner"] })
      const a2 = recordAt(freshId(), now - 1000, { tenant: "acme", status: "error", agents: ["worker"] })
      for (const record of [a1, b1, open, a2]) yield* store.save(record)
      expect(ids(yield* store.list({ tenant: "acme" }))).toEqual([a2.trace_id, a1.trace_id])
      expect(ids(yield* store.list({ tenant: "globex" }))).toEqual([b1.trace_id])
      expect(ids(yield* store.list({ tenant: "initech" }))).toEqual([])
      expect(ids(yield* store.list({ tenant: "acme", status: "error" }))).toEqual([a2.trace_id])
      expect(ids(yield* store.list({ tenant: "acme", agent: "planner" }))).toEqual([a1.trace_id])
      expect(ids(yield* store.list({ tenant: "acme", agent: "planner", status: "error" }))).toEqual([])
      expect(ids(yield* store.list({ status: "error" }))).toEqual([a2.trace_id, b1.trace_id])
      expect(ids(yield* store.list())).toEqual([a2.trace_id, open.trace_id, b1.trace_id, a1.trace_id])
      const page = yield* store.list({ tenant: "acme", limit: 1 })
      expect(page.items[0]!.tenant).toBe("acme")
      expect(ids(yield* store.list({ tenant: "acme", cursor: page.next_cursor! }))).toEqual([a1.trace_id])
      expect((yield* store.list()).items.find((item) => item.trace_id === open.trace_id)!.tenant).toBeUndefined()
      expect(Option.getOrThrow(yield* store.get(a1.trace_id)).tenant).toBe("acme")
    }))

  it.effect("a trace's record holds one tenant's runs: a save of another tenant, or of none, changes nothing", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const id = freshId()
      const first = recordAt(id, now - 1000, { tenant: "acme", agents: ["planner"] })
      yield* store.save(first)
      yield* store.save(withRunIds(recordAt(id, now - 2000, { tenant: "globex", status: "error" }), "g"))
      yield* store.save(withRunIds(recordAt(id, now - 2000, { status: "error" }), "o"))
      expect(yield* store.get(id)).toEqual(Option.some(first))
      expect(ids(yield* store.list({ tenant: "globex" }))).toEqual([])
      expect(ids(yield* store.list({ status: "error" }))).toEqual([])
      // The same tenant's next request merges as usual.
      yield* store.save(withRunIds(recordAt(id, now, { tenant: "acme", agents: ["worker"] }), "a"))
      expect(Option.getOrThrow(yield* store.get(id)).runs.map((run) => run.agent_id)).toEqual(["planner", "worker"])

      // A record without a tenant does not take a tenant's runs either.
      const openId = freshId()
      const open = recordAt(openId, now)
      yield* store.save(open)
      yield* store.save(withRunIds(recordAt(openId, now, { tenant: "acme" }), "t"))
      expect(yield* store.get(openId)).toEqual(Option.some(open))
      expect(ids(yield* store.list({ tenant: "acme" }))).toEqual([id])
    }))

  it.effect("saving a request's record again replaces its runs; the status is the worst of the saves", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const id = freshId()
      yield* store.save(recordAt(id, now, { status: "success" }))
      yield* store.save(recordAt(id, now, { status: "error" }))
      const record = Option.getOrThrow(yield* store.get(id))
      expect(record.status).toBe("error")
      expect(record.error).toBe("error happened")
      expect(record.runs.map((run) => [run.run_id, run.status])).toEqual([[`${id}-0`, "error"]])
      expect(ids(yield* store.list({ status: "success" }))).toEqual([])
      expect(ids(yield* store.list({ status: "error" }))).toEqual([id])
      yield* store.save(recordAt(id, now, { status: "success" }))
      expect(Option.map(yield* store.get(id), (r) => r.status)).toEqual(Option.some("error"))
      expect(ids(yield* store.list())).toEqual([id])
    }))

  it.effect("the records of several requests of one trace accumulate: every run, the worst status, both ends", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const id = freshId()
      const first = recordAt(id, now - 5000, { status: "success", agents: ["planner"] })
      const second = withRunIds(recordAt(id, now - 1000, { status: "timeout", agents: ["worker"] }), "b")
      const third = withRunIds(recordAt(id, now - 3000, { status: "success", agents: ["planner"] }), "c")
      for (const record of [second, first, third]) yield* store.save(record)
      const merged = Option.getOrThrow(yield* store.get(id))
      expect(merged.runs.map((run) => run.run_id)).toEqual([`${id}-b0`, `${id}-0`, `${id}-c0`])
      expect(merged.status).toBe("timeout")
      expect(merged.error).toBe("timeout happened")
      expect(merged.started_at).toBe(first.started_at)
      expect(merged.ended_at).toBe(second.ended_at)
      expect(merged.duration_ms).toBe(4010)
      expect(merged.conversation_id).toBe("conv")
      const summary = (yield* store.list()).items
      expect(summary).toHaveLength(1)
      expect(summary[0]).toMatchObject({ trace_id: id, status: "timeout", runs: 3, started_at: first.started_at })
      expect(ids(yield* store.list({ status: "timeout" }))).toEqual([id])
      expect(ids(yield* store.list({ status: "success" }))).toEqual([])
      expect(ids(yield* store.list({ agent: "worker" }))).toEqual([id])
      expect(ids(yield* store.list({ agent: "planner" }))).toEqual([id])
    }))

  it.effect("20 saves of one trace at once lose no run", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const id = freshId()
      yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => withRunIds(recordAt(id, now - i, { agents: [`agent-${i % 3}`] }), `p${i}`)),
        (record) => store.save(record),
        { concurrency: "unbounded", discard: true }
      )
      const merged = Option.getOrThrow(yield* store.get(id))
      expect(new Set(merged.runs.map((run) => run.run_id)).size).toBe(20)
      expect(merged.started_at).toBe(new Date(now - 19).toISOString())
    }))

  it.effect("a trace's runs are capped across its requests; what is left out is counted", () =>
    Effect.gen(function*() {
      const factory = yield* ExecStoreFactory
      const { store } = yield* factory.fresh("1 hour", { maxRuns: 3, maxBytes: 256 * 1024 })
      const now = yield* Clock.currentTimeMillis
      const id = freshId()
      yield* store.save(recordAt(id, now, { agents: ["a", "b"] }))
      yield* store.save(withRunIds(recordAt(id, now, { agents: ["c", "d"] }), "x"))
      // A run saved again still fits: it replaces its earlier version.
      yield* store.save(recordAt(id, now, { agents: ["a"], status: "error" }))
      const merged = Option.getOrThrow(yield* store.get(id))
      expect(merged.runs.map((run) => run.agent_id)).toEqual(["a", "b", "c"])
      expect(merged.runs[0]!.status).toBe("error")
      expect(merged.dropped).toMatchObject({ runs: 1 })

      const small = yield* factory.fresh("1 hour", { maxRuns: 100, maxBytes: 1000 })
      const big = freshId()
      yield* small.store.save(recordAt(big, now, { agents: ["a", "b"] }))
      yield* small.store.save(withRunIds(recordAt(big, now, { agents: ["c", "d", "e"] }), "y"))
      const capped = Option.getOrThrow(yield* small.store.get(big))
      const bytes = capped.runs.reduce((n, run) => n + JSON.stringify(run).length, 0)
      expect(bytes).toBeLessThanOrEqual(1000)
      expect(capped.runs.length + (capped.dropped?.runs ?? 0)).toBe(5)
      expect(capped.dropped?.runs ?? 0).toBeGreaterThan(0)
    }))

  it.effect("a record an earlier version stored whole is read, and merged with the next save", () =>
    Effect.gen(function*() {
      const { putRaw, store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const id = freshId()
      const old = recordAt(id, now - 2000, { agents: ["planner"] })
      yield* putRaw(id, JSON.stringify(old), { score: now - 2000, status: "success", agents: ["planner"] })
      expect(yield* store.get(id)).toEqual(Option.some(old))
      yield* store.save(withRunIds(recordAt(id, now, { status: "error", agents: ["worker"] }), "n"))
      const merged = Option.getOrThrow(yield* store.get(id))
      expect(merged.runs.map((run) => run.run_id)).toEqual([`${id}-0`, `${id}-n0`])
      expect(merged.status).toBe("error")
      expect(merged.started_at).toBe(old.started_at)
    }))

  it.effect("pages through everything once, in order, including records that share a start millisecond", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const records = Array.from({ length: 25 }, (_, i) => recordAt(freshId(), now - 10_000 + Math.floor(i / 3) * 100))
      for (const record of records) yield* store.save(record)
      const pages = yield* allPages(store, { limit: 10 })
      expect(pages.map((p) => p.length)).toEqual([10, 10, 5])
      const expected = records
        .map((r) => r.trace_id)
        .sort((x, y) => {
          const sx = Date.parse(records.find((r) => r.trace_id === x)!.started_at)
          const sy = Date.parse(records.find((r) => r.trace_id === y)!.started_at)
          return sy - sx || (x < y ? 1 : -1)
        })
      expect(pages.flat()).toEqual(expected)
    }))

  it.effect("a cursor stays put while new records arrive: no record twice, none skipped", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const first = Array.from({ length: 12 }, (_, i) => recordAt(freshId(), now - 20_000 + i * 1000))
      for (const record of first) yield* store.save(record)
      const page1 = yield* store.list({ limit: 5 })
      expect(ids(page1)).toEqual(first.slice(7).reverse().map((r) => r.trace_id))
      // Newer records arrive, one at the very millisecond of the cursor, and a long run started earlier finishes.
      const newer = Array.from({ length: 5 }, (_, i) => recordAt(freshId(), now - 1000 + i * 100))
      const sameMs = recordAt(freshId(), Date.parse(first[7]!.started_at))
      const older = recordAt(freshId(), now - 30_000)
      for (const record of [...newer, sameMs, older]) yield* store.save(record)
      const rest = yield* allPages(store, { limit: 5, cursor: page1.next_cursor! })
      const seen = [...ids(page1), ...rest.flat()]
      expect(new Set(seen).size).toBe(seen.length)
      for (const record of first) expect(seen).toContain(record.trace_id)
      for (const record of newer) expect(seen).not.toContain(record.trace_id)
      expect(seen).toContain(older.trace_id)
      expect(seen.at(-1)).toBe(older.trace_id)
      // The record at the cursor's millisecond is listed after it only if its id sorts below the cursor's.
      expect(seen.includes(sameMs.trace_id)).toBe(sameMs.trace_id < first[7]!.trace_id)
    }))

  it.effect("rejects bad listing options with an error naming the field", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const field = (options: ExecutionStore.ListOptions) =>
        Effect.map(
          Effect.flip(store.list(options)),
          (error) => (error._tag === "InvalidExecutionQuery" ? error.field : error._tag)
        )
      expect(yield* field({ limit: 0 })).toBe("limit")
      expect(yield* field({ limit: 101 })).toBe("limit")
      expect(yield* field({ limit: 2.5 })).toBe("limit")
      expect(yield* field({ status: "fine" as ExecutionRecord.Status })).toBe("status")
      expect(yield* field({ agent: "" })).toBe("agent")
      expect(yield* field({ tenant: "" })).toBe("tenant")
      expect(yield* field({ tenant: "a b" })).toBe("tenant")
      expect(yield* field({ tenant: "x".repeat(65) })).toBe("tenant")
      expect(yield* field({ cursor: "not a cursor!" })).toBe("cursor")
      expect(yield* field({ cursor: Buffer.from("abc").toString("base64url") })).toBe("cursor")
    }))

  it.effect("a record expires after its TTL and leaves the listing", () =>
    Effect.gen(function*() {
      const { store, ttl, passTime } = yield* freshWith("1 second")
      const now = yield* Clock.currentTimeMillis
      const record = recordAt(freshId(), now)
      yield* store.save(record)
      yield* passTime(Duration.toMillis(ttl) / 2)
      expect(Option.isSome(yield* store.get(record.trace_id))).toBe(true)
      yield* passTime(Duration.toMillis(ttl) / 2 + 300)
      expect(yield* store.get(record.trace_id)).toEqual(Option.none())
      expect(ids(yield* store.list())).toEqual([])
    }))

  it.effect("index entries past retention are trimmed: a record started before it is not listed", () =>
    Effect.gen(function*() {
      const { store, ttl } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const stale = recordAt(freshId(), now - Duration.toMillis(ttl) - 1000, { agents: ["worker"] })
      const fresh1 = recordAt(freshId(), now, { agents: ["worker"] })
      yield* store.save(stale)
      yield* store.save(fresh1)
      expect(ids(yield* store.list())).toEqual([fresh1.trace_id])
      expect(ids(yield* store.list({ agent: "worker" }))).toEqual([fresh1.trace_id])
      expect(ids(yield* store.list({ status: "success" }))).toEqual([fresh1.trace_id])
    }))

  it.effect("a stored value that is not a record is a typed error naming the trace, and listing skips it", () =>
    Effect.gen(function*() {
      const { putRaw, store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const good = recordAt(freshId(), now - 1000)
      yield* store.save(good)
      const bad = freshId()
      yield* putRaw(bad, "{\"trace_id\": \"oops\"", { score: now, status: "error", agents: ["agent"] })
      const error = yield* Effect.flip(store.get(bad))
      expect(error._tag).toBe("ExecutionRecordCorrupt")
      if (error._tag === "ExecutionRecordCorrupt") {
        expect(error.trace_id).toBe(bad)
        expect(error.message).toContain(bad)
      }
      expect(ids(yield* store.list())).toEqual([good.trace_id])
      expect(ids(yield* store.list({ status: "error" }))).toEqual([])
    }))

  it.effect("refuses to save a record that is not valid", () =>
    Effect.gen(function*() {
      const { store } = yield* fresh
      const now = yield* Clock.currentTimeMillis
      const invalid = { ...recordAt(freshId(), now), duration_ms: -1 }
      const result = yield* Effect.either(store.save(invalid))
      expect(Either.isLeft(result) && result.left._tag).toBe("ExecutionRecordCorrupt")
      expect(yield* store.get(invalid.trace_id)).toEqual(Option.none())
    }))
}
