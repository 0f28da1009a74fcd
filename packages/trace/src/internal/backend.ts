/**
 * The few storage steps a TraceStore backend provides (Redis, or a memory twin of the same semantics); everything
 * else (validation, timestamps, decoding, the sweep loop) is shared in `service.ts`, so the twins cannot drift.
 */
import type { Lease } from "@sg/leader"
import type { RedisError } from "@sg/redis"
import type * as Effect from "effect/Effect"

/** What the atomic state change found. */
export type SetStateResult =
  | { readonly _tag: "ok" }
  | { readonly _tag: "missing" }
  | { readonly _tag: "terminal"; readonly state: string }

/** One active id as the sweep's batch read saw it (`null`: field or hash absent). */
export interface Row {
  readonly id: string
  readonly state: string | null
  readonly createdAt: string | null
}

/** An id the sweep means to act on. */
export interface Candidate {
  readonly id: string
  /** The `created_at` read for it; `""` when its hash looked gone. The write happens only if it is unchanged. */
  readonly seen: string
  /** Its age when read (0 when its hash looked gone). */
  readonly ageMillis: number
}

/** What the decision step did for each candidate, in order. */
export const Decision = { skipped: 0, removedMissing: 1, orphaned: 2, unreadable: 3 } as const

/** The decision step's answer: one `Decision` per candidate, or nothing written because the fence failed. */
export type DecideResult =
  | { readonly _tag: "ok"; readonly decisions: ReadonlyArray<number> }
  | { readonly _tag: "lease_lost"; readonly holder: string | null; readonly epoch: string | null }

/** The storage steps of a TraceStore. Ids are plain strings: the active set may hold ids another writer put there. */
export interface Backend {
  readonly kind: "redis" | "memory"
  /** One MULTI: HSET the flat field/value pairs, EXPIRE, SADD the active set. */
  readonly create: (id: string, fields: ReadonlyArray<string>, ttlSeconds: number) => Effect.Effect<void, RedisError>
  /**
   * Atomically: refuse if the hash is gone or terminal; else HSET state, updated_at and the fields, and when
   * `terminalTtlSeconds` is given EXPIRE the hash and SREM the id.
   */
  readonly setState: (
    id: string,
    state: string,
    now: string,
    fields: ReadonlyArray<string>,
    terminalTtlSeconds: number | undefined
  ) => Effect.Effect<SetStateResult, RedisError>
  /** HGETALL; `undefined` when the hash is gone. */
  readonly read: (id: string) => Effect.Effect<Readonly<Record<string, string>> | undefined, RedisError>
  /** PTTL; `undefined` when the hash is gone or has no TTL. */
  readonly ttlMillis: (id: string) => Effect.Effect<number | undefined, RedisError>
  readonly isActive: (id: string) => Effect.Effect<boolean, RedisError>
  readonly activeCount: Effect.Effect<number, RedisError>
  /** One round trip that succeeds only while the store answers (PING). */
  readonly ping: Effect.Effect<void, RedisError>
  /**
   * Starts a walk of the active set (SSCAN, `batchSize` its COUNT); the effect it returns reads the next batch in one
   * round trip, each id with its `state` and `created_at`, and yields `undefined` once the walk is over.
   */
  readonly walk: (batchSize: number) => Effect.Effect<Effect.Effect<ReadonlyArray<Row> | undefined, RedisError>>
  /**
   * One atomic step over the candidates: check the fence (if any), then per candidate re-read and decide: hash gone
   * → SREM; still not terminal and `created_at` unchanged → ERRORED, `error` orphaned, updated_at, EXPIRE, SREM.
   */
  readonly decide: (
    candidates: ReadonlyArray<Candidate>,
    now: string,
    terminalTtlSeconds: number,
    fence: Lease.Service | undefined
  ) => Effect.Effect<DecideResult, RedisError>
}
