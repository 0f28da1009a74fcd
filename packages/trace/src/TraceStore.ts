/**
 * The lifecycle store of traces: create, transition, finish and read the hash `sg:trace:<id>`, keep the
 * `sg:traces:active` set, and sweep orphans (traces whose worker died). Keys, fields, timestamps and TTLs are those
 * the Python `core.trace` module uses, so both can share one Redis.
 */
import type { Lease } from "@sg/leader"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as ExecutionStore from "./ExecutionStore.js"
import * as Evictions from "./internal/evictions.js"
import * as Layout from "./internal/layout.js"
import { makeMemoryBackend, MemoryKeyspace } from "./internal/memoryBackend.js"
import { makeService } from "./internal/service.js"
import type { TraceId } from "./TraceId.js"
import type { State, TerminalState, TraceRecord } from "./TraceRecord.js"
import type {
  InvalidTraceInput,
  InvalidTraceRecord,
  LeaseLost,
  StaleTraceWrite,
  TraceAlreadyTerminal,
  TraceNotFound,
  TraceStoreFailure
} from "./TraceStoreError.js"

/** TTLs and thresholds; DESIGN.md's defaults are in `defaults`. */
export interface Options {
  /** TTL a trace gets when created, so it goes away even if nothing ever finishes or sweeps it (24 hours). */
  readonly failsafeTtl: Duration.DurationInput
  /** TTL a trace gets once `COMPLETED` or `ERRORED` (1 hour). */
  readonly terminalTtl: Duration.DurationInput
  /** Age past which a trace still in flight counts as orphaned (30 minutes). */
  readonly orphanThreshold: Duration.DurationInput
  /** How many ids a sweep reads per SSCAN step (500). */
  readonly sweepBatchSize: number
  /**
   * The memory store's cap (`SG_MEMORY_MAX_TRACES`, 100,000) on lifecycle hashes and on active ids, each: past it
   * the least recently written goes, counted in `recordsEvicted`. Redis ignores it.
   */
  readonly maxTraces: number
  /**
   * On a Redis Cluster, how many shards the active set and the execution indexes are split into, each under its own
   * hash tag (`SG_INDEX_SHARDS`, 16; 1 to 1024). Fixed for a keyspace's life: a trace's keys are found by its shard.
   * Ignored standalone and in memory.
   */
  readonly indexShards: number
}

/** The defaults DESIGN.md gives. TTLs are whole seconds in Redis: shorter ones are rounded up to a second. */
export const defaults: Options = {
  failsafeTtl: Duration.hours(24),
  terminalTtl: Duration.hours(1),
  orphanThreshold: Duration.minutes(30),
  sweepBatchSize: 500,
  maxTraces: Evictions.defaultMaxTraces,
  indexShards: Layout.defaultShards
}

/**
 * Entries the memory store evicted past `maxTraces`, oldest first: `sg_records_evicted_total`, by `store`
 * (`lifecycle` hashes, `active_set` ids, `execution` records). Expired entries are not counted: they are purged.
 */
export const recordsEvicted = Evictions.recordsEvicted

const atLeastASecond = (name: string) =>
  Config.validate<Duration.Duration>({
    message: `${name} must be at least 1 second`,
    validation: (d) => Duration.greaterThanOrEqualTo(d, Duration.seconds(1))
  })

/** `SG_FAILSAFE_TTL` (24 hours), `SG_TERMINAL_TTL` (1 hour), `SG_ORPHAN_THRESHOLD` (30 minutes), via `Config`. */
export const config: Config.Config<Options> = Config.all({
  failsafeTtl: Config.duration("SG_FAILSAFE_TTL").pipe(
    Config.withDefault(Duration.hours(24)),
    atLeastASecond("SG_FAILSAFE_TTL"),
    Config.withDescription("TTL of a trace hash from its creation")
  ),
  terminalTtl: Config.duration("SG_TERMINAL_TTL").pipe(
    Config.withDefault(Duration.hours(1)),
    atLeastASecond("SG_TERMINAL_TTL"),
    Config.withDescription("TTL of a trace hash once COMPLETED or ERRORED")
  ),
  orphanThreshold: Config.duration("SG_ORPHAN_THRESHOLD").pipe(
    Config.withDefault(Duration.minutes(30)),
    atLeastASecond("SG_ORPHAN_THRESHOLD"),
    Config.withDescription("age past which a trace in flight is orphaned")
  ),
  sweepBatchSize: Config.succeed(defaults.sweepBatchSize),
  maxTraces: Config.succeed(defaults.maxTraces),
  indexShards: Layout.shardsConfig
})

/** `config` and `SG_MEMORY_MAX_TRACES` (100,000), for the memory store. */
export const memoryConfig: Config.Config<Options> = Config.all({
  options: config,
  maxTraces: ExecutionStore.memoryMaxTracesConfig
}).pipe(Config.map(({ maxTraces, options }) => ({ ...options, maxTraces })))

