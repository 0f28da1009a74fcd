import { describe, expect, it } from "@effect/vitest"
import { InvalidLeaseConfig, LeaderElection, Lease, LeaseStore } from "@sg/leader"
import {
  Clock,
  ConfigProvider,
  Duration,
  Effect,
  Exit,
  Fiber,
  HashMap,
  Logger,
  Metric,
  Option,
  Ref,
  Schedule,
  TestClock
} from "effect"
import * as Os from "node:os"
import { uniqueName } from "./utils/conformance.js"
import { type Fault, faulty } from "./utils/faultyStore.js"
import { makeTermLog, overlaps, recordTerm } from "./utils/terms.js"

describe("LeaderElection (memory)", () => {
  // Each test has its own store and a TestClock starting at 0.
  describe("under TestClock", () => {
    /** An elector over the shared store, optionally through a faulty wrapper. */
    const elector = (identity: string, store?: LeaseStore.Service) =>
      Effect.gen(function*() {
        const shared = yield* LeaseStore.LeaseStore
        return yield* LeaderElection.make({ identity }).pipe(
          Effect.provideService(LeaseStore.LeaseStore, store ?? shared)
        )
      })

    it.effect("work every 5 minutes runs at 0, 5 and 10 minutes on the leader, never on the follower", () =>
      Effect.gen(function*() {
        const name = uniqueName("cadence")
        const runs = yield* Ref.make<ReadonlyArray<readonly [string, number]>>([])
        const work = (id: string) =>
          Clock.currentTimeMillis.pipe(
            Effect.flatMap((at) => Ref.update(runs, (all) => [...all, [id, at] as const])),
            Effect.repeat(Schedule.spaced("5 minutes"))
          )
        const a = yield* elector("a")
        const b = yield* elector("b")
        yield* Effect.fork(a.runWhileLeader(name, work("a")))
        yield* TestClock.adjust(0)
        yield* Effect.fork(b.runWhileLeader(name, work("b")))
        yield* TestClock.adjust("10 minutes")
        expect(yield* Ref.get(runs)).toEqual([["a", 0], ["a", 300_000], ["a", 600_000]])
        expect(yield* b.isLeader(name)).toBe(false)
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    /** A leader meets `fault` at 1 s: it steps down at its 10 s deadline; b takes over once the lease lapsed. */
    const stepsDownBeforeItsTtl = (fault: Fault) =>
      Effect.gen(function*() {
        const store = yield* LeaseStore.LeaseStore
        const name = uniqueName(`step-down-${fault}`)
        const log = yield* makeTermLog
        const broken = yield* faulty(store)
        const a = yield* elector("a", broken.store)
        const b = yield* elector("b")
        const fa = yield* Effect.fork(a.runWhileLeader(name, recordTerm(log, "a")))
        yield* TestClock.adjust(0)
        const fb = yield* Effect.fork(b.runWhileLeader(name, recordTerm(log, "b")))
        yield* TestClock.adjust("1 second")
        yield* broken.set(fault)
        yield* TestClock.adjust("9 seconds")
        // Renewals at 5, 7 and 9 s got no good answer; at the 10 s deadline the effect is interrupted: 5 s before
        // the lease (acquired at 0) can lapse.
        const [first] = yield* Ref.get(log)
        expect(first).toMatchObject({ elector: "a", start: 0, end: 10_000 })
        expect(yield* a.isLeader(name)).toBe(false)
        expect(yield* b.isLeader(name)).toBe(false)
        yield* TestClock.adjust("6 seconds")
        const [, second] = yield* Ref.get(log)
        // The lease lapsed at 15 s; b's next attempt (every 2 s) is at 16 s.
        expect(second).toMatchObject({ elector: "b", start: 16_000, end: undefined, epoch: first!.epoch + 1 })
        // The store recovers for a; once b steps aside, a wins again.
        yield* broken.set("none")
        yield* TestClock.adjust("10 seconds")
        yield* Fiber.interrupt(fb)
        yield* TestClock.adjust("2 seconds")
        const terms = yield* Ref.get(log)
        expect(terms.map((t) => t.elector)).toEqual(["a", "b", "a"])
        expect(terms[2]!.epoch).toBe(first!.epoch + 2)
        expect(overlaps(terms)).toEqual([])
        yield* Fiber.interrupt(fa)
      })

    it.effect("a leader whose renewals fail interrupts its effect before its TTL; a follower takes over after", () =>
      stepsDownBeforeItsTtl("fail").pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("a leader whose store call hangs forever interrupts its effect before its TTL all the same", () =>
      stepsDownBeforeItsTtl("hang").pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("a leader whose renewal replies are lost steps down at its deadline all the same", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore.LeaseStore
        const name = uniqueName("lost-replies")
        const log = yield* makeTermLog
        const broken = yield* faulty(store)
        const a = yield* elector("a", broken.store)
        const b = yield* elector("b")
        const fa = yield* Effect.fork(a.runWhileLeader(name, recordTerm(log, "a")))
        yield* TestClock.adjust(0)
        const fb = yield* Effect.fork(b.runWhileLeader(name, recordTerm(log, "b")))
        yield* TestClock.adjust("1 second")
        yield* broken.set("lose-reply")
        yield* TestClock.adjust("9 seconds")
        // The store did renew, but a never heard so: it cannot know, and steps down at its deadline.
        expect((yield* Ref.get(log))[0]).toMatchObject({ elector: "a", start: 0, end: 10_000 })
        yield* TestClock.adjust("30 seconds")
        yield* broken.set("none")
        yield* TestClock.adjust("30 seconds")
        yield* Fiber.interrupt(fa)
        yield* TestClock.adjust("30 seconds")
        yield* Fiber.interrupt(fb)
        const terms = yield* Ref.get(log)
        expect(terms.length).toBeGreaterThanOrEqual(2)
        expect(overlaps(terms)).toEqual([])
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("reacquires after the lease store recovers, with a larger epoch", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore.LeaseStore
        const name = uniqueName("recover")
        const log = yield* makeTermLog
        const broken = yield* faulty(store)
        const a = yield* elector("a", broken.store)
        const fa = yield* Effect.fork(a.runWhileLeader(name, recordTerm(log, "a")))
        yield* TestClock.adjust(0)
        expect(yield* a.isLeader(name)).toBe(true)
        yield* broken.set("fail")
        yield* TestClock.adjust("30 seconds")
        expect(yield* a.isLeader(name)).toBe(false)
        yield* broken.set("none")
        yield* TestClock.adjust("2 seconds")
        expect(yield* a.isLeader(name)).toBe(true)
        const terms = yield* Ref.get(log)
        expect(terms.map((t) => [t.epoch, t.start, t.end])).toEqual([[1, 0, 10_000], [2, 32_000, undefined]])
        yield* Fiber.interrupt(fa)
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("a leader the store says no longer holds the lease steps down at its next renewal", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore.LeaseStore
        const name = uniqueName("taken")
        const log = yield* makeTermLog
        const a = yield* elector("a")
        const fa = yield* Effect.fork(a.runWhileLeader(name, recordTerm(log, "a")))
        yield* TestClock.adjust("1 second")
        const [held] = yield* Ref.get(log)
        // Someone frees the lease behind a's back and takes it.
        yield* store.release(name, held!.token)
        yield* store.tryAcquire(name, "intruder", 15_000, 0)
        yield* TestClock.adjust("4 seconds")
        expect((yield* Ref.get(log))[0]!.end).toBe(5_000)
        expect(yield* a.isLeader(name)).toBe(false)
        // The intruder never renews: a wins again once its lease lapses at 16 s.
        yield* TestClock.adjust("12 seconds")
        const terms = yield* Ref.get(log)
        expect(terms.map((t) => t.epoch)).toEqual([1, 3])
        expect(terms[1]!.start).toBeGreaterThanOrEqual(16_000)
        yield* Fiber.interrupt(fa)
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("five electors under random faults and restarts: terms never overlap, epochs strictly increase", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore.LeaseStore
        const name = uniqueName("crowd")
        const log = yield* makeTermLog
        const electors = yield* Effect.forEach([0, 1, 2, 3, 4], (i) =>
          Effect.gen(function*() {
            const broken = yield* faulty(store)
            const election = yield* elector(`e${i}`, broken.store)
            return { id: `e${i}`, broken, election }
          }))
        const start = (i: number) =>
          Effect.fork(electors[i]!.election.runWhileLeader(name, recordTerm(log, electors[i]!.id)))
        const fibers = yield* Effect.forEach([0, 1, 2, 3, 4], start)
        let seed = 20251123
        const random = (n: number) => {
          seed = (seed * 1103515245 + 12345) % 2147483648
          return seed % n
        }
        const faults: ReadonlyArray<Fault> = ["fail", "hang", "lose-reply"]
        let crashed: number | undefined
        for (let round = 0; round < 40; round++) {
          yield* TestClock.adjust(Duration.seconds(1 + random(12)))
          if (crashed !== undefined) {
            fibers[crashed] = yield* start(crashed)
            crashed = undefined
          }
          const action = random(6)
          const leader = electors.findIndex((e) => Effect.runSync(e.election.isLeader(name)))
          if (action === 0 && leader >= 0) {
            // The leader's process stops (its scope closes) and comes back a round later.
            yield* Fiber.interrupt(fibers[leader]!)
            crashed = leader
          } else if (action === 1 && leader >= 0) {
            yield* electors[leader]!.broken.set(faults[random(faults.length)]!)
          } else {
            yield* electors[random(5)]!.broken.set("none")
          }
        }
        if (crashed !== undefined) fibers[crashed] = yield* start(crashed)
        yield* Effect.forEach(electors, (e) => e.broken.set("none"))
        yield* TestClock.adjust("1 minute")
        yield* Effect.forEach(fibers, Fiber.interrupt)
        const terms = yield* Ref.get(log)
        expect(overlaps(terms)).toEqual([])
        expect(terms.length).toBeGreaterThanOrEqual(8)
        expect(new Set(terms.map((t) => t.elector)).size).toBeGreaterThanOrEqual(3)
        expect(terms.every((t) => t.end !== undefined)).toBe(true)
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("an acquire whose reply was lost still leads to one term with the epoch the store gave", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore.LeaseStore
        const name = uniqueName("lost-acquire")
        const log = yield* makeTermLog
        const broken = yield* faulty(store)
        yield* broken.set("lose-reply")
        const a = yield* elector("a", broken.store)
        const fa = yield* Effect.fork(a.runWhileLeader(name, recordTerm(log, "a")))
        yield* TestClock.adjust(0)
        expect((yield* store.read(name)).epoch).toBe(1)
        expect(yield* a.isLeader(name)).toBe(false)
        yield* broken.set("none")
        yield* TestClock.adjust("2 seconds")
        expect((yield* Ref.get(log)).map((t) => [t.epoch, t.start])).toEqual([[1, 2_000]])
        yield* Fiber.interrupt(fa)
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("closing the scope while the store hangs still ends within one retry period", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore.LeaseStore
        const name = uniqueName("hung-close")
        const broken = yield* faulty(store)
        const log = yield* makeTermLog
        const a = yield* elector("a", broken.store)
        const fa = yield* Effect.fork(a.runWhileLeader(name, recordTerm(log, "a")))
        yield* TestClock.adjust("1 second")
        yield* broken.set("hang")
        const closing = yield* Effect.fork(Fiber.interrupt(fa))
        yield* TestClock.adjust(0)
        expect((yield* Ref.get(log))[0]!.end).toBe(1_000)
        expect(Option.isNone(yield* Fiber.poll(closing))).toBe(true)
        yield* TestClock.adjust("2 seconds")
        const exit = yield* Fiber.await(closing)
        expect(Exit.isSuccess(exit)).toBe(true)
        expect(yield* a.isLeader(name)).toBe(false)
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("a log line on every gain and loss, with the lease name, token and epoch", () =>
      Effect.gen(function*() {
        type Line = { level: string; message: string; annotations: Record<string, unknown> }
        const lines = yield* Ref.make<ReadonlyArray<Line>>([])
        const capture = Logger.make(({ annotations, logLevel, message }) => {
          const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
          Effect.runSync(Ref.update(lines, (all) => [...all, {
            level: logLevel.label,
            message: text,
            annotations: Object.fromEntries(HashMap.toEntries(annotations))
          }]))
        })
        yield* Effect.gen(function*() {
          const store = yield* LeaseStore.LeaseStore
          const broken = yield* faulty(store)
          const name = uniqueName("logs")
          const a = yield* elector("a", broken.store)
          const fa = yield* Effect.fork(a.runWhileLeader(name, Effect.never))
          yield* TestClock.adjust("1 second")
          const { epoch, holder } = yield* a.status(name)
          yield* broken.set("fail")
          yield* TestClock.adjust("10 seconds")
          yield* Fiber.interrupt(fa)
          const events = (yield* Ref.get(lines)).filter((l) => l.message.startsWith("leadership"))
          expect(events).toEqual([
            {
              level: "INFO",
              message: "leadership acquired",
              annotations: { package: "@sg/leader", lease: name, token: holder, epoch }
            },
            {
              level: "WARN",
              message: "leadership lost: renew deadline passed",
              annotations: { package: "@sg/leader", lease: name, token: holder, epoch }
            }
          ])
          const warnings = (yield* Ref.get(lines)).filter((l) => l.message.startsWith("lease renewal failed"))
          expect(warnings.length).toBeGreaterThan(0)
        }).pipe(Effect.provide(Logger.add(capture)))
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("status and the leader gauge tell leader from follower", () =>
      Effect.gen(function*() {
        const name = uniqueName("status")
        const a = yield* elector("a")
        const b = yield* elector("b")
        expect(yield* a.status(name)).toEqual({
          name,
          leader: false,
          epoch: null,
          holder: null,
          since: null,
          lastRenewal: null,
          terms: 0
        })
        const fa = yield* Effect.fork(a.runWhileLeader(name, Effect.never))
        yield* TestClock.adjust("1 second")
        const fb = yield* Effect.fork(b.runWhileLeader(name, Effect.never))
        yield* TestClock.adjust("11 seconds")
        const leader = yield* a.status(name)
        expect(leader).toMatchObject({ leader: true, epoch: 1, since: 0, lastRenewal: 10_000, terms: 1 })
        expect(leader.holder).toMatch(/^a:[0-9a-f]{16}$/)
        expect(yield* b.status(name)).toMatchObject({ leader: false, epoch: 1, holder: leader.holder, terms: 0 })
        const gauge = Metric.tagged(LeaderElection.leaderGauge, "lease", name)
        expect((yield* Metric.value(gauge)).value).toBe(1)
        yield* Fiber.interrupt(fa)
        expect((yield* Metric.value(gauge)).value).toBe(0)
        expect(yield* a.status(name)).toMatchObject({ leader: false, since: null, terms: 1 })
        yield* Fiber.interrupt(fb)
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("a token is <hostname>:<pid>:<random> by default", () =>
      Effect.gen(function*() {
        const election = yield* LeaderElection.make()
        const token = yield* election.runWhileLeader(uniqueName("token"), Effect.map(Lease.Lease, (l) => l.token))
        expect(token.startsWith(`${Os.hostname()}:${process.pid}:`)).toBe(true)
        expect(token.slice(`${Os.hostname()}:${process.pid}:`.length)).toMatch(/^[0-9a-f]{16}$/)
      }).pipe(Effect.provide(LeaseStore.layerMemory)))
  })

  describe("configuration", () => {
    const refused = (options: Partial<LeaderElection.Options>) =>
      Effect.flip(LeaderElection.resolveOptions(options))

    it.effect("defaults are client-go's: lease 15 s, renew every 5 s, deadline 10 s, retry every 2 s", () =>
      Effect.gen(function*() {
        const options = yield* LeaderElection.resolveOptions()
        expect([options.ttl, options.renewInterval, options.renewDeadline, options.retryPeriod].map(Duration.toMillis))
          .toEqual([15_000, 5_000, 10_000, 2_000])
        const short = yield* LeaderElection.resolveOptions({ ttl: "3 seconds" })
        expect([short.ttl, short.renewInterval, short.renewDeadline, short.retryPeriod].map(Duration.toMillis))
          .toEqual([3_000, 1_000, 2_000, 400])
      }))

    it.effect("refuses a renew deadline not shorter than the TTL", () =>
      Effect.gen(function*() {
        const error = yield* refused({ ttl: "10 seconds", renewDeadline: "10 seconds" })
        expect(error).toBeInstanceOf(InvalidLeaseConfig)
        expect(error.message).toContain("the lease TTL (10s) must be longer than the renew deadline (10s)")
      }))

    it.effect("refuses a retry period not shorter than the renew deadline", () =>
      Effect.gen(function*() {
        const error = yield* refused({ renewDeadline: "2 seconds", retryPeriod: "2 seconds", renewInterval: 1_000 })
        expect(error.message).toContain("the renew deadline (2s) must be longer than the retry period (2s)")
      }))

    it.effect("refuses a renew interval not shorter than the renew deadline", () =>
      Effect.gen(function*() {
        const error = yield* refused({ renewInterval: "10 seconds" })
        expect(error.message).toContain("the renew interval (10s) must be shorter than the renew deadline (10s)")
      }))

    it.effect("refuses what is not a duration, zero, infinity, and an identity with spaces, naming each", () =>
      Effect.gen(function*() {
        const error = yield* refused({
          ttl: "soon" as Duration.DurationInput,
          retryPeriod: 0,
          renewInterval: Duration.infinity,
          identity: "my host"
        })
        expect(error.problems).toHaveLength(4)
        expect(error.message).toContain("ttl is not a duration: soon")
        expect(error.message).toContain("retryPeriod must be a finite duration of at least 1 millisecond")
        expect(error.message).toContain("renewInterval must be a finite duration")
        expect(error.message).toContain("identity must be non-empty and contain no spaces")
      }))

    it.effect("refuses a TTL so short that the timings derived from it fall under a millisecond", () =>
      Effect.gen(function*() {
        const error = yield* refused({ ttl: "1 millis" })
        expect(error.message).toContain("retryPeriod (derived from the TTL 1ms) is under 1 millisecond")
      }))

    it.effect("a bad lease name is refused with a clear error, before any campaign", () =>
      Effect.gen(function*() {
        const election = yield* LeaderElection.make()
        for (const name of ["", "has space", "a:b", "x".repeat(201)]) {
          const error = yield* Effect.flip(election.runWhileLeader(name, Effect.void))
          expect(error).toBeInstanceOf(InvalidLeaseConfig)
          expect(error.message).toContain("invalid lease name")
        }
      }).pipe(Effect.provide(LeaseStore.layerMemory)))

    it.effect("SG_LEASE_TTL sets the TTL (and the derived timings) unless the options give one", () =>
      Effect.gen(function*() {
        const fromEnv = yield* LeaderElection.LeaderElection.pipe(
          Effect.provide(LeaderElection.layerMemory()),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_LEASE_TTL", "3 seconds"]])))
        )
        expect(Duration.toMillis(fromEnv.options.ttl)).toBe(3_000)
        expect(Duration.toMillis(fromEnv.options.renewDeadline)).toBe(2_000)
        const defaulted = yield* LeaderElection.LeaderElection.pipe(
          Effect.provide(LeaderElection.layerMemory()),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
        )
        expect(Duration.toMillis(defaulted.options.ttl)).toBe(15_000)
        const given = yield* LeaderElection.LeaderElection.pipe(
          Effect.provide(LeaderElection.layerMemory({ ttl: "6 seconds" })),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_LEASE_TTL", "3 seconds"]])))
        )
        expect(Duration.toMillis(given.options.ttl)).toBe(6_000)
      }))

    it.effect("a bad SG_LEASE_TTL is a ConfigError naming it; one that clashes with the options is refused", () =>
      Effect.gen(function*() {
        const bad = yield* Effect.flip(LeaderElection.LeaderElection.pipe(
          Effect.provide(LeaderElection.layerMemory()),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_LEASE_TTL", "soon"]])))
        ))
        expect(String(bad)).toContain("SG_LEASE_TTL")
        const clash = yield* Effect.flip(LeaderElection.LeaderElection.pipe(
          Effect.provide(LeaderElection.layerMemory({ renewDeadline: "10 seconds" })),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_LEASE_TTL", "3 seconds"]])))
        ))
        expect(clash._tag).toBe("InvalidLeaseConfig")
        expect(clash.message).toContain("the lease TTL (3s) must be longer than the renew deadline (10s)")
      }))
  })
})
