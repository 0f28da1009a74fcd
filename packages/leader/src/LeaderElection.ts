/**
 * Leader election over a lease with fencing epochs, in the manner of Kubernetes' client-go: campaign until the
 * lease is won, run an effect while it is held, renew it in the background, and interrupt the effect and step down
 * before the lease can lapse on the server when renewals stop succeeding, whatever the store answered or did not.
 *
 * Clock assumption: a holder times its renew deadline on its own monotonic clock from the moment it SENT the acquire
 * or renew that succeeded; the store started (or extended) the lease no earlier than that moment and lets it lapse
 * `ttl` later on its own clock. A holder therefore stops `ttl - renewDeadline` (5 s by default) before anyone else
 * can take over, as long as its clock and the store's run at about the same rate (drift well under a third of the
 * TTL), the store's clock does not jump forward (Redis expires keys by its host's wall clock: use NTP slewing, not
 * stepping), and the effect finishes its interruption within that margin. A process paused for longer (a stopped
 * event loop, SIGSTOP, a long GC) cannot notice in time: the fencing epoch is what keeps its late writes out.
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import { bounded } from "./internal/bounded.js"
import * as Resolve from "./internal/options.js"
import { defaultIdentity, makeToken } from "./internal/token.js"
import { InvalidLeaseConfig } from "./LeaderElectionError.js"
import { Lease } from "./Lease.js"
import * as LeaseStore from "./LeaseStore.js"

/** Lease timings; every one is optional, and what is not given is derived from the TTL (see `resolveOptions`). */
export interface Options {
  /** How long a lease lasts in the store without renewal: 15 seconds (`SG_LEASE_TTL`). */
  readonly ttl: Duration.DurationInput
  /** How often the holder renews: a third of the TTL (5 seconds). */
  readonly renewInterval: Duration.DurationInput
  /** How long after its last successful renewal (timed from when it was sent) the holder steps down: two thirds of
   * the TTL (10 seconds). Must be shorter than the TTL: the difference is the safety margin. */
  readonly renewDeadline: Duration.DurationInput
  /** How often a follower tries to acquire, and a failed renewal is retried: 2/15 of the TTL (2 seconds). Also the
   * longest a single acquire or release may take. */
  readonly retryPeriod: Duration.DurationInput
  /** The `<hostname>:<pid>` part of this process' tokens. */
  readonly identity: string
}

/** Lease timings after defaults and checks. */
export type ResolvedOptions = Resolve.Resolved

/** Fills in defaults and checks `ttl > renewDeadline > retryPeriod` and `renewInterval < renewDeadline`. */
export const resolveOptions = (options?: Partial<Options>): Effect.Effect<ResolvedOptions, InvalidLeaseConfig> =>
  Either.match(Resolve.resolve(options ?? {}, defaultIdentity()), {
    onLeft: (problems) =>
      Effect.fail(new InvalidLeaseConfig({ message: `invalid lease options: ${problems.join("; ")}`, problems })),
    onRight: Effect.succeed
  })

/** `SG_LEASE_TTL`, the lease TTL (15 seconds), through `Config`. */
export const config: Config.Config<Duration.Duration> = Config.duration("SG_LEASE_TTL").pipe(
  Config.withDefault(Duration.seconds(15)),
  Config.withDescription("how long a leader's lease lasts without renewal, e.g. \"15 seconds\"")
)

/** What one elector knows about one lease, for `/api/status`. Times are Unix epoch milliseconds from `Clock`. */
export const Status = Schema.Struct({
  name: Schema.String,
  /** Whether this elector holds the lease and runs its effect now. */
  leader: Schema.Boolean,
  /** This elector's epoch while it leads; the latest epoch it has seen in the store otherwise. */
  epoch: Schema.NullOr(Schema.Number),
  /** The holder's token as last seen (this elector's own while it leads). */
  holder: Schema.NullOr(Schema.String),
  /** When the current term began, while leading. */
  since: Schema.NullOr(Schema.Number),
  /** When the lease was last renewed (or acquired), while leading. */
  lastRenewal: Schema.NullOr(Schema.Number),
  /** How many terms this elector has held. */
  terms: Schema.Number
})

