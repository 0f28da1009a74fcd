import { describe, expect, it } from "@effect/vitest"
import { LeaderElection, LeaseStore } from "@sg/leader"
import {
  Cause,
  Clock,
  ConfigProvider,
  Duration,
  Effect,
  Exit,
  HashMap,
  Logger,
  Metric,
  Option,
  Ref,
  Schema,
  Scope,
  TestClock
} from "effect"
import * as TraceStore from "../src/TraceStore.js"
import { LeaseLost, TraceStoreUnavailable } from "../src/TraceStoreError.js"
import * as TraceWatchdog from "../src/TraceWatchdog.js"
import { nextTraceId } from "./utils/ids.js"
import { memory, StoreKit } from "./utils/StoreKit.js"

/** One log line with its cause, rendered. */
interface Line {
  readonly level: string
  readonly message: string
  readonly cause: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/** A logger that records every line (with its cause) into `lines`, in place of the default one. */
const collect = (lines: Array<Line>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, cause, logLevel, message }) => {
      lines.push({
        level: logLevel.label,
        message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
        cause: Cause.isEmpty(cause) ? "" : Cause.pretty(cause),
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    })
  )

type Fault = "fail" | "die" | "lease-lost"

interface Sweep {
  readonly who: string
  readonly at: number
}

/** The store, with every sweep it starts recorded (who, when), and the next faults it should meet. */
const recording = (
  store: TraceStore.Service,
  who: string,
  sweeps: Ref.Ref<ReadonlyArray<Sweep>>,
  faults: Ref.Ref<ReadonlyArray<Fault>> | undefined
): TraceStore.Service => ({
  ...store,
  sweepOrphans: (options) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      yield* Ref.update(sweeps, (all) => [...all, { who, at }])
      const fault = faults === undefined
        ? undefined
        : yield* Ref.modify(faults, ([first, ...rest]) => [first, rest] as const)
      if (fault === "fail") {
        return yield* new TraceStoreUnavailable({ operation: "SSCAN", message: "connection refused" })
      }
      if (fault === "die") return yield* Effect.dieMessage("the sweep hit a bug")
      if (fault === "lease-lost") {
        return yield* new LeaseLost({ lease: "trace-watchdog", epoch: 1, message: "a newer leader holds the lease" })
      }
      return yield* store.sweepOrphans(options)
    })
})

/** A fleet in one process: one memory lease store and one memory trace store, shared by every watchdog started. */
const makeFleet = Effect.gen(function*() {
  const leases = yield* LeaseStore.makeMemory
  const [store, kit] = yield* Effect.provide(Effect.all([TraceStore.TraceStore, StoreKit]), memory)
  const sweeps = yield* Ref.make<ReadonlyArray<Sweep>>([])

  /** Starts a watchdog named `who` in a scope of its own. */
  const start = (who: string, options?: {
    readonly faults?: Ref.Ref<ReadonlyArray<Fault>>
    readonly interval?: Duration.DurationInput
  }) =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      // A 1-minute lease (renewals every 20 s, attempts every 8 s) keeps TestClock's work small.
      const election = yield* LeaderElection.make({ identity: who, ttl: "1 minute" }).pipe(
        Effect.provideService(LeaseStore.LeaseStore, leases)
      )
      const watchdog = yield* TraceWatchdog.make(
        options?.interval === undefined ? undefined : { interval: options.interval }
      ).pipe(
        Effect.provideService(LeaderElection.LeaderElection, election),
        Effect.provideService(TraceStore.TraceStore, recording(store, who, sweeps, options?.faults)),
        Scope.extend(scope)
      )
      yield* TestClock.adjust(0)
      return { election, watchdog, close: Scope.close(scope, Exit.void) }
    })

  return { leases, store, kit, sweeps, start }
})

const counterValue = (counter: Metric.Metric.Counter<number>) => Effect.map(Metric.value(counter), (s) => s.count)