/** How one sweep runs. */
export interface SweepOptions {
  /**
   * The COUNT of each SSCAN step; each step's ids are then read in one round trip and decided in one script.
   * Defaults to the store's `sweepBatchSize` (500).
   */
  readonly batchSize?: number | undefined
  /** Overrides the store's orphan threshold for this sweep. */
  readonly threshold?: Duration.DurationInput | undefined
  /**
   * The lease the sweep writes under: every write first checks, atomically with it, that the lease is still held by
   * this token at this epoch, and the sweep fails with `LeaseLost` otherwise. Defaults to the `Lease` in the context
   * (what `LeaderElection.runWhileLeader` provides); without either the sweep is not fenced.
   */
  readonly fence?: Lease.Service | undefined
}

/** What one sweep did. The JSON form is what `sg sweep --once --json` prints. */
export const SweepReport = Schema.Struct({
  /** Ids read from the active set (an id can be counted twice when Redis rehashes the set during the walk). */
  scanned: Schema.Number,
  /** Ids whose hash was gone, removed from the active set. */
  removed_missing: Schema.Number,
  /** Ids whose trace was already terminal (a writer that did not leave the set), removed; their hashes left alone. */
  removed_terminal: Schema.Number,
  /** Traces in flight past the threshold, made `ERRORED` with `error` = `orphaned`. */
  orphaned: Schema.Number,
  /** Traces left alone because their `created_at` (or state) could not be read. */
  skipped_unreadable: Schema.Number,
  /** Wall time of the sweep, from `Clock`. */
  duration_ms: Schema.Number
})

/** What one sweep did. */
export type SweepReport = typeof SweepReport.Type

/** What `create` did; the `opening` is what the request's later writes pass, so a late one cannot cross openings. */
export interface Opening {
  /** 1 for a new trace, one more each time a request reopens a terminal one. */
  readonly opening: number
  /**
   * `new`, `joined` (another request of the trace was in flight), `reopened` (the trace was terminal), or
   * `duplicate` (this request, by its `request` token, was registered already: nothing written).
   */
  readonly kind: "new" | "joined" | "reopened" | "duplicate"
  /** Requests of this opening now in flight, this one included. */
  readonly in_flight: number
}

/** Which request a `create` registers: a token that makes the write count once, however often it is sent. */
export interface CreateOptions {
  /**
   * The request's own token (1 to 64 of `[A-Za-z0-9_-]`), unique among the trace's requests: a `create` or `finish`
   * sent again after a lost reply (a timeout, then a replay) then counts once.
   */
  readonly request?: string | undefined
}

/** Which request a write after `create` belongs to. */
export interface WriteOptions extends CreateOptions {
  /** The opening its `create` returned; the write is refused (`StaleTraceWrite`) once the trace has moved past it. */
  readonly opening?: number | undefined
}

/** What finishing one request did. */
export interface Finished {
  /** Whether this was the last request in flight: the trace is now terminal. */
  readonly ended: boolean
  /** The trace's state now: the terminal one when `ended`, else the state the other requests left. */
  readonly state: string | undefined
  /** Requests still in flight. */
  readonly in_flight: number
  /** Whether the `request` token had finished already (or was never registered): nothing was written. */
  readonly duplicate: boolean
}

/**
 * The trace lifecycle store. A trace id may arrive on several requests, one after another or at once (a caller's W3C
 * trace spanning retries or fan-outs): each `create` counts one more request, the trace stays in flight while any is,
 * and the last `finish` makes it terminal (`ERRORED` if any request of that opening errored). A request after the
 * trace went terminal reopens it with a fresh `created_at`; writes of the earlier opening are then refused.
 */
