/**
 * Where shared breakers keep their state: one record per breaker name that every replica reads and changes through
 * the operations below, each one atomic step timed by the store's own clock (so replicas' clocks may disagree).
 * `CircuitBreaker.layerShared` runs on a store; `layerMemory` keeps the records in this process (several services
 * over one instance act as replicas, under `TestClock`), and `@sg/resilience/CircuitBreaker/Redis` keeps them in
 * Redis.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Policy } from "./BreakerPolicy.js"
import type { Outcome } from "./internal/machine.js"
import * as Record from "./internal/record.js"
import { evicted } from "./internal/shell.js"

/** A shared breaker's state. */
export const SharedState = Schema.Literal("closed", "open", "half_open", "isolated")

/** A shared breaker's state. */
export type SharedState = typeof SharedState.Type

/** One breaker's record as a reader sees it. Times are the store's epoch milliseconds. */
export interface Snapshot {
  readonly state: SharedState
  /** Changes with every transition (and isolate, reset) and never decreases, even after the record expired. */
  readonly generation: number
  /** Changes with every write and never decreases: of two snapshots, the one with the higher version is newer. */
  readonly version: number
  /** Counted failures: consecutive or in the window while closed, since the breaker last closed otherwise. */
  readonly failures: number
  /** When it last opened; 0 while closed. */
  readonly openedAt: number
  /** While open: the end of the cool-down. */
  readonly until: number
  /** When the state last changed. */
  readonly changedAt: number
  /** Failed trials since the breaker last closed. */
  readonly reopenings: number
  /** Trials in flight (half-open). */
  readonly trials: number
  /** When the last trial token in flight expires unless its holder renews it; 0 with none. */
  readonly trialsUntil: number
  /** The store's clock when the snapshot was taken. */
  readonly now: number
}

/** The answer to a caller that asked for a trial slot. */
export interface Acquisition {
  /**
   * `granted`: the caller holds a trial slot under its token; `closed`: the breaker is closed, so the call is an
   * ordinary one; `rejected`: still open, isolated, or every trial slot is taken.
   */
  readonly verdict: "granted" | "closed" | "rejected"
  readonly snapshot: Snapshot
}

/** What a subscriber hears: a breaker's record changed, or the store is reachable again (read what you hold). */
export type Change =
  | { readonly _tag: "Changed"; readonly name: string; readonly snapshot: Snapshot }
  | { readonly _tag: "Reconnected" }

