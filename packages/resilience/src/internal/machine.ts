/**
 * The breaker's state machine, with no Effect, clock or I/O in it: each function takes a state, the policy and the
 * time in milliseconds, and returns the next state. The service is a thin shell that holds the state and acts on
 * what changed (metrics, the change stream, logs).
 *
 * Every state carries a generation that changes whenever the state's kind does (and on isolate/reset). A call
 * remembers the generation it was admitted under; an outcome from an older generation changes nothing, so only
 * calls admitted while half-open (the trials) decide a half-open breaker, and a slow call that fails after the
 * breaker opened cannot reopen it again.
 */

/** What makes a closed breaker open. */
export type Trip =
  | { readonly _tag: "ConsecutiveFailures"; readonly threshold: number }
  | {
    readonly _tag: "FailureRate"
    readonly threshold: number
    readonly window: number
    readonly minimumCalls: number
  }

/** A validated policy, durations in milliseconds. */
export interface Policy {
  readonly trip: Trip
  readonly cooldownMs: number
  readonly halfOpenTrials: number
  /** Growth of the open duration on each failed trial; `undefined` keeps it at `cooldownMs`. */
  readonly backoff: { readonly factor: number; readonly maxMs: number } | undefined
}

/**
 * The outcomes of the last `size` counted calls. Updated in place: copying it on every call would cost O(size), and
 * a window belongs to one closed episode (a new one starts with every close or reset), so no old state reads it.
 */
export class Window {
  private readonly outcomes: Uint8Array
  private next = 0
  count = 0
  failures = 0

  constructor(readonly size: number) {
    this.outcomes = new Uint8Array(size)
  }

  record(failed: boolean): void {
    const bit = failed ? 1 : 0
    if (this.count === this.size) this.failures -= this.outcomes[this.next]!
    else this.count++
    this.outcomes[this.next] = bit
    this.failures += bit
    this.next = this.next + 1 === this.size ? 0 : this.next + 1
  }
}

/** Closed: calls pass; counted failures accumulate. */
export interface Closed {
  readonly _tag: "Closed"
  readonly generation: number
  /** Consecutive counted failures (consecutive-failures policy). */
  readonly consecutive: number
  /** Recent outcomes (failure-rate policy). */
  readonly window: Window | undefined
}

/** Open: calls are rejected until `until` (never, when isolated). */
export interface Open {
  readonly _tag: "Open"
  readonly generation: number
  readonly openedAt: number
  readonly until: number
  readonly isolated: boolean
  /** Counted failures since the breaker last closed. */
  readonly failures: number
  /** Failed trials since the breaker last closed: the exponent of the open duration's growth. */
  readonly reopenings: number
}

/** Half-open: up to `halfOpenTrials` trial calls pass; the first failed one reopens, enough successful ones close. */
export interface HalfOpen {
  readonly _tag: "HalfOpen"
  readonly generation: number
  readonly openedAt: number
  readonly failures: number
  readonly reopenings: number
  /** Trials admitted and not released: in flight or succeeded. */
  readonly admitted: number
  readonly succeeded: number
}

/** A breaker's state. */
export type State = Closed | Open | HalfOpen

/** How a call ended, as far as the breaker is concerned. */
export type Outcome = "success" | "failure" | "ignored"

/** The closed state a new breaker starts in. */
export const initial = (policy: Policy, generation = 0): Closed => ({
  _tag: "Closed",
  generation,
  consecutive: 0,
  window: policy.trip._tag === "FailureRate" ? new Window(policy.trip.window) : undefined
})

/** How long the breaker stays open after `reopenings` failed trials. */
export const openDuration = (policy: Policy, reopenings: number): number =>
  policy.backoff === undefined || reopenings === 0
    ? policy.cooldownMs
    : Math.min(policy.cooldownMs * Math.pow(policy.backoff.factor, reopenings), policy.backoff.maxMs)

const open = (
  from: State,
  policy: Policy,
  now: number,
  failures: number,
  reopenings: number
): Open => ({
  _tag: "Open",
  generation: from.generation + 1,
  openedAt: now,
  until: now + openDuration(policy, reopenings),
  isolated: false,
  failures,
  reopenings
})