export interface Service {
  /** Which backend this is, for `/api/status`: one Redis, a Redis Cluster, or this process' memory. */
  readonly backend: "redis" | "redis-cluster" | "memory"
  /** Where a Redis store keeps its keys (the URL with any password masked, and the key prefix); none in memory. */
  readonly address: Address | undefined
  /**
   * Registers a request of a trace, in one atomic step: a new trace (state, `created_at` and `updated_at` now,
   * opening 1), one more request of a trace in flight, or a terminal trace reopened; the metadata is written, the
   * failsafe TTL set again and the id is in the active set.
   */
  readonly create: (
    id: TraceId,
    initialState: State,
    metadata?: Readonly<Record<string, string>>,
    options?: CreateOptions
  ) => Effect.Effect<Opening, InvalidTraceInput | TraceStoreFailure>
  /**
   * Moves a trace to a new state (and `updated_at` to now), atomically refused once it is terminal or, with
   * `opening`, once it has moved past that opening. Moving it to `COMPLETED` or `ERRORED` is `finish` with no fields.
   */
  readonly transition: (
    id: TraceId,
    state: State,
    options?: WriteOptions
  ) => Effect.Effect<void, TraceNotFound | TraceAlreadyTerminal | StaleTraceWrite | InvalidTraceInput | TraceStoreFailure>
  /**
   * Ends one request of the trace, atomically: its fields (e.g. `error`), and when it was the last in flight the
   * terminal state (`ERRORED` if any request of the opening errored), `updated_at`, the terminal TTL and its removal
   * from the active set. Refused if the trace is already terminal or, with `opening`, past that opening.
   */
  readonly finish: (
    id: TraceId,
    state: TerminalState,
    fields?: Readonly<Record<string, string>>,
    options?: WriteOptions
  ) => Effect.Effect<
    Finished,
    TraceNotFound | TraceAlreadyTerminal | StaleTraceWrite | InvalidTraceInput | TraceStoreFailure
  >
  /**
   * Adds caller fields (metadata) to an existing trace, atomically: a gone trace is `TraceNotFound` (no hash is
   * created), and a name in `TraceRecord.reservedFields` is refused here and never written by the step itself, so
   * the store's own fields cannot be overwritten. Any state, terminal included; `updated_at` is left as it is.
   */
  readonly annotate: (
    id: TraceId,
    fields: Readonly<Record<string, string>>
  ) => Effect.Effect<void, TraceNotFound | InvalidTraceInput | TraceStoreFailure>
  /** The trace's record; `None` once its hash is gone. */
  readonly get: (id: TraceId) => Effect.Effect<Option.Option<TraceRecord>, InvalidTraceRecord | TraceStoreFailure>
  /** Time left before the trace's hash expires; `None` when it is gone (or has no TTL). */
  readonly ttl: (id: TraceId) => Effect.Effect<Option.Option<Duration.Duration>, TraceStoreFailure>
  /** Whether the id is in the active set. */
  readonly isActive: (id: TraceId) => Effect.Effect<boolean, TraceStoreFailure>
  /** How many ids the active set holds (SCARD). */
  readonly activeCount: Effect.Effect<number, TraceStoreFailure>
  /** Succeeds only while the store answers (a PING to Redis; always, for memory): for readiness checks. */
  readonly ping: Effect.Effect<void, TraceStoreFailure>
  /**
   * One pass of the orphan sweep: walks the active set in batches (SSCAN), removes ids whose hash is gone or whose
   * trace is already terminal (leaving the hash alone), and makes traces in flight idle past the threshold
   * (no write since: `updated_at`, else `created_at`) `ERRORED` (`error` = `orphaned`, terminal TTL, out of the set),
   * deciding and writing each batch in one atomic step so a trace that completes or gets a new request meanwhile is
   * left alone. Logs `trace_orphaned` (warning, with `trace_id` and `age_seconds`) per orphan. An unreadable
   * timestamp is counted and left alone.
   */
  readonly sweepOrphans: (
    options?: SweepOptions
  ) => Effect.Effect<SweepReport, LeaseLost | InvalidTraceInput | TraceStoreFailure>
}

/** Where a Redis store keeps its keys. */
export interface Address {
  /** The server's URL, any password masked. */
  readonly target: string
  /** The prefix of every key (`sg`). */
  readonly prefix: string
  /**
   * The masters the client sees now (`host:port`): the one server standalone, every master of a Redis Cluster (the
   * list changes with a failover).
   */
  readonly masters: Effect.Effect<ReadonlyArray<string>>
}

/** The trace lifecycle store. */
export class TraceStore extends Context.Tag("@sg/trace/TraceStore")<TraceStore, Service>() {}

/** The options with DESIGN.md's defaults for what they leave out. */
export const resolve = (options?: Partial<Options>): Options => ({ ...defaults, ...options })

/**
 * A store in process memory with the same semantics; TTLs follow `Clock`, so `TestClock` expires records. Bounded:
 * expired entries are purged on later writes, and past `maxTraces` the oldest go first.
 */
export const makeMemory = (options?: Partial<Options>): Effect.Effect<Service> =>
  Effect.sync(() => {
    const resolved = resolve(options)
    return makeService(makeMemoryBackend(new MemoryKeyspace({ maxTraces: resolved.maxTraces })), resolved)
  })

/** The memory store with DESIGN.md's defaults. */
export const layerMemory: Layer.Layer<TraceStore> = Layer.effect(TraceStore, makeMemory())

/** The memory store configured from the environment (see `memoryConfig`). */
export const layerMemoryConfig: Layer.Layer<TraceStore, ConfigError.ConfigError> = Layer.effect(
  TraceStore,
  Effect.flatMap(memoryConfig, makeMemory)
)