/** What one elector knows about one lease. */
export interface Status extends Schema.Schema.Type<typeof Status> {}

/** Runs effects only while this process holds their lease. */
export interface Service {
  /**
   * Campaigns for the lease `<prefix>:lease:<name>` until it wins, then runs `effect` with a `Lease` while it holds
   * it. When the lease is lost (the store says another holds it, or no renewal succeeded within the renew deadline)
   * the effect is interrupted and the campaign starts again; this never returns on its own. When `effect` completes,
   * the lease is released and its result returned (a failure fails this with the same error, after the release).
   * When this is interrupted (its scope closes, SIGTERM) the lease is released, so another holder takes over at once.
   * `name` is 1 to 200 letters, digits, `.`, `_` or `-`.
   */
  readonly runWhileLeader: <A, E, R>(
    name: string,
    effect: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | InvalidLeaseConfig, Exclude<R, Lease>>
  /** What this elector knows about the lease `name` now (no store round trip). */
  readonly status: (name: string) => Effect.Effect<Status>
  /** Whether this elector leads `name` now. */
  readonly isLeader: (name: string) => Effect.Effect<boolean>
  /** The timings in force. */
  readonly options: ResolvedOptions
}

/** Leader election. */
export class LeaderElection extends Context.Tag("@sg/leader/LeaderElection")<LeaderElection, Service>() {}

/** 1 while this process leads the lease (tag `lease`), 0 otherwise. */
export const leaderGauge = Metric.gauge("sg_leader_is_leader", {
  description: "1 while this process holds the lease named by the lease tag"
})

interface Term {
  readonly token: string
  readonly epoch: number
  /** Monotonic milliseconds when the winning acquire was sent. */
  readonly acquiredAt: number
}

type LossReason = "renew deadline passed" | "lease taken or expired in the store"

type Outcome<A, E> =
  | { readonly _tag: "Completed"; readonly exit: Exit.Exit<A, E> }
  | { readonly _tag: "Lost"; readonly reason: LossReason }

interface State {
  readonly status: Status
  readonly highestEpoch: number
}

const initial = (name: string): State => ({
  status: { name, leader: false, epoch: null, holder: null, since: null, lastRenewal: null, terms: 0 },
  highestEpoch: 0
})

const validName = /^[A-Za-z0-9._-]{1,200}$/

const checkName = (name: string): Effect.Effect<void, InvalidLeaseConfig> => {
  if (validName.test(name)) return Effect.void
  const problem = `a lease name is 1 to 200 letters, digits, ".", "_" or "-", not ${JSON.stringify(name)}`
  return Effect.fail(new InvalidLeaseConfig({ message: `invalid lease name: ${problem}`, problems: [problem] }))
}

/** Monotonic milliseconds, from `Clock` (so `TestClock` drives them). */
const monotonicMillis = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos) / 1_000_000)

/** A duration for a log line, to the millisecond. */
const formatMillis = (millis: number) => Duration.format(Duration.millis(Math.max(0, Math.round(millis))))

const describeFailure = (error: { readonly _tag: string; readonly message: string }, limitMillis: number) =>
  error._tag === "TimeoutException" ? `no answer within ${formatMillis(limitMillis)}` : error.message

