/**
 * The TraceStore backend in process memory: a twin of the Redis keyspace (hashes with TTLs, the active set) whose
 * TTLs follow `Clock`. Each step runs synchronously after reading the clock, so it is atomic as a Lua script is.
 * Both are bounded (`expiringMap.ts`): expired hashes are purged on later writes, past `maxTraces` the least recently
 * written hash goes (its id, if still active, stays for the sweep to remove as Redis would leave it), and the active
 * set drops its first added id past the same cap (that hash keeps its failsafe TTL).
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { Backend, DecideResult, Row, SetStateResult } from "./backend.js"
import { Decision } from "./backend.js"
import { countEviction, defaultMaxTraces } from "./evictions.js"
import { BoundedSet, ExpiringMap } from "./expiringMap.js"

interface Entry {
  readonly fields: Map<string, string>
}

/** The twin keyspace: hashes by trace id (the map keeps their expiry), and the active set. Tests may write into it. */
export class MemoryKeyspace {
  readonly hashes: ExpiringMap<string, Entry>
  readonly active: BoundedSet<string>

  constructor(options?: { readonly maxTraces?: number | undefined }) {
    const capacity = options?.maxTraces ?? defaultMaxTraces
    this.hashes = new ExpiringMap({
      capacity,
      onRemove: (_id, _entry, why) => why === "evicted" && countEviction("lifecycle")
    })
    this.active = new BoundedSet({ capacity, onEvict: () => countEviction("active_set") })
  }

  /** The live hash of an id at `now`; an expired one is deleted, as Redis does lazily. */
  live(id: string, now: number): Entry | undefined {
    return this.hashes.get(id, now)
  }

  /** HSET of field/value pairs, creating the hash when needed (a live hash keeps its TTL). */
  hset(id: string, now: number, pairs: ReadonlyArray<string>): Entry {
    const entry = this.live(id, now) ?? { fields: new Map() }
    for (let i = 0; i + 1 < pairs.length; i += 2) entry.fields.set(pairs[i]!, pairs[i + 1]!)
    this.hashes.set(id, entry, now)
    return entry
  }

  /** EXPIRE at `at` (Unix ms; `undefined`: PERSIST). */
  expire(id: string, at: number | undefined): void {
    this.hashes.expire(id, at ?? Infinity)
  }
}

const isTerminalState = (state: string | undefined) => state === "COMPLETED" || state === "ERRORED"

/** The backend over a keyspace. */
export const makeMemoryBackend = (keyspace: MemoryKeyspace): Backend => {
  const atNow = <A>(f: (now: number) => A): Effect.Effect<A> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => f(now)))

  return {
    kind: "memory",
    create: (id, fields, ttlSeconds) =>
      atNow((now) => {
        keyspace.hset(id, now, fields)
        keyspace.expire(id, now + ttlSeconds * 1000)
        keyspace.active.add(id)
      }),
    setState: (id, state, at, fields, terminalTtlSeconds) =>
      atNow((now): SetStateResult => {
        const entry = keyspace.live(id, now)
        if (entry === undefined) return { _tag: "missing" }
        const current = entry.fields.get("state")
        if (isTerminalState(current)) return { _tag: "terminal", state: current! }
        keyspace.hset(id, now, ["state", state, "updated_at", at, ...fields])
        if (terminalTtlSeconds !== undefined) {
          keyspace.expire(id, now + terminalTtlSeconds * 1000)
          keyspace.active.delete(id)
        }
        return { _tag: "ok" }
      }),
    read: (id) =>
      atNow((now) => {
        const entry = keyspace.live(id, now)
        return entry === undefined ? undefined : Object.fromEntries(entry.fields)
      }),
    ttlMillis: (id) => atNow((now) => {
      const expiresAt = keyspace.live(id, now) === undefined ? undefined : keyspace.hashes.expiresAt(id)
      return expiresAt === undefined ? undefined : expiresAt - now
    }),
    isActive: (id) => Effect.sync(() => keyspace.active.has(id)),
    activeCount: Effect.sync(() => keyspace.active.size),
    walk: (batchSize) =>
      Effect.sync(() => {
        // A snapshot, as SSCAN promises every member present for the whole walk and nothing about later ones.
        const ids = Array.from(keyspace.active)
        let offset = 0
        return atNow((now) => {
          if (offset >= ids.length) return undefined
          const batch = ids.slice(offset, offset + batchSize)
          offset += batchSize
          return batch.map((id): Row => {
            const fields = keyspace.live(id, now)?.fields
            return { id, state: fields?.get("state") ?? null, createdAt: fields?.get("created_at") ?? null }
          })
        })
      }),
    decide: (candidates, at, terminalTtlSeconds, fence) =>
      Effect.flatMap(fence === undefined ? Effect.succeed(true) : fence.stillHeld, (held) =>
        held
          ? atNow((now): DecideResult => ({
            _tag: "ok",
            decisions: candidates.map(({ id, seen }) => {
              const entry = keyspace.live(id, now)
              if (entry === undefined) {
                keyspace.active.delete(id)
                return Decision.removedMissing
              }
              if (seen === "") return entry.fields.has("created_at") ? Decision.skipped : Decision.unreadable
              if (isTerminalState(entry.fields.get("state")) || entry.fields.get("created_at") !== seen) {
                return Decision.skipped
              }
              keyspace.hset(id, now, ["state", "ERRORED", "error", "orphaned", "updated_at", at])
              keyspace.expire(id, now + terminalTtlSeconds * 1000)
              keyspace.active.delete(id)
              return Decision.orphaned
            })
          }))
          : Effect.succeed<DecideResult>({ _tag: "lease_lost", holder: null, epoch: null }))
  }
}
