/**
 * The orphan watchdog: the sweep loop that exactly one replica runs, under the `trace-watchdog` lease. Each replica
 * builds the layer; the one holding the lease sweeps at once and then every `SG_SWEEP_INTERVAL`, the others wait
 * their turn. A failed or defective sweep is logged and the next tick runs; a sweep fenced out by a newer leader
 * (`LeaseLost`) writes nothing and ends just that sweep.
 */
import { LeaderElection } from "@sg/leader"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { SweepReport, TraceStore } from "./TraceStore.js"
import { InvalidTraceInput } from "./TraceStoreError.js"

/** The last sweep this process ran. */
export const LastSweep = Schema.Struct({
  /** When it ended (ISO-8601). */
  at: Schema.String,
  /** Whether it completed; a failed sweep has `error` instead of a full report. */
  ok: Schema.Boolean,
  report: Schema.NullOr(SweepReport),
  error: Schema.NullOr(Schema.String)
})

/** The last sweep this process ran. */
export type LastSweep = typeof LastSweep.Type

/** What `/api/status` shows of the watchdog. */
export const Status = Schema.Struct({
  /** Whether this process holds the watchdog lease now. */
  leader: Schema.Boolean,
  /** The fencing epoch of the current term, or null when not leading. */
  epoch: Schema.NullOr(Schema.Number),
  last_sweep: Schema.NullOr(LastSweep)
})

/** What `/api/status` shows of the watchdog. */
export type Status = typeof Status.Type

/** The running watchdog. */
export interface Service {
  readonly status: Effect.Effect<Status>
}

/** The running watchdog. */
export class TraceWatchdog extends Context.Tag("@sg/trace/TraceWatchdog")<TraceWatchdog, Service>() {}

/** The lease the watchdog runs under: `<prefix>:lease:trace-watchdog`. */
export const leaseName = "trace-watchdog"

/** How the watchdog runs. */
export interface Options {
  /** Time from the end of one sweep to the start of the next: 5 minutes (`SG_SWEEP_INTERVAL`). Must be positive. */
  readonly interval: Duration.DurationInput
}

/** DESIGN.md's defaults. */
export const defaults: Options = { interval: Duration.minutes(5) }

/** `SG_SWEEP_INTERVAL` (5 minutes), through `Config`. */
export const config: Config.Config<Duration.Duration> = Config.duration("SG_SWEEP_INTERVAL").pipe(
  Config.withDefault(Duration.minutes(5)),
  Config.mapOrFail((interval) =>
    Duration.greaterThan(interval, Duration.zero)
      ? Either.right(interval)
      : Either.left(ConfigError.InvalidData(["SG_SWEEP_INTERVAL"], "must be longer than zero"))
  ),
  Config.withDescription("time between two orphan sweeps of the watchdog, e.g. \"5 minutes\"")
)

/** Sweeps run (each attempt, completed or failed). */
export const sweepsTotal = Metric.counter("sg_watchdog_sweeps_total", {
  description: "orphan sweeps this process ran",
  incremental: true
})

/** Sweeps that failed or died (including those fenced out by a newer leader). */
export const sweepFailuresTotal = Metric.counter("sg_watchdog_sweep_failures_total", {
  description: "orphan sweeps that failed or died",
  incremental: true
})

/** Orphans made ERRORED by this process' sweeps. */
export const orphansRetiredTotal = Metric.counter("sg_watchdog_orphans_retired_total", {
  description: "orphaned traces retired (made ERRORED) by the watchdog",
  incremental: true
})

/** Active-set ids whose hash was gone, removed by this process' sweeps. */
export const missingRemovedTotal = Metric.counter("sg_watchdog_missing_removed_total", {
  description: "ids removed from the active set because their trace hash was gone",
  incremental: true
})

/** Ids removed from the active set because their trace was already terminal (a writer that did not SREM). */
export const terminalRemovedTotal = Metric.counter("sg_watchdog_terminal_removed_total", {
  description: "ids removed from the active set because their trace was already COMPLETED or ERRORED",
  incremental: true
})

/** How long each sweep took, in seconds (buckets from 1 ms to about 9 minutes). */
export const sweepDuration = Metric.histogram(
  "sg_watchdog_sweep_duration_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 20 }),
  "wall time of one orphan sweep, in seconds"
)

/** The size of the active set (SCARD) after the last sweep. */
export const tracesActive = Metric.gauge("sg_traces_active", {
  description: "traces in flight (size of the active set) after the last sweep"
})

/** `<tag>: <message>` for a typed failure, `defect: <message>` for a defect. */
const describeCause = (cause: Cause.Cause<{ readonly _tag: string; readonly message: string }>): string =>
  Option.match(Cause.failureOption(cause), {
    onSome: (error) => `${error._tag}: ${error.message}`,
    onNone: () => {
      if (Cause.isInterruptedOnly(cause)) return "interrupted"
      const defect = Cause.squash(cause)
      return `defect: ${defect instanceof Error ? defect.message : String(defect)}`
    }
  })

const annotate = Effect.annotateLogs({ package: "@sg/trace", fiber: "TraceWatchdog" })

const endedAt = Effect.map(Clock.currentTimeMillis, (millis) => DateTime.formatIso(DateTime.unsafeMake(millis)))