/** The store could not be reached or did not answer as it should; the breaker falls back to its local state. */
export class BreakerStoreError extends Schema.TaggedError<BreakerStoreError>("@sg/resilience/BreakerStoreError")(
  "BreakerStoreError",
  {
    message: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {}

/** The operations of a breaker store. Every one is atomic; each takes the caller's policy for the breaker. */
export interface Service {
  /** The record now (closed, generation 0, version 0 when there is none). */
  readonly read: (name: string, policy: Policy) => Effect.Effect<Snapshot, BreakerStoreError>
  /** A counted failure of a call admitted while closed under `generation`, after `before` successes not yet told. */
  readonly failure: (
    name: string,
    policy: Policy,
    generation: number,
    before: number
  ) => Effect.Effect<Snapshot, BreakerStoreError>
  /** `count` successes of calls admitted while closed under `generation`. */
  readonly successes: (
    name: string,
    policy: Policy,
    generation: number,
    count: number
  ) => Effect.Effect<Snapshot, BreakerStoreError>
  /** Asks for a trial slot under `token`, held for `ttlMs` unless renewed. */
  readonly acquire: (
    name: string,
    policy: Policy,
    token: string,
    ttlMs: number
  ) => Effect.Effect<Acquisition, BreakerStoreError>
  /** Extends the trial held under `token`; false when it is no longer held. */
  readonly renew: (
    name: string,
    generation: number,
    token: string,
    ttlMs: number
  ) => Effect.Effect<boolean, BreakerStoreError>
  /** The trial under `token` ended with `outcome` (`ignored`: it gives its slot back). */
  readonly settle: (
    name: string,
    policy: Policy,
    generation: number,
    token: string,
    outcome: Outcome
  ) => Effect.Effect<Snapshot, BreakerStoreError>
  /** Holds the breaker open, for every replica, until `reset`. */
  readonly isolate: (name: string, policy: Policy) => Effect.Effect<Snapshot, BreakerStoreError>
  /** Holds it open at least `millis` from now, unless isolated or open for longer already. */
  readonly openFor: (name: string, policy: Policy, millis: number) => Effect.Effect<Snapshot, BreakerStoreError>
  /** Closes the breaker for every replica and forgets its history. */
  readonly reset: (name: string, policy: Policy) => Effect.Effect<Snapshot, BreakerStoreError>
  /** Every change any replica makes, from now until the scope closes. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Change>, never, Scope.Scope>
  /** Whether the store is reachable right now, as far as this process knows (no round trip). */
  readonly isAvailable: () => boolean
}

/** The store shared breakers keep their state in. */
export class BreakerStore extends Context.Tag("@sg/resilience/BreakerStore")<BreakerStore, Service>() {}

/** Options of the memory store. */
export interface MemoryOptions {
  /** How long a record outlives its last deadline with nothing written to it; defaults to 1 hour. */
  readonly idleMs?: number | undefined
  /** At most this many records; past it the oldest goes. Defaults to 100,000. */
  readonly maxRecords?: number | undefined
}

/** A memory store, and a switch that makes it unreachable (for tests of the fallback). */
export interface MemoryStore extends Service {
  /** While false, every operation fails and `isAvailable` says so; turning it back on tells subscribers. */
  readonly setAvailable: (available: boolean) => Effect.Effect<void>
}

/** Records in this process' memory, timed by `Clock`. Every service built over one instance shares them. */
export const makeMemory = (options?: MemoryOptions): Effect.Effect<MemoryStore> =>
  Effect.gen(function*() {
    const idleMs = options?.idleMs ?? 3_600_000
    const maxRecords = options?.maxRecords ?? 100_000
    const hub = yield* PubSub.unbounded<Change>()
    const records = new Map<string, { readonly record: Record.Record; expiresAt: number }>()
    let available = true

    const recordAt = (name: string, nowMs: number): Record.Record => {
      const held = records.get(name)
      if (held !== undefined && held.expiresAt > nowMs) return held.record
      if (held !== undefined) records.delete(name)
      return Record.empty()
    }

    const store = (name: string, record: Record.Record, now: Record.Now): void => {
      Record.saved(record, now)
      const ttl = Record.ttlOf(record, now, idleMs)
      const expiresAt = ttl === undefined ? Infinity : now.ms + ttl
      const held = records.get(name)
      if (held !== undefined) {
        held.expiresAt = expiresAt
        return
      }
      if (records.size >= maxRecords) {
        for (const [key, entry] of records) if (entry.expiresAt <= now.ms) records.delete(key)
        if (records.size >= maxRecords) {
          const oldest = records.keys().next().value
          if (oldest !== undefined) records.delete(oldest)
          evicted("capacity")
        }
      }
      records.set(name, { record, expiresAt })
    }

    const unavailable = Effect.fail(new BreakerStoreError({ message: "the memory breaker store is switched off" }))

    /** Runs `f` on the record of `name`, stores and publishes what it changed, and answers its snapshot. */
    const operate = <A>(
      name: string,
      policy: Policy,
      f: (record: Record.Record, now: Record.Now) => { readonly effect: Record.Effect; readonly value: A }
    ): Effect.Effect<{ readonly value: A; readonly snapshot: Snapshot }, BreakerStoreError> =>
      Effect.flatMap(Clock.currentTimeMillis, (ms) => {
        if (!available) return unavailable
        const now = { ms, us: ms * 1000 }
        const record = recordAt(name, ms)
        const { effect, value } = f(record, now)
        if (effect !== "none") store(name, record, now)
        const snapshot = Record.snapshot(record, policy, now)
        if (effect === "publish") hub.unsafeOffer({ _tag: "Changed", name, snapshot })
        return Effect.succeed({ value, snapshot })
      })

    const plain = (name: string, policy: Policy, f: (record: Record.Record, now: Record.Now) => Record.Effect) =>
      Effect.map(
        operate(name, policy, (record, now) => ({ effect: f(record, now), value: undefined })),
        (r) => r.snapshot
      )

    return {
      read: (name, policy) => plain(name, policy, () => "none"),
      failure: (name, policy, generation, before) =>
        plain(name, policy, (record, now) => Record.failure(record, policy, now, generation, before)),
      successes: (name, policy, generation, count) =>
        plain(name, policy, (record, now) => Record.successes(record, policy, now, generation, count)),
      acquire: (name, policy, token, ttlMs) =>
        Effect.map(
          operate(name, policy, (record, now) => {
            const { effect, verdict } = Record.acquire(record, policy, now, token, ttlMs)
            return { effect, value: verdict }
          }),
          ({ snapshot, value }) => ({ verdict: value, snapshot })
        ),
      renew: (name, generation, token, ttlMs) =>
        Effect.flatMap(Clock.currentTimeMillis, (ms) => {
          if (!available) return unavailable
          const now = { ms, us: ms * 1000 }
          const record = recordAt(name, ms)
          const renewed = Record.renew(record, now, generation, token, ttlMs)
          if (renewed) store(name, record, now)
          return Effect.succeed(renewed)
        }),
      settle: (name, policy, generation, token, outcome) =>
        plain(name, policy, (record, now) => Record.settle(record, policy, now, generation, token, outcome)),
      isolate: (name, policy) => plain(name, policy, (record, now) => Record.isolate(record, policy, now)),
      openFor: (name, policy, millis) =>
        plain(name, policy, (record, now) => Record.openFor(record, policy, now, millis)),
      reset: (name, policy) => plain(name, policy, (record, now) => Record.reset(record, policy, now)),
      subscribe: PubSub.subscribe(hub),
      isAvailable: () => available,
      setAvailable: (on) =>
        Effect.sync(() => {
          const was = available
          available = on
          if (on && !was) hub.unsafeOffer({ _tag: "Reconnected" })
        })
    }
  })

/** A memory store for this process (see `makeMemory`). */
export const layerMemory = (options?: MemoryOptions): Layer.Layer<BreakerStore> =>
  Layer.effect(BreakerStore, makeMemory(options))