/** An elector over the `LeaseStore` in the context. Electors built on one store compete with each other. */
export const make = (
  options?: Partial<Options>
): Effect.Effect<Service, InvalidLeaseConfig, LeaseStore.LeaseStore> =>
  Effect.gen(function*() {
    const resolved = yield* resolveOptions(options)
    const store = yield* LeaseStore.LeaseStore
    const states = yield* Ref.make(HashMap.empty<string, State>())
    const ttlMillis = Duration.toMillis(resolved.ttl)
    const renewIntervalMillis = Duration.toMillis(resolved.renewInterval)
    const renewDeadlineMillis = Duration.toMillis(resolved.renewDeadline)
    const retryMillis = Duration.toMillis(resolved.retryPeriod)

    const lookup = (map: HashMap.HashMap<string, State>, name: string) =>
      Option.getOrElse(HashMap.get(map, name), () => initial(name))
    const stateOf = (name: string) => Effect.map(Ref.get(states), (map) => lookup(map, name))
    const update = (name: string, f: (state: State) => State) =>
      Ref.update(states, (map) => HashMap.set(map, name, f(lookup(map, name))))
    const updateStatus = (name: string, f: (status: Status) => Partial<Status>) =>
      update(name, (state) => ({ ...state, status: { ...state.status, ...f(state.status) } }))

    const annotate = (name: string, term?: { readonly token: string; readonly epoch?: number }) =>
      Effect.annotateLogs({
        package: "@sg/leader",
        lease: name,
        ...(term === undefined ? {} : { token: term.token }),
        ...(term?.epoch === undefined ? {} : { epoch: term.epoch })
      })

    const release = (name: string, token: string) =>
      Effect.either(bounded(store.release(name, token), resolved.retryPeriod))

    /** What a look at the store showed: who holds the lease, at which epoch. */
    const observe = (name: string, holder: string, epoch: number) =>
      update(name, (state) => ({
        highestEpoch: Math.max(state.highestEpoch, epoch),
        status: state.status.leader ? state.status : { ...state.status, holder, epoch }
      }))

    const campaign = (name: string, token: string): Effect.Effect<Term> =>
      Effect.gen(function*() {
        let failing = false
        while (true) {
          const floor = (yield* stateOf(name)).highestEpoch
          const sentAt = yield* monotonicMillis
          const result = yield* Effect.either(
            bounded(store.tryAcquire(name, token, ttlMillis, floor), resolved.retryPeriod)
          )
          if (Either.isRight(result)) {
            failing = false
            yield* observe(name, result.right.holder, result.right.epoch)
            if (result.right.acquired) return { token, epoch: result.right.epoch, acquiredAt: sentAt }
          } else if (!failing) {
            failing = true
            const why = describeFailure(result.left, retryMillis)
            yield* Effect.logWarning(
              `cannot reach the lease store while campaigning (${why}); ` +
                `retrying every ${Duration.format(resolved.retryPeriod)}`
            ).pipe(annotate(name, { token }))
          }
          // One attempt per retry period, counted from when it was sent (a slow attempt is not followed by a wait).
          const spent = (yield* monotonicMillis) - sentAt
          if (spent < retryMillis) yield* Effect.sleep(Duration.millis(retryMillis - spent))
        }
      })

    // Hand-written rather than a Schedule: the next wait depends on the time left before the renew deadline.
    const keepAlive = (name: string, term: Term): Effect.Effect<LossReason> =>
      Effect.gen(function*() {
        let lastSuccess = term.acquiredAt
        let wait = renewIntervalMillis
        while (true) {
          const left = lastSuccess + renewDeadlineMillis - (yield* monotonicMillis)
          if (left <= 0) return "renew deadline passed"
          yield* Effect.sleep(Duration.millis(Math.min(wait, left)))
          const sentAt = yield* monotonicMillis
          const remaining = lastSuccess + renewDeadlineMillis - sentAt
          if (remaining <= 0) return "renew deadline passed"
          const result = yield* Effect.either(
            bounded(store.renew(name, term.token, term.epoch, ttlMillis), Duration.millis(remaining))
          )
          if (Either.isLeft(result)) {
            wait = retryMillis
            const left = lastSuccess + renewDeadlineMillis - (yield* monotonicMillis)
            yield* Effect.logWarning(
              `lease renewal failed (${describeFailure(result.left, remaining)}); ` +
                (left > 0 ? `stepping down in ${formatMillis(left)} unless a renewal succeeds` : "stepping down")
            ).pipe(annotate(name, term))
          } else if (result.right) {
            lastSuccess = sentAt
            wait = renewIntervalMillis
            const now = yield* Clock.currentTimeMillis
            yield* updateStatus(name, () => ({ lastRenewal: now }))
          } else {
            return "lease taken or expired in the store"
          }
        }
      })

    const gained = (name: string, term: Term) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        yield* update(name, (state) => ({
          highestEpoch: Math.max(state.highestEpoch, term.epoch),
          status: {
            ...state.status,
            leader: true,
            epoch: term.epoch,
            holder: term.token,
            since: now,
            lastRenewal: now,
            terms: state.status.terms + 1
          }
        }))
        yield* Metric.set(Metric.tagged(leaderGauge, "lease", name), 1)
        yield* Effect.logInfo("leadership acquired").pipe(annotate(name, term))
      })

    const steppedDown = (name: string, term: Term, reason: string, lost: boolean) =>
      Effect.gen(function*() {
        yield* updateStatus(name, () => ({ leader: false, holder: null, since: null, lastRenewal: null }))
        yield* Metric.set(Metric.tagged(leaderGauge, "lease", name), 0)
        const released = yield* release(name, term.token)
        const handedOver = Either.isRight(released) && released.right ? "; lease released" : ""
        yield* (lost
          ? Effect.logWarning(`leadership lost: ${reason}${handedOver}`)
          : Effect.logInfo(`leadership released: ${reason}${handedOver}`)).pipe(annotate(name, term))
      })

    const hold = <A, E, R>(name: string, term: Term, effect: Effect.Effect<A, E, R>) => {
      const lease = Lease.of({
        name,
        token: term.token,
        epoch: term.epoch,
        stillHeld: bounded(store.read(name), resolved.retryPeriod).pipe(
          Effect.map((record) => record.holder === term.token && record.epoch === term.epoch),
          Effect.orElseSucceed(() => false)
        )
      })
      return Effect.race(
        effect.pipe(
          Effect.provideService(Lease, lease),
          Effect.exit,
          Effect.map((exit): Outcome<A, E> => ({ _tag: "Completed", exit }))
        ),
        Effect.map(keepAlive(name, term), (reason): Outcome<A, E> => ({ _tag: "Lost", reason }))
      )
    }

    /** One campaign and, once won, one term. */
    const round = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const token = yield* makeToken(resolved.identity)
          // An acquire whose reply was lost may have taken the lease: free it if the campaign is abandoned.
          const term = yield* restore(campaign(name, token)).pipe(Effect.onInterrupt(() => release(name, token)))
          yield* gained(name, term)
          return yield* restore(hold(name, term, effect)).pipe(
            Effect.onExit((exit) => {
              if (exit._tag === "Failure") return steppedDown(name, term, "interrupted", false)
              if (exit.value._tag === "Lost") return steppedDown(name, term, exit.value.reason, true)
              const completed = exit.value.exit._tag === "Success"
              return steppedDown(name, term, completed ? "effect completed" : "effect failed", false)
            })
          )
        })
      )

    const runWhileLeader = <A, E, R>(
      name: string,
      effect: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | InvalidLeaseConfig, Exclude<R, Lease>> =>
      Effect.gen(function*() {
        yield* checkName(name)
        while (true) {
          const outcome = yield* round(name, effect)
          if (outcome._tag === "Completed") return yield* outcome.exit
        }
      })

    return LeaderElection.of({
      runWhileLeader,
      status: (name) => Effect.map(stateOf(name), (state) => state.status),
      isLeader: (name) => Effect.map(stateOf(name), (state) => state.status.leader),
      options: resolved
    })
  })

const withConfiguredTtl = (options?: Partial<Options>): Effect.Effect<Partial<Options>, ConfigError.ConfigError> =>
  options?.ttl !== undefined ? Effect.succeed(options) : Effect.map(config, (ttl) => ({ ...options, ttl }))

/** An elector over the `LeaseStore` in the context; the TTL comes from `SG_LEASE_TTL` unless `options` gives it. */
export const layer = (
  options?: Partial<Options>
): Layer.Layer<LeaderElection, InvalidLeaseConfig | ConfigError.ConfigError, LeaseStore.LeaseStore> =>
  Layer.effect(LeaderElection, Effect.flatMap(withConfiguredTtl(options), make))

/** An elector over a memory store of its own (one process; `TestClock` drives it). To have several electors
 * compete, build each with `make` over one shared `LeaseStore.layerMemory`. */
export const layerMemory = (
  options?: Partial<Options>
): Layer.Layer<LeaderElection, InvalidLeaseConfig | ConfigError.ConfigError> =>
  Layer.provide(layer(options), LeaseStore.layerMemory)
