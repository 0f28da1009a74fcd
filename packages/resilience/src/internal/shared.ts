/**
 * Breakers shared by every replica through a `BreakerStore`. Each process keeps a mirror of every breaker it uses,
 * kept current by the store's change feed and by the answer to each of its own reports, and decides from it with
 * no round trip: closed calls run, open ones are rejected until the (store-timed) deadline, converted to this
 * process' clock when each snapshot arrives. The store is asked only when something happened:
 *
 * - a counted failure (the caller waits up to `reportWaitMs` for the answer; past that it goes on and the answer is
 *   applied when it comes);
 * - the first success after failures (consecutive policy; in the background), or the successes counted since the
 *   last report (failure-rate policy; carried by the next failure, or flushed every `flushMs`);
 * - a call after the cool-down: it asks for a trial slot, and only the caller granted one runs; its token is renewed
 *   while the trial runs, and expires (freeing the slot) if this process dies;
 * - `isolate`, `reset`, and the first call of a breaker this process had not used (it reads the record first).
 *
 * When the store cannot be reached a breaker falls back to a local breaker with the same policy, seeded from its
 * mirror, and says `shared: false`; nothing is written to the store meanwhile. It reads the store again once the
 * store is back (the feed says so) or on a call at most every `resyncMs`, and follows the store from there.
 */
import type * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Os from "node:os"
import type { Resolved } from "../BreakerPolicy.js"
import type { BreakerStoreError, Change, Service as Store, SharedState, Snapshot } from "../BreakerStore.js"
import type { ProtectOptions, Service, State, StateChange, Status } from "../CircuitBreaker.js"
import type { CircuitOpenError, CircuitTimeoutError } from "../CircuitBreakerError.js"
import * as Local from "./local.js"
import * as Machine from "./machine.js"
import { Registry } from "./registry.js"
import { announce, classify, handlers, makeLabels, publicState, reject, withTimeout } from "./shell.js"

/** How the shared layer talks to its store. */
export interface Settings {
  /** Names kept in this process only, never shared (the trace store's own breaker). */
  readonly local: ReadonlySet<string>
  /** How long a trial token lives unless renewed (renewed every third of it while the trial runs). */
  readonly trialTtlMs: number
  /** The longest a caller waits for the store's answer to its report before going on. */
  readonly reportWaitMs: number
  /** How often successes counted under a failure-rate policy are told to the store. */
  readonly flushMs: number
  /** How often a breaker that fell back tries the store again on a call. */
  readonly resyncMs: number
}

/** What this process knows of a breaker's shared record; deadlines converted to this process' clock. */
interface Mirror {
  readonly state: SharedState
  readonly generation: number
  readonly version: number
  readonly failures: number
  readonly reopenings: number
  /** The store's clock. */
  readonly openedAt: number
  readonly until: number
  readonly trials: number
  readonly trialsUntil: number
}

interface Entry extends Local.LocalBreaker {
  /** Kept in this process only. */
  readonly pinned: boolean
  /** Whether the mirror or the local breaker (`state`) decides. */
  mode: "shared" | "local"
  mirror: Mirror
  /** Successes not yet told to the store (failure-rate policy). */
  pending: number
  /** A success report is in flight (consecutive policy). */
  reporting: boolean
  /** Trial slots being asked for, and held, by this process. */
  acquiring: number
  held: number
  /** A read of the record is in flight. */
  syncing: boolean
  /** The first read of the record; callers wait for it (up to `reportWaitMs`). */
  loading: Deferred.Deferred<void> | undefined
  loadStarted: boolean
  /** When a fallen-back breaker may try the store again (this process' clock). */
  retryAt: number
}

const noRecord: Mirror = {
  state: "closed",
  generation: 0,
  version: 0,
  failures: 0,
  reopenings: 0,
  openedAt: 0,
  until: 0,
  trials: 0,
  trialsUntil: 0
}