/**
 * The watchdog over the `TraceStore` and `LeaderElection` in context: forks, into the scope, the sweep loop under
 * `runWhileLeader("trace-watchdog", …)`: one sweep as soon as the lease is won, then one every `interval` after the
 * previous one ended, while the lease is held. Closing the scope interrupts the loop and releases the lease.
 */
export const make = (
  options?: Partial<Options>
): Effect.Effect<Service, InvalidTraceInput, TraceStore | LeaderElection.LeaderElection | Scope.Scope> =>
  Effect.gen(function*() {
    const interval = Duration.decode(options?.interval ?? defaults.interval)
    if (!Duration.greaterThan(interval, Duration.zero)) {
      return yield* new InvalidTraceInput({
        field: "interval",
        message: `the watchdog's interval must be longer than zero, not ${Duration.format(interval)}`
      })
    }
    const store = yield* TraceStore
    const election = yield* LeaderElection.LeaderElection
    const last = yield* Ref.make<LastSweep | null>(null)
    const every = Duration.format(interval)

    const recordActive = store.activeCount.pipe(
      Effect.flatMap((count) => Metric.set(tracesActive, count)),
      Effect.catchAll((error) => Effect.logWarning(`cannot read the size of the active set: ${error.message}`))
    )

    const succeeded = (report: SweepReport) =>
      Effect.gen(function*() {
        yield* Metric.incrementBy(orphansRetiredTotal, report.orphaned)
        yield* Metric.incrementBy(missingRemovedTotal, report.removed_missing)
        yield* Metric.incrementBy(terminalRemovedTotal, report.removed_terminal)
        yield* Ref.set(last, { at: yield* endedAt, ok: true, report, error: null })
        yield* Effect.logInfo(
          `sweep done: ${report.scanned} scanned, ${report.orphaned} orphaned, ${report.removed_missing} missing ` +
            `and ${report.removed_terminal} terminal removed, ${report.skipped_unreadable} unreadable skipped in ${report.duration_ms} ms`
        )
      })

    // A failure or a defect ends this sweep only: logged with its cause, and the schedule goes on.
    const failed = (cause: Cause.Cause<{ readonly _tag: string; readonly message: string }>) =>
      Effect.gen(function*() {
        yield* Metric.increment(sweepFailuresTotal)
        const error = describeCause(cause)
        yield* Ref.set(last, { at: yield* endedAt, ok: false, report: null, error })
        const fenced = Option.exists(Cause.failureOption(cause), (e) => e._tag === "LeaseLost")
        yield* fenced
          ? Effect.logWarning("sweep fenced out by a newer leader: nothing written", cause)
          : Effect.logError(`sweep failed; the next one runs in ${every}`, cause)
      })

    const tick = Effect.gen(function*() {
      const started = yield* Clock.currentTimeMillis
      yield* Metric.increment(sweepsTotal)
      yield* store.sweepOrphans().pipe(Effect.matchCauseEffect({ onFailure: failed, onSuccess: succeeded }))
      yield* Metric.update(sweepDuration, ((yield* Clock.currentTimeMillis) - started) / 1000)
      yield* recordActive
    }).pipe(Effect.catchAllCause((cause) => Effect.logError("sweep bookkeeping failed", cause)))

    const loop = Effect.repeat(tick, Schedule.spaced(interval))

    // The counters exist from the start, at 0, so a scrape sees them before the first sweep or failure.
    yield* Effect.all([
      Metric.incrementBy(sweepsTotal, 0),
      Metric.incrementBy(sweepFailuresTotal, 0),
      Metric.incrementBy(orphansRetiredTotal, 0),
      Metric.incrementBy(missingRemovedTotal, 0)
    ], { discard: true })
    yield* Effect.addFinalizer(() => annotate(Effect.logInfo("watchdog stopped")))
    yield* Effect.logInfo(`watchdog started: sweeping every ${every} while this process holds the ${leaseName} lease`)
    yield* election.runWhileLeader(leaseName, loop).pipe(
      // The loop never fails and the lease name is valid, so this only reports the impossible.
      Effect.catchAllCause((cause) => Effect.logError("the watchdog loop ended", cause)),
      Effect.interruptible,
      Effect.forkScoped
    )

    return TraceWatchdog.of({
      status: Effect.zipWith(election.status(leaseName), Ref.get(last), (lease, last_sweep) => ({
        leader: lease.leader,
        epoch: lease.leader ? lease.epoch : null,
        last_sweep
      }))
    })
  }).pipe(annotate)

/** The watchdog with the given options (DESIGN.md's defaults for the rest). */
export const layer = (
  options?: Partial<Options>
): Layer.Layer<TraceWatchdog, InvalidTraceInput, TraceStore | LeaderElection.LeaderElection> =>
  Layer.scoped(TraceWatchdog, make(options))

/** The watchdog configured from the environment (`SG_SWEEP_INTERVAL`). */
export const layerConfig: Layer.Layer<
  TraceWatchdog,
  ConfigError.ConfigError | InvalidTraceInput,
  TraceStore | LeaderElection.LeaderElection
> = Layer.scoped(TraceWatchdog, Effect.flatMap(config, (interval) => make({ interval })))
