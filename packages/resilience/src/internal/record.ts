/**
 * The shared record of one breaker and the store operations on it, as plain functions over a mutable record: the
 * memory store runs these, and the Redis store's Lua scripts (`CircuitBreaker/Redis.ts`) are a line-by-line
 * translation, held to the same conformance suite.
 *
 * - `generation` changes with every transition (and isolate, reset). A record that is created takes the store's
 *   clock in microseconds (at least 1) as its first generation (`born`), so generations keep growing when an idle
 *   record expired or the store lost its data. A report names the generation its call was admitted under; one from
 *   another generation changes nothing, except that a record still in the generation it was born in accepts reports
 *   from before it existed (the reporter saw no record: the same closed episode).
 * - `version` changes with every write, also growing across expiry: a replica keeps the snapshot with the highest.
 * - Trials are tokens with an expiry; the holder renews its token while its trial runs, and a token not renewed
 *   (its holder died) expires, which hands its slot to another caller.
 * - A trip never brings a deadline forward: the end of the cool-down is the later of the one set and the new one.
 */
import type { Acquisition, SharedState, Snapshot } from "../BreakerStore.js"
import { openDuration, type Outcome, type Policy } from "./machine.js"

/** The store's clock: milliseconds for deadlines, microseconds for generations and versions. */
export interface Now {
  readonly ms: number
  readonly us: number
}

/** One breaker's shared record. */
export interface Record {
  exists: boolean
  state: SharedState
  generation: number
  born: number
  version: number
  /** Consecutive counted failures while closed (consecutive-failures policy). */
  consecutive: number
  /** The outcomes of the last counted calls while closed, 1 a failure (failure-rate policy); a ring. */
  window: Array<number>
  windowNext: number
  windowCount: number
  windowFailures: number
  /** Counted failures since the breaker last closed (open, half-open, isolated). */
  failures: number
  openedAt: number
  until: number
  changedAt: number
  reopenings: number
  succeeded: number
  /** Live trial tokens and their expiry (store milliseconds). */
  trials: Map<string, number>
}

/** What an operation did to the record: nothing, a write, or a write other replicas should hear about. */
export type Effect = "none" | "write" | "publish"

/** No record: closed, generation and version 0. */
export const empty = (): Record => ({
  exists: false,
  state: "closed",
  generation: 0,
  born: 0,
  version: 0,
  consecutive: 0,
  window: [],
  windowNext: 0,
  windowCount: 0,
  windowFailures: 0,
  failures: 0,
  openedAt: 0,
  until: 0,
  changedAt: 0,
  reopenings: 0,
  succeeded: 0,
  trials: new Map()
})

const purge = (r: Record, now: Now): void => {
  for (const [token, expiry] of r.trials) if (expiry <= now.ms) r.trials.delete(token)
}

const create = (r: Record, now: Now): void => {
  if (r.exists) return
  r.exists = true
  r.generation = Math.max(now.us, 1)
  r.born = r.generation
}

const bump = (r: Record, now: Now): void => {
  r.generation = Math.max(r.generation + 1, now.us)
}

/** Whether a report admitted under `generation` belongs to the record's current generation. */
const current = (r: Record, generation: number): boolean =>
  !r.exists || generation === r.generation || (r.generation === r.born && generation < r.born)

const clearWindow = (r: Record, policy: Policy): void => {
  r.consecutive = 0
  r.window = policy.trip._tag === "FailureRate" ? new Array<number>(policy.trip.window).fill(0) : []
  r.windowNext = 0
  r.windowCount = 0
  r.windowFailures = 0
}

const ensureWindow = (r: Record, policy: Policy): void => {
  if (policy.trip._tag === "FailureRate" && r.window.length !== policy.trip.window) clearWindow(r, policy)
}

const push = (r: Record, bit: number, n: number): void => {
  const size = r.window.length
  for (let i = 0; i < Math.min(n, size); i++) {
    if (r.windowCount === size) r.windowFailures -= r.window[r.windowNext]!
    else r.windowCount++
    r.window[r.windowNext] = bit
    r.windowFailures += bit
    r.windowNext = (r.windowNext + 1) % size
  }
}

/** Counted failures: consecutive or in the window while closed, since the last close otherwise. */
export const failuresOf = (r: Record, policy: Policy): number =>
  r.state !== "closed" ? r.failures : policy.trip._tag === "FailureRate" ? r.windowFailures : r.consecutive

const open = (r: Record, policy: Policy, now: Now, failures: number, reopenings: number): void => {
  r.state = "open"
  bump(r, now)
  r.openedAt = now.ms
  r.until = Math.max(r.until, now.ms + Math.floor(openDuration(policy, reopenings)))
  r.failures = failures
  r.reopenings = reopenings
  r.changedAt = now.ms
  r.succeeded = 0
  r.trials.clear()
  clearWindow(r, policy)
}

const close = (r: Record, policy: Policy, now: Now): void => {
  r.state = "closed"
  bump(r, now)
  r.failures = 0
  r.reopenings = 0
  r.succeeded = 0
  r.openedAt = 0
  r.until = 0
  r.changedAt = now.ms
  r.trials.clear()
  clearWindow(r, policy)
}

/** Marks a write: the version grows. */
export const saved = (r: Record, now: Now): void => {
  r.version = Math.max(r.version + 1, now.us)
  r.exists = true
}

/** How long the record must outlive `now`: the idle timeout past its last deadline; `undefined` if isolated. */
export const ttlOf = (r: Record, now: Now, idleMs: number): number | undefined => {
  if (r.state === "isolated") return undefined
  let last = r.until
  for (const expiry of r.trials.values()) last = Math.max(last, expiry)
  return idleMs + Math.max(0, last - now.ms)
}

