/**
 * Where leases live: the four operations the election needs (try to acquire, renew, release, read), one
 * implementation in memory here and one over Redis in `@sg/leader/LeaseStore/Redis`, so one election algorithm and
 * one conformance suite serve both.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Memory from "./internal/memoryStore.js"
import type { LeaseStoreError } from "./LeaderElectionError.js"

/** What `tryAcquire` found: whether the caller holds the lease now, the epoch, and who holds it. */
export interface Acquisition {
  readonly acquired: boolean
  /** The caller's epoch when `acquired`; the store's current epoch otherwise. */
  readonly epoch: number
  /** The holder's token (the caller's when `acquired`). */
  readonly holder: string
}

/** A lease as the store holds it now. */
export interface LeaseRecord {
  /** The holder's token; `undefined` when nobody holds the lease. */
  readonly holder: string | undefined
  /** The lease's current fencing epoch (0 before its first acquisition). */
  readonly epoch: number
}

/** The lease operations an election runs on. Each is one atomic step in the store. */
export interface Service {
  /**
   * Takes the lease for `ttlMillis` when nobody holds it, with an epoch larger than the store's and than `floor`
   * (the largest epoch the caller has seen, so epochs keep growing even if the store lost its counter). When the
   * caller's token already holds it (an earlier reply was lost), extends it and keeps its epoch.
   */
  readonly tryAcquire: (
    name: string,
    token: string,
    ttlMillis: number,
    floor: number
  ) => Effect.Effect<Acquisition, LeaseStoreError>
  /** Extends the lease by `ttlMillis` if `token` still holds it at `epoch`; false (and no change) otherwise. */
  readonly renew: (
    name: string,
    token: string,
    epoch: number,
    ttlMillis: number
  ) => Effect.Effect<boolean, LeaseStoreError>
  /** Frees the lease if `token` holds it; false (and no change) otherwise. */
  readonly release: (name: string, token: string) => Effect.Effect<boolean, LeaseStoreError>
  /** The lease's holder and epoch now. */
  readonly read: (name: string) => Effect.Effect<LeaseRecord, LeaseStoreError>
}

/** The lease store an election runs on. */
export class LeaseStore extends Context.Tag("@sg/leader/LeaseStore")<LeaseStore, Service>() {}

/** Leases in one process' memory, expiring by `Clock` (so `TestClock` drives them). Every elector built on one
 * instance of this layer shares its leases. */
export const layerMemory: Layer.Layer<LeaseStore> = Layer.effect(LeaseStore, Memory.makeMemory)

/** A fresh memory lease store (see `layerMemory`). */
export const makeMemory: Effect.Effect<Service> = Memory.makeMemory
