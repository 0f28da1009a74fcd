/**
 * The few storage steps a TraceStore backend provides (Redis, or a memory twin of the same semantics); everything
 * else (validation, timestamps, decoding, the sweep loop) is shared in `service.ts`, so the twins cannot drift.
 */
import type { Lease } from "@sg/leader"
import type * as Effect from "effect/Effect"
import type { TerminalState } from "../TraceRecord.js"
import type { TraceStoreFailure } from "../TraceStoreError.js"

/** Why a write after `create` was refused: the hash is gone, belongs to a newer opening, or is terminal. */
export type Refused =
  | { readonly _tag: "missing" }
  | { readonly _tag: "stale"; readonly opening: string }
  | { readonly _tag: "terminal"; readonly state: string }

/** What `create` did: a new trace, one more request joining a trace in flight, or a terminal trace reopened. */
export interface CreateResult {
  readonly opening: number
  readonly kind: "new" | "joined" | "reopened" | "duplicate"
  readonly inFlight: number
}

/** What the atomic state change found. */
export type SetStateResult = { readonly _tag: "ok" } | Refused

/** What finishing one request did: the trace ended, or others are still in flight. */
export type FinishResult =
  | { readonly _tag: "ended"; readonly state: TerminalState }
  | { readonly _tag: "pending"; readonly inFlight: number }
  | { readonly _tag: "duplicate" }
  | Refused

/** One active id as the sweep's batch read saw it (`null`: field or hash absent). */
export interface Row {
  readonly id: string
  readonly state: string | null
  readonly createdAt: string | null
  readonly updatedAt: string | null
}

/** An id the sweep means to act on. */
export interface Candidate {
  readonly id: string
  /** What the read saw: `gone` (no hash), `terminal` (still listed), or `idle` (in flight past the threshold). */
  readonly kind: "gone" | "terminal" | "idle"
  /** For `idle`, the activity timestamp read (`updated_at`, else `created_at`): the write happens only if unchanged. */
  readonly seen: string
  /** Time since that activity when read (0 unless `idle`). */
  readonly ageMillis: number
}

/** What the decision step did for each candidate, in order. */
export const Decision = { skipped: 0, removedMissing: 1, orphaned: 2, unreadable: 3, removedTerminal: 4 } as const

/** The decision step's answer: one `Decision` per candidate, or nothing written because the fence failed. */
export type DecideResult =
  | { readonly _tag: "ok"; readonly decisions: ReadonlyArray<number> }
  | { readonly _tag: "lease_lost"; readonly holder: string | null; readonly epoch: string | null }

/** What raising a shard's fence before sweeping it found: raised (or already there), or a newer leader's epoch. */
export type FenceResult = { readonly _tag: "ok" } | { readonly _tag: "lease_lost"; readonly epoch: string | null }

/** The storage steps of a TraceStore. Ids are plain strings: the active set may hold ids another writer put there. */
export interface Backend {
  readonly kind: "redis" | "redis-cluster" | "memory"
  /** Where Redis keeps the keys, and the masters it sees; none in memory. */
  readonly address:
    | {
      readonly target: string
      readonly prefix: string
      readonly masters: Effect.Effect<ReadonlyArray<string>>
    }
    | undefined
  /** How many shards the active set is split into (1 but on a cluster); a sweep walks them one after another. */
  readonly shards: number
  /**
   * Before a fenced sweep walks shard `shard`: raises the shard's fence to the lease's epoch, or finds a newer
   * leader's above it. Where the decision step checks the lease itself (one shard), nothing to do.
   */
  readonly raiseFence: (shard: number, fence: Lease.Service) => Effect.Effect<FenceResult, TraceStoreFailure>
  /** Atomically opens, joins or reopens the trace (see `scripts.create`): state, metadata pairs, TTL, active set. */
  readonly create: (
    id: string,
    state: string,
    now: string,
    metadata: ReadonlyArray<string>,
    ttlSeconds: number,
    request: string | undefined
  ) => Effect.Effect<CreateResult, TraceStoreFailure>
  /** Atomically: the refusals (`opening` undefined: unchecked); else HSET state and updated_at. */
  readonly transition: (
    id: string,
    state: string,
    now: string,
    opening: number | undefined
  ) => Effect.Effect<SetStateResult, TraceStoreFailure>
  /** Atomically: the refusals; else one request of the trace ends (see `scripts.finish`). */
  readonly finish: (
    id: string,
    state: TerminalState,
    now: string,
    opening: number | undefined,
    fields: ReadonlyArray<string>,
    terminalTtlSeconds: number,
    request: string | undefined
  ) => Effect.Effect<FinishResult, TraceStoreFailure>
  /**
   * Atomically: refuse if the hash is gone (`false`, nothing created); else HSET the flat field/value pairs whose
   * name is not one of `reserved` (`true`).
   */
  readonly annotate: (
    id: string,
    fields: ReadonlyArray<string>,
    reserved: ReadonlyArray<string>
  ) => Effect.Effect<boolean, TraceStoreFailure>
  /** HGETALL; `undefined` when the hash is gone. */
  readonly read: (id: string) => Effect.Effect<Readonly<Record<string, string>> | undefined, TraceStoreFailure>
  /** PTTL; `undefined` when the hash is gone or has no TTL. */
  readonly ttlMillis: (id: string) => Effect.Effect<number | undefined, TraceStoreFailure>
  readonly isActive: (id: string) => Effect.Effect<boolean, TraceStoreFailure>
  /** The size of the active set, every shard's. */
  readonly activeCount: Effect.Effect<number, TraceStoreFailure>
  /** One round trip that succeeds only while the store answers (PING). */
  readonly ping: Effect.Effect<void, TraceStoreFailure>
  /**
   * Starts a walk of one shard of the active set (SSCAN, `batchSize` its COUNT); the effect it returns reads the next
   * batch (one or two round trips), each id with its `state`, `created_at` and `updated_at`, and yields `undefined`
   * once it is over.
   */
  readonly walk: (
    shard: number,
    batchSize: number
  ) => Effect.Effect<Effect.Effect<ReadonlyArray<Row> | undefined, TraceStoreFailure>>
  /**
   * One atomic step over candidates of one shard: check the fence (if any), then per candidate re-read and decide: hash gone
   * → SREM; still terminal → SREM; still in flight and its activity unchanged → ERRORED, `error` orphaned,
   * updated_at, EXPIRE, SREM.
   */
  readonly decide: (
    shard: number,
    candidates: ReadonlyArray<Candidate>,
    now: string,
    terminalTtlSeconds: number,
    fence: Lease.Service | undefined
  ) => Effect.Effect<DecideResult, TraceStoreFailure>
}
