/**
 * The TraceStore backend in process memory: a twin of the Redis keyspace (hashes with TTLs, the active set) whose
 * TTLs follow `Clock`. Each step runs synchronously after reading the clock, so it is atomic as a Lua script is.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { Backend, DecideResult, Row, SetStateResult } from "./backend.js"
import { Decision } from "./backend.js"

interface Entry {
  readonly fields: Map<string, string>
  expiresAt: number | undefined
}

/** The twin keyspace: hashes by trace id, and the active set. Tests may write raw entries into it. */
export class MemoryKeyspace {
  readonly hashes = new Map<string, Entry>()
  readonly active = new Set<string>()

  /** The live hash of an id at `now`; an expired one is deleted, as Redis does lazily. */
  live(id: string, now: number): Entry | undefined {
    const entry = this.hashes.get(id)
    if (entry === undefined) return undefined
    if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
      this.hashes.delete(id)
      return undefined
    }
    return entry
  }

  /** HSET of field/value pairs, creating the hash when needed. */
  hset(id: string, now: number, pairs: ReadonlyArray<string>): Entry {
    const entry = this.live(id, now) ?? { fields: new Map(), expiresAt: undefined }
    for (let i = 0; i + 1 < pairs.length; i += 2) entry.fields.set(pairs[i]!, pairs[i + 1]!)
    this.hashes.set(id, entry)
    return entry
  }
}

const isTerminalState = (state: string | undefined) => state === "COMPLETED" || state === "ERRORED"

/** The backend over a keyspace. */
export const makeMemoryBackend = (keyspace: MemoryKeyspace): Backend => {
  const atNow = <A>(f: (now: number) => A): Effect.Effect<A> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => f(now)))

  return {
    kind: "memory",
    ping: Effect.void,
    create: (id, fields, ttlSeconds) =>
      atNow((now) => {
        keyspace.hset(id, now, fields).expiresAt = now + ttlSeconds * 1000
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
          entry.expiresAt = now + terminalTtlSeconds * 1000
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
      const expiresAt = keyspace.live(id, now)?.expiresAt
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
              entry.expiresAt = now + terminalTtlSeconds * 1000
              keyspace.active.delete(id)
              return Decision.orphaned
            })
          }))
          : Effect.succeed<DecideResult>({ _tag: "lease_lost", holder: null, epoch: null }))
  }
}
