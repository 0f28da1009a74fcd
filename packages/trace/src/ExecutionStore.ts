/**
 * Where execution records are kept: save, get and list them, newest first, by status or by agent. Two
 * implementations share this interface and one conformance suite: Redis (the record as a hash at `sg:exec:<id>`,
 * one field per run, with a 7-day TTL, sorted-set indexes `sg:exec:index`, `sg:exec:index:status:<status>`,
 * `sg:exec:index:agent:<agent>` and `sg:exec:index:tenant:<tenant>` scored by start ms and trimmed of entries past
 * retention on every write) and memory (the same under `Clock`).
 *
 * A trace may span several requests (a caller's W3C trace over retries or fan-outs), each saving its own record: a
 * save merges into what the trace holds, run by run and atomically, so no save drops another's runs. The merged
 * record's status is the worst of the saves, `started_at` the earliest, `ended_at` the latest; it holds at most
 * `maxRuns` runs (1,000) and `maxBytes` of them (256 KiB), what is left out counted in `dropped.runs`. A record holds
 * one tenant's runs: a save of another tenant into it (the first save decides) is logged and changes nothing.
 *
 * This module holds the Tag, the memory layers and the options; the Redis store is `@sg/trace/ExecutionStore/Redis`.
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type { ExecutionRecord, ExecutionSummary, Status } from "./ExecutionRecord.js"
import { defaultMaxTraces } from "./internal/evictions.js"
import { makeMemoryExecutions } from "./internal/executionsMemory.js"
import type { TraceId } from "./TraceId.js"
import type { ExecutionRecordCorrupt, InvalidExecutionQuery } from "./ExecutionStoreError.js"
import type { TraceStoreFailure } from "./TraceStoreError.js"

/** What to list. */
export interface ListOptions {
  readonly status?: Status | undefined
  readonly agent?: string | undefined
  /** Only the records of this tenant (`ExecutionRecord.Tenant`). */
  readonly tenant?: string | undefined
  /** Records per page, 1 to 100; 20 by default. */
  readonly limit?: number | undefined
  /** The `next_cursor` of the previous page. */
  readonly cursor?: string | undefined
}

/** One page of a listing, newest first. */
export interface Page {
  readonly items: ReadonlyArray<ExecutionSummary>
  /** Pass it as `cursor` for the next (older) page; null on the last page. Records saved meanwhile never shift it. */
  readonly next_cursor: string | null
}

export { ExecutionRecordCorrupt, InvalidExecutionQuery } from "./ExecutionStoreError.js"

/** The store of execution records. */
export interface Service {
  /** Which store this is. */
  readonly backend: "redis" | "redis-cluster" | "memory"
  /**
   * Merges a record into the trace's (a run saved again replaces its earlier version), indexes it and trims the
   * indexes it touches of entries past retention.
   */
  readonly save: (record: ExecutionRecord) => Effect.Effect<void, TraceStoreFailure | ExecutionRecordCorrupt>
  /** The record of a trace; `None` when there is none (never saved, not sampled, or expired). */
  readonly get: (traceId: TraceId) => Effect.Effect<Option.Option<ExecutionRecord>, TraceStoreFailure | ExecutionRecordCorrupt>
  /** A page of summaries, newest first; expired and unreadable records are skipped (the latter logged). */
  readonly list: (options?: ListOptions) => Effect.Effect<Page, TraceStoreFailure | InvalidExecutionQuery>
}

/** How long records are kept, how large one trace's may grow, and in memory how many. */
export interface Options {
  /** TTL of a record and retention of its index entries (`SG_EXEC_TTL`, 7 days). */
  readonly ttl: Duration.DurationInput
  /** Runs one trace's record holds at most, across all its requests (1,000). */
  readonly maxRuns?: number | undefined
  /** Bytes of run JSON one trace's record holds at most, across all its requests (256 KiB). */
  readonly maxBytes?: number | undefined
  /**
   * The memory store's cap (`SG_MEMORY_MAX_TRACES`, 100,000): past it the record saved longest ago goes, counted in
   * `sg_records_evicted_total{store="execution"}`. Redis ignores it (its memory is Redis' to bound).
   */
  readonly maxTraces?: number | undefined
}

/** The defaults DESIGN.md gives. */
export const defaults: Options = { ttl: Duration.days(7), maxRuns: 1000, maxBytes: 256 * 1024, maxTraces: defaultMaxTraces }

/** `SG_MEMORY_MAX_TRACES` (100,000), a whole number from 1: the memory stores' cap, through `Config`. */
export const memoryMaxTracesConfig: Config.Config<number> = Config.integer("SG_MEMORY_MAX_TRACES").pipe(
  Config.withDefault(defaultMaxTraces),
  Config.validate({ message: "SG_MEMORY_MAX_TRACES must be at least 1", validation: (n) => n >= 1 }),
  Config.withDescription("the memory stores' cap: lifecycle hashes and execution records kept, each")
)

/** `SG_EXEC_TTL` (7 days), through `Config`. */
export const config: Config.Config<Options> = Config.all({
  ttl: Config.duration("SG_EXEC_TTL").pipe(
    Config.withDefault(Duration.days(7)),
    Config.validate({
      message: "SG_EXEC_TTL must be at least 1 second",
      validation: (d) => Duration.greaterThanOrEqualTo(d, Duration.seconds(1))
    }),
    Config.withDescription("how long execution records are kept")
  )
})

/** `config` and `SG_MEMORY_MAX_TRACES` (100,000), for the memory store. */
export const memoryConfig: Config.Config<Options> = Config.all({ options: config, maxTraces: memoryMaxTracesConfig }).pipe(
  Config.map(({ maxTraces, options }) => ({ ...options, maxTraces }))
)

/** The store of execution records. */
export class ExecutionStore extends Context.Tag("@sg/trace/ExecutionStore")<ExecutionStore, Service>() {}

/**
 * A store in process memory with the Redis store's semantics; TTL and retention follow `Clock`, so `TestClock`
 * expires records. Bounded: expired records are purged on later saves, and past `maxTraces` the oldest go first.
 */
export const makeMemory = (options?: Partial<Options>): Effect.Effect<Service> =>
  Effect.sync(() => makeMemoryExecutions({ ...defaults, ...options }))

/** The memory store with DESIGN.md's defaults. */
export const layerMemory: Layer.Layer<ExecutionStore> = Layer.effect(ExecutionStore, makeMemory())

/** The memory store configured from the environment (`SG_EXEC_TTL`, `SG_MEMORY_MAX_TRACES`). */
export const layerMemoryConfig: Layer.Layer<ExecutionStore, ConfigError.ConfigError> = Layer.effect(
  ExecutionStore,
  Effect.flatMap(memoryConfig, makeMemory)
)