/** The record as a reader sees it at `now`. */
export const snapshot = (r: Record, policy: Policy, now: Now): Snapshot => {
  let trials = 0
  let trialsUntil = 0
  for (const expiry of r.trials.values()) {
    if (expiry > now.ms) {
      trials++
      trialsUntil = Math.max(trialsUntil, expiry)
    }
  }
  return {
    state: r.state,
    generation: r.generation,
    version: r.version,
    failures: failuresOf(r, policy),
    openedAt: r.openedAt,
    until: r.until,
    changedAt: r.changedAt,
    reopenings: r.reopenings,
    trials,
    trialsUntil,
    now: now.ms
  }
}

/** A counted failure of a call admitted while closed under `generation`, after `before` successes not yet told. */
export const failure = (r: Record, policy: Policy, now: Now, generation: number, before: number): Effect => {
  purge(r, now)
  if (r.state !== "closed" || !current(r, generation)) return "none"
  create(r, now)
  const trip = policy.trip
  if (trip._tag === "ConsecutiveFailures") {
    if (before > 0) r.consecutive = 0
    r.consecutive++
    if (r.consecutive >= trip.threshold) open(r, policy, now, r.consecutive, 0)
  } else {
    ensureWindow(r, policy)
    push(r, 0, before)
    push(r, 1, 1)
    if (r.windowCount >= trip.minimumCalls && r.windowFailures >= trip.threshold * r.windowCount) {
      open(r, policy, now, r.windowFailures, 0)
    }
  }
  return "publish"
}

/** `count` successes of calls admitted while closed under `generation`. */
export const successes = (r: Record, policy: Policy, now: Now, generation: number, count: number): Effect => {
  purge(r, now)
  if (r.state !== "closed" || count <= 0 || !current(r, generation)) return "none"
  if (policy.trip._tag === "ConsecutiveFailures") {
    if (r.consecutive === 0) return "none"
    r.consecutive = 0
    return "publish"
  }
  create(r, now)
  ensureWindow(r, policy)
  const before = r.windowFailures
  push(r, 0, count)
  return r.windowFailures === before ? "write" : "publish"
}

/** A caller past the deadline asks for a trial slot under `token`. */
export const acquire = (
  r: Record,
  policy: Policy,
  now: Now,
  token: string,
  ttlMs: number
): { readonly effect: Effect; readonly verdict: Acquisition["verdict"] } => {
  purge(r, now)
  switch (r.state) {
    case "closed":
      return { effect: "none", verdict: "closed" }
    case "isolated":
      return { effect: "none", verdict: "rejected" }
    case "open":
      if (now.ms < r.until) return { effect: "none", verdict: "rejected" }
      r.state = "half_open"
      bump(r, now)
      r.changedAt = now.ms
      r.succeeded = 0
      r.trials.clear()
      r.trials.set(token, now.ms + ttlMs)
      return { effect: "publish", verdict: "granted" }
    case "half_open":
      if (!r.trials.has(token) && r.trials.size >= policy.halfOpenTrials) return { effect: "none", verdict: "rejected" }
      r.trials.set(token, now.ms + ttlMs)
      return { effect: "publish", verdict: "granted" }
  }
}

/** The holder of `token` extends its trial; false when the token is gone (expired, or the breaker moved on). */
export const renew = (r: Record, now: Now, generation: number, token: string, ttlMs: number): boolean => {
  purge(r, now)
  if (r.state !== "half_open" || r.generation !== generation || !r.trials.has(token)) return false
  r.trials.set(token, now.ms + ttlMs)
  return true
}

/** The trial under `token` ended with `outcome`: one failure reopens (for longer), enough successes close. */
export const settle = (
  r: Record,
  policy: Policy,
  now: Now,
  generation: number,
  token: string,
  outcome: Outcome
): Effect => {
  purge(r, now)
  if (r.state !== "half_open" || r.generation !== generation || !r.trials.has(token)) return "none"
  r.trials.delete(token)
  if (outcome === "failure") {
    open(r, policy, now, r.failures + 1, r.reopenings + 1)
  } else if (outcome === "success") {
    r.succeeded++
    if (r.succeeded >= policy.halfOpenTrials) close(r, policy, now)
  }
  return "publish"
}

/** Holds the breaker open until `reset`. */
export const isolate = (r: Record, policy: Policy, now: Now): Effect => {
  purge(r, now)
  create(r, now)
  r.failures = failuresOf(r, policy)
  r.state = "isolated"
  bump(r, now)
  r.openedAt = now.ms
  r.until = 0
  r.reopenings = 0
  r.succeeded = 0
  r.changedAt = now.ms
  r.trials.clear()
  clearWindow(r, policy)
  return "publish"
}

/**
 * Holds the breaker open at least `millis` from now (an upstream asked for that long: a 429's `Retry-After`); an
 * isolated breaker, or one already open for longer, is left as it is. Then a trial decides, as after any cool-down.
 */
export const openFor = (r: Record, policy: Policy, now: Now, millis: number): Effect => {
  purge(r, now)
  create(r, now)
  const until = now.ms + Math.floor(millis)
  if (r.state === "isolated" || (r.state === "open" && r.until >= until)) return "none"
  const wasClosed = r.state === "closed"
  r.failures = failuresOf(r, policy)
  r.state = "open"
  bump(r, now)
  if (wasClosed) r.openedAt = now.ms
  r.until = until
  r.changedAt = now.ms
  r.succeeded = 0
  r.trials.clear()
  clearWindow(r, policy)
  return "publish"
}

/** Closes the breaker and forgets its history. */
export const reset = (r: Record, policy: Policy, now: Now): Effect => {
  purge(r, now)
  create(r, now)
  close(r, policy, now)
  return "publish"
}