/**
 * A call arrives at `now`. Returns the state after admitting it, or `undefined` when it is rejected (the state is
 * then unchanged: see `retryAfter`). An open breaker whose cool-down has passed becomes half-open here, lazily, so
 * an idle open breaker needs no timer.
 */
export const admit = (state: State, policy: Policy, now: number): State | undefined => {
  switch (state._tag) {
    case "Closed":
      return state
    case "Open":
      if (state.isolated || now < state.until) return undefined
      return {
        _tag: "HalfOpen",
        generation: state.generation + 1,
        openedAt: state.openedAt,
        failures: state.failures,
        reopenings: state.reopenings,
        admitted: 1,
        succeeded: 0
      }
    case "HalfOpen":
      return state.admitted < policy.halfOpenTrials ? { ...state, admitted: state.admitted + 1 } : undefined
  }
}

/** How long a rejected caller should wait: the rest of the cool-down, 0 while trials run, `Infinity` when isolated. */
export const retryAfter = (state: State, now: number): number =>
  state._tag === "Open" ? (state.isolated ? Infinity : Math.max(0, state.until - now)) : 0

/** A call admitted under `generation` ended at `now` with `outcome`. */
export const complete = (state: State, policy: Policy, now: number, generation: number, outcome: Outcome): State => {
  if (generation !== state.generation) return state
  switch (state._tag) {
    case "Closed":
      return completeClosed(state, policy, now, outcome)
    case "HalfOpen":
      if (outcome === "ignored") return { ...state, admitted: state.admitted - 1 }
      if (outcome === "failure") return open(state, policy, now, state.failures + 1, state.reopenings + 1)
      return state.succeeded + 1 >= policy.halfOpenTrials
        ? initial(policy, state.generation + 1)
        : { ...state, succeeded: state.succeeded + 1 }
    case "Open":
      return state
  }
}

const completeClosed = (state: Closed, policy: Policy, now: number, outcome: Outcome): State => {
  if (outcome === "ignored") return state
  const trip = policy.trip
  if (trip._tag === "ConsecutiveFailures") {
    if (outcome === "success") return state.consecutive === 0 ? state : { ...state, consecutive: 0 }
    const consecutive = state.consecutive + 1
    return consecutive >= trip.threshold ? open(state, policy, now, consecutive, 0) : { ...state, consecutive }
  }
  const window = state.window!
  window.record(outcome === "failure")
  return outcome === "failure" && window.count >= trip.minimumCalls && window.failures >= trip.threshold * window.count
    ? open(state, policy, now, window.failures, 0)
    : state
}

/** Holds the breaker open, whatever its state, until `reset`. */
export const isolate = (state: State, now: number): Open => ({
  _tag: "Open",
  generation: state.generation + 1,
  openedAt: now,
  until: Infinity,
  isolated: true,
  failures: failuresOf(state),
  reopenings: 0
})

/**
 * Holds the breaker open until `until` (an upstream said when to come back, e.g. a 429's `Retry-After`): a closed or
 * half-open breaker opens, an open one stays open at least that long; an isolated breaker stays isolated. After
 * `until` it turns half-open as after any cool-down.
 */
export const openUntil = (state: State, now: number, until: number): State => {
  if (state._tag === "Open" && (state.isolated || state.until >= until)) return state
  return {
    _tag: "Open",
    generation: state.generation + 1,
    openedAt: state._tag === "Closed" ? now : state.openedAt,
    until,
    isolated: false,
    failures: failuresOf(state),
    reopenings: state._tag === "Closed" ? 0 : state.reopenings
  }
}

/** Closes the breaker and forgets its history. */
export const reset = (state: State, policy: Policy): Closed => initial(policy, state.generation + 1)

/** Counted failures: consecutive or in the window while closed, since the last close otherwise. */
export const failuresOf = (state: State): number =>
  state._tag === "Closed" ? (state.window === undefined ? state.consecutive : state.window.failures) : state.failures
