/**
 * The TraceStore backend in process memory: a twin of the Redis keyspace (hashes with TTLs, the active set) whose
 * TTLs follow `Clock`. Each step runs synchronously after reading the clock, so it is atomic as a Lua script is.
 * Both are bounded (`expiringMap.ts`): expired hashes are purged on later writes, past `maxTraces` the least recently
 * written hash goes (its id, if still active, stays for the sweep to remove as Redis would leave it), and the active
 * set drops its first added id past the same cap (that hash keeps its failsafe TTL).
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { isTerminal } from "../TraceRecord.js"
import type { Backend, CreateResult, DecideResult, FinishResult, Refused, Row } from "./backend.js"
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

const isTerminalState = (state: string | undefined) => state !== undefined && isTerminal(state)

/** The value of a finished request's token, as the scripts write it. */
const doneToken = "done"

/** Clears the tokens of the opening's requests, as the scripts' `forget` does. */
const forget = (entry: Entry): void => {
  for (const field of entry.fields.keys()) if (field.startsWith("req:")) entry.fields.delete(field)
}

/** A count field as Lua's `tonumber(x) or fallback` reads it. */
const num = (raw: string | undefined, fallback: number): number =>
  raw !== undefined && /^\s*-?\d+(?:\.\d+)?\s*$/.test(raw) ? Number(raw) : fallback

/** The refusals of a write after `create`, as the scripts decide them. */
const refusal = (entry: Entry | undefined, opening: number | undefined): Refused | undefined => {
  if (entry === undefined) return { _tag: "missing" }
  const current = entry.fields.get("opening") ?? "1"
  if (opening !== undefined && String(opening) !== current) return { _tag: "stale", opening: current }
  const state = entry.fields.get("state")
  if (isTerminalState(state)) return { _tag: "terminal", state: state! }
  return undefined
}

/** The backend over a keyspace. */
export const makeMemoryBackend = (keyspace: MemoryKeyspace): Backend => {
  const atNow = <A>(f: (now: number) => A): Effect.Effect<A> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => f(now)))

  return {
    kind: "memory",
    address: undefined,
    ping: Effect.void,
    create: (id, state, at, metadata, ttlSeconds, request) =>
      atNow((now): CreateResult => {
        const current = keyspace.live(id, now)
        const opening = num(current?.fields.get("opening"), 0)
        const token = request === undefined ? undefined : `req:${request}`
        const seen = token === undefined ? undefined : current?.fields.get(token)
        if (seen !== undefined && (seen === doneToken || !isTerminalState(current?.fields.get("state")))) {
          return { opening: Math.max(opening, 1), kind: "duplicate", inFlight: num(current?.fields.get("in_flight"), 1) }
        }
        let result: CreateResult
        if (current?.fields.get("state") === undefined) {
          result = { opening: opening + 1, kind: "new", inFlight: 1 }
          keyspace.hset(id, now, ["created_at", at, "errors", "0"])
        } else if (isTerminalState(current.fields.get("state"))) {
          result = { opening: Math.max(opening, 1) + 1, kind: "reopened", inFlight: 1 }
          forget(current)
          current.fields.delete("error")
          keyspace.hset(id, now, ["created_at", at, "errors", "0"])
        } else {
          const inFlight = num(current.fields.get("in_flight"), 1) + 1
          result = { opening: Math.max(opening, 1), kind: "joined", inFlight }
        }
        keyspace.hset(id, now, [
          "state",
          state,
          "updated_at",
          at,
          "opening",
          String(result.opening),
          "in_flight",
          String(result.inFlight),
          "requests",
          String(num(current?.fields.get("requests"), 0) + 1),
          ...(token === undefined ? [] : [token, String(result.opening)]),
          ...metadata
        ])
        keyspace.expire(id, now + ttlSeconds * 1000)
        keyspace.active.add(id)
        return result
      }),
    transition: (id, state, at, opening) =>
      atNow((now) => {
        const entry = keyspace.live(id, now)
        const refused = refusal(entry, opening)
        if (refused !== undefined) return refused
        keyspace.hset(id, now, ["state", state, "updated_at", at])
        return { _tag: "ok" } as const
      }),
    finish: (id, state, at, opening, fields, terminalTtlSeconds, request) =>
      atNow((now): FinishResult => {
        const entry = keyspace.live(id, now)
        const refused = refusal(entry, opening)
        if (refused !== undefined) return refused
        if (request !== undefined) {
          const seen = entry!.fields.get(`req:${request}`)
          if (seen === undefined || seen === doneToken) return { _tag: "duplicate" }
          keyspace.hset(id, now, [`req:${request}`, doneToken])
        }
        const inFlight = Math.max(num(entry!.fields.get("in_flight"), 1) - 1, 0)
        const errors = num(entry!.fields.get("errors"), 0) + (state === "ERRORED" ? 1 : 0)
        keyspace.hset(id, now, fields)
        if (inFlight > 0) {
          keyspace.hset(id, now, ["updated_at", at, "in_flight", String(inFlight), "errors", String(errors)])
          return { _tag: "pending", inFlight }
        }
        const final = errors > 0 ? "ERRORED" : "COMPLETED"
        keyspace.hset(id, now, ["state", final, "updated_at", at, "in_flight", "0", "errors", String(errors)])
        keyspace.expire(id, now + terminalTtlSeconds * 1000)
        keyspace.active.delete(id)
        return { _tag: "ended", state: final }
      }),
    annotate: (id, fields, reserved) =>
      atNow((now) => {
        const entry = keyspace.live(id, now)
        if (entry === undefined) return false
        for (let i = 0; i + 1 < fields.length; i += 2) {
          const name = fields[i]!
          if (!reserved.includes(name) && !name.startsWith("req:")) entry.fields.set(name, fields[i + 1]!)
        }
        return true
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
    shards: 1,
    raiseFence: () => Effect.succeed({ _tag: "ok" }),
    walk: (_shard, batchSize) =>
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
            return {
              id,
              state: fields?.get("state") ?? null,
              createdAt: fields?.get("created_at") ?? null,
              updatedAt: fields?.get("updated_at") ?? null
            }
          })
        })
      }),
    decide: (_shard, candidates, at, terminalTtlSeconds, fence) =>
      Effect.flatMap(fence === undefined ? Effect.succeed(true) : fence.stillHeld, (held) =>
        held
          ? atNow((now): DecideResult => ({
            _tag: "ok",
            decisions: candidates.map(({ id, kind, seen }) => {
              const entry = keyspace.live(id, now)
              if (entry === undefined) {
                keyspace.active.delete(id)
                return Decision.removedMissing
              }
              if (kind === "gone") return entry.fields.has("created_at") ? Decision.skipped : Decision.unreadable
              const terminal = isTerminalState(entry.fields.get("state"))
              if (kind === "terminal") {
                if (!terminal) return Decision.skipped
                keyspace.active.delete(id)
                return Decision.removedTerminal
              }
              const activity = entry.fields.get("updated_at") ?? entry.fields.get("created_at")
              if (terminal || activity !== seen) return Decision.skipped
              forget(entry)
              keyspace.hset(id, now, ["state", "ERRORED", "error", "orphaned", "updated_at", at, "in_flight", "0"])
              keyspace.expire(id, now + terminalTtlSeconds * 1000)
              keyspace.active.delete(id)
              return Decision.orphaned
            })
          }))
          : Effect.succeed<DecideResult>({ _tag: "lease_lost", holder: null, epoch: null }))
  }
}