/** The snapshot as a mirror, its deadlines moved to this process' clock as of `receivedAt`. */
const mirrorOf = (snapshot: Snapshot, receivedAt: number): Mirror => ({
  state: snapshot.state,
  generation: snapshot.generation,
  version: snapshot.version,
  failures: snapshot.failures,
  reopenings: snapshot.reopenings,
  openedAt: snapshot.openedAt,
  until: snapshot.state === "open" ? receivedAt + Math.max(0, snapshot.until - snapshot.now) : 0,
  trials: snapshot.trials,
  trialsUntil: snapshot.trials > 0 ? receivedAt + Math.max(0, snapshot.trialsUntil - snapshot.now) : 0
})

const retryAfterOf = (mirror: Mirror, now: number): number =>
  mirror.state === "isolated" ? Infinity : mirror.state === "open" ? Math.max(0, mirror.until - now) : 0

/** A local breaker state that continues from the mirror: the same state, counts and deadline. */
const seed = (mirror: Mirror, policy: Machine.Policy, previous: Machine.State, now: number): Machine.State => {
  const generation = previous.generation + 1
  switch (mirror.state) {
    case "closed": {
      const closed = Machine.initial(policy, generation)
      return policy.trip._tag === "ConsecutiveFailures"
        ? { ...closed, consecutive: Math.min(mirror.failures, policy.trip.threshold - 1) }
        : closed
    }
    case "isolated":
      return { ...Machine.isolate(previous, mirror.openedAt), failures: mirror.failures }
    case "open":
    case "half_open":
      return {
        _tag: "Open",
        generation,
        openedAt: mirror.openedAt,
        until: mirror.state === "open" ? mirror.until : now,
        isolated: false,
        failures: mirror.failures,
        reopenings: mirror.reopenings
      }
  }
}