describe("TraceWatchdog (memory, TestClock)", () => {
  it.effect("the leader sweeps at once and every 5 minutes (0, 5, 10 minutes); the follower never does", () =>
    Effect.gen(function*() {
      const fleet = yield* makeFleet
      const a = yield* fleet.start("a")
      const b = yield* fleet.start("b")
      yield* TestClock.adjust("10 minutes")
      expect(yield* Ref.get(fleet.sweeps)).toEqual([
        { who: "a", at: 0 },
        { who: "a", at: 300_000 },
        { who: "a", at: 600_000 }
      ])
      expect((yield* b.watchdog.status).leader).toBe(false)
      yield* b.close
      yield* a.close
    }))

  it.effect("an orphan aged past 30 minutes is retired by the next sweep, and the metrics count it", () =>
    Effect.gen(function*() {
      const fleet = yield* makeFleet
      const before = {
        sweeps: yield* counterValue(TraceWatchdog.sweepsTotal),
        orphans: yield* counterValue(TraceWatchdog.orphansRetiredTotal),
        missing: yield* counterValue(TraceWatchdog.missingRemovedTotal),
        failures: yield* counterValue(TraceWatchdog.sweepFailuresTotal),
        durations: (yield* Metric.value(TraceWatchdog.sweepDuration)).count
      }
      const a = yield* fleet.start("a")
      yield* TestClock.adjust("1 minute")
      const orphan = nextTraceId()
      const gone = nextTraceId()
      yield* fleet.store.create(orphan, "INFERRING")
      yield* fleet.store.create(gone, "RECEIVED")
      yield* fleet.kit.dropHash(gone)
      yield* TestClock.adjust("4 minutes")
      expect(yield* fleet.store.isActive(gone)).toBe(false)
      expect((yield* a.watchdog.status).last_sweep?.report).toMatchObject({ removed_missing: 1, orphaned: 0 })
      // The sweep at 30 minutes (the orphan is 29 minutes old) leaves it alone; the one at 35 retires it.
      yield* TestClock.adjust("25 minutes")
      const fresh = nextTraceId()
      yield* fleet.store.create(fresh, "RECEIVED")
      expect(Option.getOrThrow(yield* fleet.store.get(orphan)).state).toBe("INFERRING")
      yield* TestClock.adjust("5 minutes")
      const record = Option.getOrThrow(yield* fleet.store.get(orphan))
      expect(record.state).toBe("ERRORED")
      expect(record.fields["error"]).toBe("orphaned")
      expect(yield* fleet.store.isActive(orphan)).toBe(false)
      expect(yield* fleet.store.isActive(fresh)).toBe(true)
      expect((yield* a.watchdog.status).last_sweep).toEqual({
        at: "1970-01-01T00:35:00.000Z",
        ok: true,
        report: { scanned: 2, removed_missing: 0, removed_terminal: 0, orphaned: 1, skipped_unreadable: 0, duration_ms: 0 },
        error: null
      })
      // Sweeps at 0, 5, ..., 35 minutes.
      expect(yield* counterValue(TraceWatchdog.sweepsTotal)).toBe(before.sweeps + 8)
      expect(yield* counterValue(TraceWatchdog.orphansRetiredTotal)).toBe(before.orphans + 1)
      expect(yield* counterValue(TraceWatchdog.missingRemovedTotal)).toBe(before.missing + 1)
      expect(yield* counterValue(TraceWatchdog.sweepFailuresTotal)).toBe(before.failures)
      expect((yield* Metric.value(TraceWatchdog.sweepDuration)).count).toBe(before.durations + 8)
      expect((yield* Metric.value(TraceWatchdog.tracesActive)).value).toBe(1)
      yield* a.close
    }))

  it.effect("a failed sweep and a dying sweep are logged with their cause, and the next tick still runs", () => {
    const lines: Array<Line> = []
    return Effect.gen(function*() {
      const fleet = yield* makeFleet
      const failures = yield* counterValue(TraceWatchdog.sweepFailuresTotal)
      const faults = yield* Ref.make<ReadonlyArray<Fault>>(["fail", "die"])
      const a = yield* fleet.start("a", { faults })
      expect((yield* a.watchdog.status).last_sweep).toMatchObject({
        ok: false,
        report: null,
        error: "TraceStoreUnavailable: connection refused"
      })
      yield* TestClock.adjust("5 minutes")
      expect((yield* a.watchdog.status).last_sweep).toMatchObject({ ok: false, error: "defect: the sweep hit a bug" })
      yield* TestClock.adjust("5 minutes")
      expect((yield* a.watchdog.status).last_sweep).toMatchObject({ ok: true, error: null })
      expect((yield* Ref.get(fleet.sweeps)).map((s) => s.at)).toEqual([0, 300_000, 600_000])
      expect(yield* counterValue(TraceWatchdog.sweepFailuresTotal)).toBe(failures + 2)
      // Still the leader: the election never saw the loop fail.
      expect((yield* a.watchdog.status).leader).toBe(true)
      yield* a.close

      const errors = lines.filter((line) => line.level === "ERROR")
      expect(errors).toHaveLength(2)
      expect(errors[0]!.message).toBe("sweep failed; the next one runs in 5m")
      expect(errors[0]!.cause).toContain("connection refused")
      expect(errors[1]!.cause).toContain("the sweep hit a bug")
      for (const line of errors) {
        expect(line.annotations).toMatchObject({ package: "@sg/trace", fiber: "TraceWatchdog" })
      }
      expect(lines.map((line) => line.message)).toContain("watchdog stopped")
    }).pipe(Effect.provide(collect(lines)))
  })

  it.effect("status reports leadership, the epoch of the term and the last sweep", () =>
    Effect.gen(function*() {
      const fleet = yield* makeFleet
      const a = yield* fleet.start("a")
      const b = yield* fleet.start("b")
      const report = { scanned: 0, removed_missing: 0, removed_terminal: 0, orphaned: 0, skipped_unreadable: 0, duration_ms: 0 }
      expect(yield* a.watchdog.status).toEqual({
        leader: true,
        epoch: 1,
        last_sweep: { at: "1970-01-01T00:00:00.000Z", ok: true, report, error: null }
      })
      expect(yield* b.watchdog.status).toEqual({ leader: false, epoch: null, last_sweep: null })
      // The status is what /api/status encodes.
      expect(Schema.encodeSync(TraceWatchdog.Status)(yield* a.watchdog.status)).toMatchObject({ epoch: 1 })
      yield* a.close
      yield* TestClock.adjust("8 seconds")
      expect(yield* b.watchdog.status).toEqual({
        leader: true,
        epoch: 2,
        last_sweep: { at: "1970-01-01T00:00:08.000Z", ok: true, report, error: null }
      })
      expect((yield* a.watchdog.status).leader).toBe(false)
      yield* b.close
    }))

  it.effect("closing the scope stops the loop and releases the lease; the follower takes over at its next try", () =>
    Effect.gen(function*() {
      const fleet = yield* makeFleet
      const a = yield* fleet.start("a")
      const b = yield* fleet.start("b")
      yield* TestClock.adjust("7 minutes")
      yield* a.close
      // Released at once, not left to lapse (a 1-minute lease).
      expect((yield* fleet.leases.read(TraceWatchdog.leaseName)).holder).toBeUndefined()
      // b tries every 8 s from 0: its next attempt is at 7 minutes 4 seconds, where it sweeps at once.
      yield* TestClock.adjust("604 seconds")
      expect(yield* Ref.get(fleet.sweeps)).toEqual([
        { who: "a", at: 0 },
        { who: "a", at: 300_000 },
        { who: "b", at: 424_000 },
        { who: "b", at: 724_000 },
        { who: "b", at: 1_024_000 }
      ])
      yield* b.close
      expect((yield* fleet.leases.read(TraceWatchdog.leaseName)).holder).toBeUndefined()
      yield* TestClock.adjust("20 minutes")
      expect(yield* Ref.get(fleet.sweeps)).toHaveLength(5)
    }))

  it.effect("a sweep fenced out (LeaseLost) is logged as a warning and ends just that sweep", () => {
    const lines: Array<Line> = []
    return Effect.gen(function*() {
      const fleet = yield* makeFleet
      const faults = yield* Ref.make<ReadonlyArray<Fault>>(["lease-lost"])
      const a = yield* fleet.start("a", { faults })
      expect((yield* a.watchdog.status).last_sweep).toMatchObject({
        ok: false,
        error: "LeaseLost: a newer leader holds the lease"
      })
      yield* TestClock.adjust("5 minutes")
      expect((yield* a.watchdog.status).last_sweep).toMatchObject({ ok: true })
      yield* a.close
      const fenced = lines.filter((line) => line.message.startsWith("sweep fenced out"))
      expect(fenced).toHaveLength(1)
      expect(fenced[0]!.level).toBe("WARN")
      expect(lines.filter((line) => line.level === "ERROR")).toEqual([])
    }).pipe(Effect.provide(collect(lines)))
  })

  describe("configuration", () => {
    const configured = (interval: string) =>
      Effect.gen(function*() {
        const sweeps = yield* Ref.make<ReadonlyArray<Sweep>>([])
        const store = recording(yield* TraceStore.makeMemory(), "a", sweeps, undefined)
        yield* Effect.gen(function*() {
          yield* TraceWatchdog.TraceWatchdog
          yield* TestClock.adjust("3 minutes")
        }).pipe(
          Effect.provide(TraceWatchdog.layerConfig),
          Effect.provide(LeaderElection.layerMemory({ ttl: "1 minute" })),
          Effect.provideService(TraceStore.TraceStore, store),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_SWEEP_INTERVAL", interval]])))
        )
        return (yield* Ref.get(sweeps)).map((sweep) => sweep.at)
      })

    it.effect("SG_SWEEP_INTERVAL sets the interval", () =>
      Effect.gen(function*() {
        expect(yield* configured("1 minute")).toEqual([0, 60_000, 120_000, 180_000])
      }))

    it.effect.each(["0 seconds", "soon"])("SG_SWEEP_INTERVAL=%s is refused with an error naming it", (value) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(configured(value))
        expect(error._tag).toBe("ConfigError")
        expect(String(error)).toContain("SG_SWEEP_INTERVAL")
      }))

    it.effect("the default interval is 5 minutes; a non-positive interval given in code is refused", () =>
      Effect.gen(function*() {
        expect(Duration.toMinutes(yield* TraceWatchdog.config)).toBe(5)
        const error = yield* Effect.flip(
          TraceWatchdog.make({ interval: 0 }).pipe(
            Effect.provide(LeaderElection.layerMemory()),
            Effect.provide(TraceStore.layerMemory),
            Effect.scoped
          )
        )
        expect(error).toMatchObject({ _tag: "InvalidTraceInput", field: "interval" })
      }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))))
  })
})