/** Builds the service over `store`; its background fibers (the change feed, flushes, sweeps) end with the scope. */
export const make = (
  store: Store,
  policies: Resolved,
  settings: Settings
): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<StateChange>(), PubSub.shutdown)
    const local = Local.make(hub)
    const labels = makeLabels()
    const policyFor = (name: string) => policies.named.get(name) ?? policies.defaults
    const instance = `${Os.hostname()}:${process.pid}:${(yield* Random.nextInt).toString(36)}`
    let tokens = 0
    /** Whether this process said the store is out of reach and has not said it is back. */
    let degraded = false
    const dirty = new Set<Entry>()

    const registry = new Registry<Entry>({
      max: policies.maxBreakers,
      idleMs: policies.idleMs,
      create: (name) => {
        const pinned = settings.local.has(name)
        const policy = policyFor(name)
        const metrics = labels(name)
        metrics.state(0)
        // One literal with every field, so every entry has one shape.
        const entry: Entry = {
          name,
          policy,
          metrics,
          state: Machine.initial(policy),
          view: "closed",
          seen: 0,
          activeAt: 0,
          active: pinned,
          pinned,
          mode: pinned ? "local" : "shared",
          mirror: noRecord,
          pending: 0,
          reporting: false,
          acquiring: 0,
          held: 0,
          syncing: false,
          loading: pinned ? undefined : Deferred.unsafeMake<void>(FiberId.none),
          loadStarted: false,
          retryAt: 0
        }
        return entry
      },
      evictable: (entry, now) => entry.mode === "local" ? Local.evictable(entry, now) : true,
      busy: (entry) => entry.held > 0 || entry.acquiring > 0 || entry.syncing || Local.busy(entry)
    })

    /** Announces the entry's public state when it changed. */
    const show = (entry: Entry, to: State, at: number, failures: number): Effect.Effect<void> | undefined => {
      if (to === entry.view) return undefined
      const from = entry.view
      entry.view = to
      return announce(hub, entry.name, entry.metrics, from, to, at, failures, { shared: entry.mode === "shared" })
    }

    /** Takes a snapshot unless the mirror is newer; while shared, announces what changed. */
    const apply = (entry: Entry, snapshot: Snapshot, receivedAt: number): Effect.Effect<void> | undefined => {
      if (snapshot.version < entry.mirror.version) return undefined
      // A second copy of the change the mirror holds (the feed's, after the script's reply) came later than the first:
      // its deadlines would be late by the delivery delay, so the first stands.
      const mirror = entry.mirror
      if (
        snapshot.version === mirror.version && snapshot.generation === mirror.generation &&
        snapshot.state === mirror.state && mirror.version > 0
      ) return undefined
      entry.mirror = mirrorOf(snapshot, receivedAt)
      if (entry.mode !== "shared") return undefined
      const at = snapshot.changedAt === 0 ? receivedAt : snapshot.changedAt
      return show(entry, entry.mirror.state, at, snapshot.failures)
    }

    const run = (log: Effect.Effect<void> | undefined): Effect.Effect<void> => log ?? Effect.void

    const applied = (entry: Entry, snapshot: Snapshot) =>
      Effect.clockWith((clock) => Effect.suspend(() => run(apply(entry, snapshot, clock.unsafeCurrentTimeMillis()))))

    /** Switches the entry to its local breaker, seeded from the mirror; says so once per outage. */
    const fallBack = (entry: Entry, now: number, error?: BreakerStoreError): Effect.Effect<void> | undefined => {
      if (entry.mode === "local") return undefined
      entry.mode = "local"
      entry.active = true
      entry.retryAt = now + settings.resyncMs
      entry.pending = 0
      entry.state = seed(entry.mirror, entry.policy, entry.state, now)
      const shown = show(entry, publicState(entry.state), now, Machine.failuresOf(entry.state))
      if (degraded) return shown
      degraded = true
      const said = Effect.logWarning(
        "circuit breaker store unreachable: breakers fall back to this process' own state until it is back"
      ).pipe(Effect.annotateLogs({
        package: "@sg/resilience",
        breaker: entry.name,
        ...(error === undefined ? {} : { error: error.message })
      }))
      return shown === undefined ? said : Effect.zipRight(shown, said)
    }

    const fellBack = (entry: Entry, error: BreakerStoreError) =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => run(fallBack(entry, clock.unsafeCurrentTimeMillis(), error)))
      )

    /** Reads the record and follows the store again. */
    const resync = (entry: Entry): Effect.Effect<void> =>
      store.read(entry.name, entry.policy).pipe(
        Effect.flatMap((snapshot) =>
          Effect.clockWith((clock) =>
            Effect.suspend(() => {
              const now = clock.unsafeCurrentTimeMillis()
              const wasLocal = entry.mode === "local"
              // Only one of the two connections is back: stay local until both are (the other one says so too).
              if (wasLocal && !store.isAvailable()) return Effect.void
              entry.mode = "shared"
              entry.active = false
              if (entry.loading !== undefined) {
                Deferred.unsafeDone(entry.loading, Exit.void)
                entry.loading = undefined
              }
              // A read is the record as it is now: taken even if older than the mirror (the store may have lost it).
              entry.mirror = noRecord
              const shown = apply(entry, snapshot, now)
              if (!(wasLocal && degraded)) return run(shown)
              degraded = false
              const said = Effect.logInfo("circuit breaker store reachable again: breakers are shared again").pipe(
                Effect.annotateLogs({ package: "@sg/resilience", breaker: entry.name })
              )
              return shown === undefined ? said : Effect.zipRight(shown, said)
            })
          )
        ),
        Effect.catchAll((error) => fellBack(entry, error)),
        Effect.ensuring(Effect.sync(() => {
          entry.syncing = false
        }))
      )

    const startResync = (entry: Entry): Effect.Effect<void> => {
      entry.syncing = true
      return Effect.asVoid(Effect.forkIn(resync(entry), scope))
    }

    const load = (entry: Entry, loading: Deferred.Deferred<void>): Effect.Effect<void> => {
      const wait = Effect.asVoid(Effect.timeoutOption(Deferred.await(loading), settings.reportWaitMs))
      if (entry.loadStarted) return wait
      entry.loadStarted = true
      entry.syncing = true
      const first = resync(entry).pipe(
        Effect.ensuring(Effect.sync(() => {
          entry.loading = undefined
          Deferred.unsafeDone(loading, Exit.void)
        }))
      )
      return Effect.zipRight(Effect.forkIn(first, scope), wait)
    }

    /** Waits for `report` up to `reportWaitMs`; past that it finishes in the background. */
    const bounded = (report: Effect.Effect<void>): Effect.Effect<void> =>
      report.pipe(
        Effect.uninterruptible,
        Effect.disconnect,
        Effect.timeoutOption(settings.reportWaitMs),
        Effect.asVoid
      )

    /** Applies an outcome of a call admitted while shared to the local breaker, when it has taken over. */
    const completeLocally = (entry: Entry, clock: Clock.Clock, outcome: Machine.Outcome) => {
      const state = entry.state
      if (state._tag !== "Closed" || outcome === "ignored") return undefined
      const now = clock.unsafeCurrentTimeMillis()
      return local.moveTo(entry, Machine.complete(state, entry.policy, now, state.generation, outcome), now)
    }

    const reportFailure = (entry: Entry, clock: Clock.Clock, generation: number): Effect.Effect<void> => {
      if (entry.mode === "local") return run(completeLocally(entry, clock, "failure"))
      const before = entry.pending
      entry.pending = 0
      return bounded(
        store.failure(entry.name, entry.policy, generation, before).pipe(
          Effect.flatMap((snapshot) => applied(entry, snapshot)),
          Effect.catchAll((error) =>
            Effect.zipRight(fellBack(entry, error), Effect.suspend(() => run(completeLocally(entry, clock, "failure"))))
          )
        )
      )
    }

    const reportSuccess = (entry: Entry, generation: number): Effect.Effect<void> => {
      entry.reporting = true
      return store.successes(entry.name, entry.policy, generation, 1).pipe(
        Effect.flatMap((snapshot) => applied(entry, snapshot)),
        Effect.catchAll((error) => fellBack(entry, error)),
        Effect.ensuring(Effect.sync(() => {
          entry.reporting = false
        })),
        Effect.forkIn(scope),
        Effect.asVoid
      )
    }

    // Successes under a failure-rate policy, told in one batch per entry at most every `flushMs`.
    let flushing = false
    const flushOne = (entry: Entry): Effect.Effect<void> => {
      const count = entry.pending
      entry.pending = 0
      if (count === 0 || entry.mode !== "shared" || entry.mirror.state !== "closed") return Effect.void
      return store.successes(entry.name, entry.policy, entry.mirror.generation, count).pipe(
        Effect.flatMap((snapshot) => applied(entry, snapshot)),
        Effect.catchAll((error) => fellBack(entry, error))
      )
    }
    const flush = Effect.suspend(() => {
      flushing = false
      const batch = Array.from(dirty)
      dirty.clear()
      return Effect.forEach(batch, flushOne, { concurrency: 8, discard: true })
    })
    /** Starts a flush `flushMs` from now unless one is due already (no timer runs while nothing is pending). */
    const scheduleFlush = (): Effect.Effect<void> | undefined => {
      if (flushing) return undefined
      flushing = true
      return Effect.asVoid(Effect.forkIn(Effect.zipRight(Effect.sleep(settings.flushMs), flush), scope))
    }

    /** What a success of a call admitted while closed under `generation` asks for; usually nothing. */
    const succeeded = (entry: Entry, clock: Clock.Clock, generation: number): Effect.Effect<void> | undefined => {
      if (entry.mode === "local") return completeLocally(entry, clock, "success")
      const trip = entry.policy.trip
      if (trip._tag === "FailureRate") {
        if (entry.pending < trip.window) entry.pending++
        dirty.add(entry)
        return scheduleFlush()
      }
      const mirror = entry.mirror
      if (mirror.failures === 0 || entry.reporting || mirror.state !== "closed" || mirror.generation !== generation) {
        return undefined
      }
      return reportSuccess(entry, generation)
    }

    /** Runs a call admitted while the mirror says closed, and tells the store what it needs to know. */
    const observe = <A, E, R>(
      entry: Entry,
      clock: Clock.Clock,
      generation: number,
      call: Effect.Effect<A, E, R>,
      isFailure: ((error: unknown) => boolean) | undefined
    ): Effect.Effect<A, E, R> =>
      Effect.matchCauseEffect(
        call,
        handlers(
          (a: A) => {
            entry.metrics.successes(1)
            const after = succeeded(entry, clock, generation)
            return after === undefined ? Effect.succeed(a) : Effect.as(after, a)
          },
          (cause) => {
            const { outcome, timedOut } = classify(entry.name, cause, isFailure)
            if (timedOut) entry.metrics.timeouts(1)
            if (outcome !== "failure") return Effect.failCause(cause)
            entry.metrics.failures(1)
            return Effect.zipRight(reportFailure(entry, clock, generation), Effect.failCause(cause))
          }
        )
      )

    /** Keeps the trial token alive while the trial runs; stops once it is lost or the store is out of reach. */
    const renewing = (entry: Entry, generation: number, token: string): Effect.Effect<void> => {
      const every = Math.max(1, Math.floor(settings.trialTtlMs / 3))
      return Effect.sleep(every).pipe(
        Effect.zipRight(store.renew(entry.name, generation, token, settings.trialTtlMs)),
        Effect.repeat({ while: (renewed) => renewed }),
        Effect.ignore,
        Effect.interruptible
      )
    }

    const settleTrial = (
      entry: Entry,
      clock: Clock.Clock,
      generation: number,
      token: string,
      outcome: Machine.Outcome
    ): Effect.Effect<void> =>
      bounded(
        store.settle(entry.name, entry.policy, generation, token, outcome).pipe(
          Effect.flatMap((snapshot) => applied(entry, snapshot)),
          Effect.catchAll((error) =>
            Effect.suspend(() => {
              if (entry.mode === "local") return Effect.void
              return Effect.zipRight(
                fellBack(entry, error),
                Effect.suspend(() => {
                  // The local breaker, seeded half-open-due, decides the trial as a local trial would.
                  const now = clock.unsafeCurrentTimeMillis()
                  const admitted = Machine.admit(entry.state, entry.policy, now)
                  if (admitted === undefined || admitted._tag !== "HalfOpen") return Effect.void
                  const decided = Machine.complete(admitted, entry.policy, now, admitted.generation, outcome)
                  return run(local.moveTo(entry, decided, now))
                })
              )
            })
          )
        )
      )

    /** A call after the cool-down: asks the store for a trial slot and runs the call only if granted. */
    const trial = <A, E, R>(
      entry: Entry,
      clock: Clock.Clock,
      effect: Effect.Effect<A, E, R>,
      isFailure: ((error: unknown) => boolean) | undefined,
      timeout: Duration.Duration | undefined
    ): Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError, R> => {
      entry.acquiring++
      const token = `${instance}:${++tokens}`
      return Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const acquired = yield* Effect.either(store.acquire(entry.name, entry.policy, token, settings.trialTtlMs))
          entry.acquiring--
          const now = clock.unsafeCurrentTimeMillis()
          if (Either.isLeft(acquired)) {
            yield* run(fallBack(entry, now, acquired.left))
            return yield* restore(local.guard(entry, clock, effect, isFailure, timeout))
          }
          const { snapshot, verdict } = acquired.right
          yield* run(apply(entry, snapshot, now))
          if (verdict === "closed") {
            const call = withTimeout(entry.name, effect, timeout)
            return yield* restore(observe(entry, clock, snapshot.generation, call, isFailure))
          }
          if (verdict === "rejected") return yield* reject(entry.name, entry.metrics, retryAfterOf(entry.mirror, now))
          entry.held++
          const renewer = yield* Effect.fork(renewing(entry, snapshot.generation, token))
          const exit = yield* Effect.exit(restore(withTimeout(entry.name, effect, timeout)))
          yield* Fiber.interruptFork(renewer)
          entry.held--
          let outcome: Machine.Outcome = "success"
          if (Exit.isSuccess(exit)) {
            entry.metrics.successes(1)
          } else {
            const classified = classify(entry.name, exit.cause, isFailure)
            if (classified.timedOut) entry.metrics.timeouts(1)
            if (classified.outcome === "failure") entry.metrics.failures(1)
            outcome = classified.outcome
          }
          yield* settleTrial(entry, clock, snapshot.generation, token, outcome)
          return yield* exit
        })
      )
    }

    const decide = <A, E, R>(
      entry: Entry,
      clock: Clock.Clock,
      effect: Effect.Effect<A, E, R>,
      isFailure: ((error: unknown) => boolean) | undefined,
      timeout: Duration.Duration | undefined
    ): Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError, R> => {
      const mirror = entry.mirror
      if (entry.mode === "shared" && mirror.state === "closed" && store.isAvailable()) {
        return observe(entry, clock, mirror.generation, withTimeout(entry.name, effect, timeout), isFailure)
      }
      if (entry.pinned) return local.guard(entry, clock, effect, isFailure, timeout)
      const now = clock.unsafeCurrentTimeMillis()
      if (entry.mode === "local") {
        const guarded = local.guard(entry, clock, effect, isFailure, timeout)
        if (entry.syncing || now < entry.retryAt || !store.isAvailable()) return guarded
        entry.retryAt = now + settings.resyncMs
        return Effect.zipRight(startResync(entry), guarded)
      }
      if (!store.isAvailable()) {
        const said = fallBack(entry, now)
        const guarded = local.guard(entry, clock, effect, isFailure, timeout)
        return said === undefined ? guarded : Effect.zipRight(said, guarded)
      }
      switch (mirror.state) {
        case "isolated":
          return reject(entry.name, entry.metrics, Infinity)
        case "open":
          if (now < mirror.until) return reject(entry.name, entry.metrics, mirror.until - now)
          break
        case "half_open":
          if (mirror.trials >= entry.policy.halfOpenTrials && now < mirror.trialsUntil) {
            return reject(entry.name, entry.metrics, 0)
          }
      }
      if (entry.acquiring + entry.held >= entry.policy.halfOpenTrials) {
        return reject(entry.name, entry.metrics, retryAfterOf(mirror, now))
      }
      return trial(entry, clock, effect, isFailure, timeout)
    }

    const guard = <A, E, R>(
      name: string,
      effect: Effect.Effect<A, E, R>,
      isFailure: ((error: unknown) => boolean) | undefined,
      timeout: Duration.Duration | undefined
    ): Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError, R> =>
      Effect.clockWith((clock) => {
        const entry = registry.use(name, clock)
        entry.metrics.calls(1)
        const loading = entry.loading
        if (loading === undefined || !store.isAvailable()) return decide(entry, clock, effect, isFailure, timeout)
        const decided = Effect.suspend(() => decide(entry, clock, effect, isFailure, timeout))
        return Effect.zipRight(load(entry, loading), decided)
      })

    const protect = <E0>(name: string, options?: ProtectOptions<E0>) => {
      const isFailure = options?.isFailure as ((error: unknown) => boolean) | undefined
      const timeout = options?.timeout === undefined ? undefined : Duration.decode(options.timeout)
      return <A, E extends E0, R>(effect: Effect.Effect<A, E, R>) => guard(name, effect, isFailure, timeout)
    }

    /** `isolate` or `reset`: for every replica through the store, or this process only while it is out of reach. */
    const command = (
      name: string,
      shared: (policy: Machine.Policy) => Effect.Effect<Snapshot, BreakerStoreError>,
      locally: (state: Machine.State, policy: Machine.Policy, now: number) => Machine.State,
      what: string
    ): Effect.Effect<void> =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const entry = registry.obtain(name, () => clock.unsafeCurrentTimeMillis())
          entry.seen = registry.epoch
          const inLocal = () => {
            const now = clock.unsafeCurrentTimeMillis()
            return run(local.moveTo(entry, locally(entry.state, entry.policy, now), now))
          }
          if (entry.pinned) return inLocal()
          return shared(entry.policy).pipe(
            Effect.flatMap((snapshot) =>
              Effect.suspend(() => {
                const now = clock.unsafeCurrentTimeMillis()
                if (entry.mode === "local") {
                  entry.mode = "shared"
                  entry.active = false
                }
                if (entry.loading !== undefined && !entry.loadStarted) {
                  Deferred.unsafeDone(entry.loading, Exit.void)
                  entry.loading = undefined
                }
                return run(apply(entry, snapshot, now))
              })
            ),
            Effect.catchAll((error) =>
              Effect.zipRight(
                fellBack(entry, error),
                Effect.zipRight(
                  Effect.logWarning(
                    `circuit breaker "${name}": ${what} applies to this process only (store unreachable)`
                  ).pipe(Effect.annotateLogs({ package: "@sg/resilience", breaker: name })),
                  Effect.suspend(inLocal)
                )
              )
            )
          )
        })
      )

    const statusOf = (entry: Entry, now: number): Status => {
      if (entry.mode === "local") return Local.statusOf(entry, now, false)
      const mirror = entry.mirror
      return {
        name: entry.name,
        // Past its cool-down an open breaker admits a trial on its next call: half-open already, said at once.
        state: mirror.state === "open" && now >= mirror.until ? "half_open" : mirror.state,
        failures: mirror.failures,
        openedAt: mirror.state === "closed" ? Option.none() : Option.some(DateTime.unsafeMake(mirror.openedAt)),
        retryAfter: Duration.millis(retryAfterOf(mirror, now)),
        shared: store.isAvailable()
      }
    }

    const status = (name: string): Effect.Effect<Status> =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const entry = registry.get(name)
          if (entry !== undefined) return Effect.succeed(statusOf(entry, now))
          const policy = policyFor(name)
          const closed = Local.statusOfState(name, Machine.initial(policy), now, false)
          if (settings.local.has(name)) return Effect.succeed(closed)
          return store.read(name, policy).pipe(
            Effect.map((snapshot) => {
              const mirror = mirrorOf(snapshot, now)
              return {
                name,
                state: mirror.state,
                failures: mirror.failures,
                openedAt: mirror.state === "closed" ? Option.none() : Option.some(DateTime.unsafeMake(mirror.openedAt)),
                retryAfter: Duration.millis(retryAfterOf(mirror, now)),
                shared: true
              } satisfies Status
            }),
            Effect.orElseSucceed(() => closed)
          )
        })
      )

    // The change feed: other replicas' writes, and the store coming back.
    const changes = yield* store.subscribe
    const onChange = (change: Change): Effect.Effect<void> => {
      if (change._tag === "Reconnected") {
        if (!store.isAvailable()) return Effect.void
        const stale = Array.from(registry.values()).filter((entry) => !entry.pinned && !entry.syncing)
        for (const entry of stale) entry.syncing = true
        const all = Effect.forEach(stale, resync, { concurrency: 16, discard: true })
        return Effect.asVoid(Effect.forkIn(all, scope))
      }
      const entry = registry.get(change.name)
      return entry === undefined || entry.pinned ? Effect.void : applied(entry, change.snapshot)
    }
    yield* Queue.take(changes).pipe(
      Effect.flatMap(onChange),
      Effect.catchAllCause((cause) => Effect.logWarning("circuit breaker change feed: an update failed", cause)),
      Effect.forever,
      Effect.interruptible,
      Effect.forkScoped
    )


    return {
      protect: protect as Service["protect"],
      openFor: (name, duration) => {
        const millis = Duration.toMillis(Duration.decode(duration))
        if (!Number.isFinite(millis) || millis <= 0) return Effect.void
        return command(
          name,
          (p) => store.openFor(name, p, millis),
          (state, _, now) => Machine.openUntil(state, now, now + millis),
          "openFor"
        )
      },
      isolate: (name) =>
        command(name, (p) => store.isolate(name, p), (state, _, now) => Machine.isolate(state, now), "isolate"),
      reset: (name) => command(name, (p) => store.reset(name, p), (state, p) => Machine.reset(state, p), "reset"),
      status,
      snapshot: Effect.clockWith((clock) =>
        Effect.sync(() => {
          const now = clock.unsafeCurrentTimeMillis()
          return Array.from(registry.list(now), (entry) => statusOf(entry, now)).sort((a, b) =>
            a.name < b.name ? -1 : a.name > b.name ? 1 : 0
          )
        })
      ),
      changes: Stream.fromPubSub(hub),
      subscribe: PubSub.subscribe(hub)
    }
  })
