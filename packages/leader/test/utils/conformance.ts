import type { Vitest } from "@effect/vitest"
import { expect } from "@effect/vitest"
import { LeaderElection, Lease, LeaseStore } from "@sg/leader"
import { Clock, Deferred, Duration, Effect, Fiber, Ref } from "effect"
import { faulty } from "./faultyStore.js"
import { makeTermLog, recordTerm } from "./terms.js"

/** How time passes for a backend: `TestClock.adjust` in memory, a real sleep against Redis. */
export interface Time {
  /** The lease TTL of the store-level tests (no background loops: it can be short). */
  readonly storeTtl: Duration.Duration
  /** The lease TTL of the election tests (renew interval, deadline and retry period are derived from it). */
  readonly electionTtl: Duration.Duration
  readonly advance: (duration: Duration.Duration) => Effect.Effect<void>
}

let counter = 0
/** A lease name no other test uses (the store is shared across a suite's tests). */
export const uniqueName = (label: string) => `${label}-${process.pid}-${++counter}`

/** Lets time pass in small steps until `condition` holds; fails the test if it takes longer than `within`. Returns
 * how long it took. */
export const waitUntil = (
  time: Time,
  condition: Effect.Effect<boolean>,
  within: Duration.Duration,
  what: string
): Effect.Effect<number> =>
  Effect.gen(function*() {
    const step = Duration.millis(Math.max(1, Duration.toMillis(time.electionTtl) / 30))
    const start = yield* Clock.currentTimeMillis
    while (!(yield* condition)) {
      const elapsed = (yield* Clock.currentTimeMillis) - start
      if (elapsed > Duration.toMillis(within)) {
        return yield* Effect.dieMessage(`${what} did not happen within ${Duration.format(within)}`)
      }
      yield* time.advance(step)
    }
    return (yield* Clock.currentTimeMillis) - start
  })

const scaled = (d: Duration.Duration, factor: number) => Duration.millis(Duration.toMillis(d) * factor)

/**
 * The lease store's contract (the scenarios of client-go's leaderelection table tests, etcd's election tests and
 * node-redlock's), and the election built on it, for a backend under `time`.
 */
export const leaseConformance = (it: Vitest.MethodsNonLive<LeaseStore.LeaseStore, boolean>, time: Time) => {
  const ttl = Duration.toMillis(time.storeTtl)

  it.effect("acquires a lease nobody holds, with epoch 1", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const name = uniqueName("free")
      expect(yield* store.read(name)).toEqual({ holder: undefined, epoch: 0 })
      expect(yield* store.tryAcquire(name, "a", ttl, 0)).toEqual({ acquired: true, epoch: 1, holder: "a" })
      expect(yield* store.read(name)).toEqual({ holder: "a", epoch: 1 })
    }))

  it.effect("does not take a fresh lease another holds", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const name = uniqueName("held")
      yield* store.tryAcquire(name, "a", ttl, 0)
      expect(yield* store.tryAcquire(name, "b", ttl, 0)).toEqual({ acquired: false, epoch: 1, holder: "a" })
      yield* time.advance(scaled(time.storeTtl, 0.5))
      expect(yield* store.tryAcquire(name, "b", ttl, 0)).toEqual({ acquired: false, epoch: 1, holder: "a" })
      expect(yield* store.read(name)).toEqual({ holder: "a", epoch: 1 })
    }))

  it.effect("takes over a lease not renewed for longer than its TTL, with a larger epoch", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const name = uniqueName("expired")
      yield* store.tryAcquire(name, "a", ttl, 0)
      yield* time.advance(scaled(time.storeTtl, 1.3))
      expect(yield* store.read(name)).toEqual({ holder: undefined, epoch: 1 })
      expect(yield* store.tryAcquire(name, "b", ttl, 0)).toEqual({ acquired: true, epoch: 2, holder: "b" })
      expect(yield* store.renew(name, "a", 1, ttl)).toBe(false)
      expect(yield* store.read(name)).toEqual({ holder: "b", epoch: 2 })
    }))

  it.effect("renews its own lease past the original TTL", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const name = uniqueName("renew")
      yield* store.tryAcquire(name, "a", ttl, 0)
      yield* time.advance(scaled(time.storeTtl, 0.6))
      expect(yield* store.renew(name, "a", 1, ttl)).toBe(true)
      yield* time.advance(scaled(time.storeTtl, 0.6))
      expect(yield* store.read(name)).toEqual({ holder: "a", epoch: 1 })
      expect((yield* store.tryAcquire(name, "b", ttl, 0)).acquired).toBe(false)
    }))

  it.effect("refuses to renew or release for another token or a stale epoch", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const name = uniqueName("refuse")
      yield* store.tryAcquire(name, "a", ttl, 0)
      expect(yield* store.renew(name, "b", 1, ttl)).toBe(false)
      expect(yield* store.renew(name, "a", 2, ttl)).toBe(false)
      expect(yield* store.release(name, "b")).toBe(false)
      expect(yield* store.read(name)).toEqual({ holder: "a", epoch: 1 })
    }))

  it.effect("a release frees the lease at once, and the next holder gets a larger epoch", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const name = uniqueName("release")
      yield* store.tryAcquire(name, "a", ttl, 0)
      expect(yield* store.release(name, "a")).toBe(true)
      expect(yield* store.read(name)).toEqual({ holder: undefined, epoch: 1 })
      expect(yield* store.tryAcquire(name, "b", ttl, 0)).toEqual({ acquired: true, epoch: 2, holder: "b" })
      expect(yield* store.release(name, "a")).toBe(false)
    }))

  it.effect("an acquire repeated by the holder (its first reply lost) extends the lease and keeps the epoch", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const name = uniqueName("repeat")
      yield* store.tryAcquire(name, "a", ttl, 0)
      yield* time.advance(scaled(time.storeTtl, 0.6))
      expect(yield* store.tryAcquire(name, "a", ttl, 0)).toEqual({ acquired: true, epoch: 1, holder: "a" })
      yield* time.advance(scaled(time.storeTtl, 0.6))
      expect(yield* store.read(name)).toEqual({ holder: "a", epoch: 1 })
    }))

  it.effect("the floor keeps epochs growing when the store's counter is behind (a store that lost its data)", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const name = uniqueName("floor")
      expect(yield* store.tryAcquire(name, "a", ttl, 41)).toEqual({ acquired: true, epoch: 42, holder: "a" })
      yield* store.release(name, "a")
      expect(yield* store.tryAcquire(name, "b", ttl, 0)).toEqual({ acquired: true, epoch: 43, holder: "b" })
    }))

  electionTests(it, time)
}

const electionTests = (it: Vitest.MethodsNonLive<LeaseStore.LeaseStore, boolean>, time: Time) => {
  const options = (identity: string) => ({ ttl: time.electionTtl, identity })
  const ttl = time.electionTtl

  it.effect("the elector that acquires runs the effect with its token and epoch; the lease is really held", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const election = yield* LeaderElection.make(options("solo"))
      const name = uniqueName("run")
      const seen = yield* Deferred.make<Lease.Service>()
      const fiber = yield* Effect.fork(election.runWhileLeader(
        name,
        Effect.flatMap(Lease.Lease, (lease) => Effect.zipRight(Deferred.succeed(seen, lease), Effect.never))
      ))
      yield* waitUntil(time, Deferred.isDone(seen), ttl, "acquisition")
      const lease = yield* Deferred.await(seen)
      expect(lease.name).toBe(name)
      expect(lease.token).toMatch(/^solo:[0-9a-f]{16}$/)
      expect(lease.epoch).toBeGreaterThanOrEqual(1)
      expect(yield* lease.stillHeld).toBe(true)
      expect(yield* store.read(name)).toEqual({ holder: lease.token, epoch: lease.epoch })
      const status = yield* election.status(name)
      expect(status).toMatchObject({ name, leader: true, epoch: lease.epoch, holder: lease.token, terms: 1 })
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("a follower never runs its effect while the leader keeps renewing", () =>
    Effect.gen(function*() {
      const a = yield* LeaderElection.make(options("a"))
      const b = yield* LeaderElection.make(options("b"))
      const name = uniqueName("follow")
      const log = yield* makeTermLog
      const fa = yield* Effect.fork(a.runWhileLeader(name, recordTerm(log, "a")))
      yield* waitUntil(time, a.isLeader(name), ttl, "a leading")
      const fb = yield* Effect.fork(b.runWhileLeader(name, recordTerm(log, "b")))
      yield* time.advance(scaled(ttl, 2.5))
      const terms = yield* Ref.get(log)
      expect(terms.map((t) => t.elector)).toEqual(["a"])
      expect(terms[0]!.end).toBeUndefined()
      const follower = yield* b.status(name)
      expect(follower).toMatchObject({ leader: false, holder: terms[0]!.token, epoch: terms[0]!.epoch, terms: 0 })
      yield* Fiber.interrupt(fb)
      yield* Fiber.interrupt(fa)
    }))

  it.effect("closing the leader's scope releases the lease: a follower takes over at once, with a larger epoch", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const a = yield* LeaderElection.make(options("a"))
      const b = yield* LeaderElection.make(options("b"))
      const name = uniqueName("handover")
      const log = yield* makeTermLog
      const fa = yield* Effect.fork(a.runWhileLeader(name, recordTerm(log, "a")))
      yield* waitUntil(time, a.isLeader(name), ttl, "a leading")
      const fb = yield* Effect.fork(b.runWhileLeader(name, recordTerm(log, "b")))
      yield* time.advance(scaled(ttl, 0.5))
      yield* Fiber.interrupt(fa)
      expect(yield* a.isLeader(name)).toBe(false)
      // Without the release b would wait for the lease to lapse: at least TTL - renew interval = 2/3 of the TTL.
      const took = yield* waitUntil(time, b.isLeader(name), scaled(ttl, 0.45), "b taking over")
      expect(took).toBeLessThan(Duration.toMillis(ttl) * 0.45)
      const [ta, tb] = yield* Ref.get(log)
      expect(ta!.end).toBeLessThanOrEqual(tb!.start)
      expect(tb!.epoch).toBeGreaterThan(ta!.epoch)
      expect((yield* store.read(name)).holder).toBe(tb!.token)
      yield* Fiber.interrupt(fb)
    }))

  it.effect("takes over from a holder that stopped renewing, only once its lease has lapsed", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const b = yield* LeaderElection.make(options("b"))
      const name = uniqueName("dead")
      const dead = yield* store.tryAcquire(name, "dead-holder", Duration.toMillis(ttl), 0)
      const start = yield* Clock.currentTimeMillis
      const log = yield* makeTermLog
      const fb = yield* Effect.fork(b.runWhileLeader(name, recordTerm(log, "b")))
      yield* waitUntil(time, b.isLeader(name), scaled(ttl, 3), "b taking over")
      const [term] = yield* Ref.get(log)
      expect(term!.start - start).toBeGreaterThanOrEqual(Duration.toMillis(ttl))
      expect(term!.epoch).toBeGreaterThan(dead.epoch)
      yield* Fiber.interrupt(fb)
    }))

  it.effect("fencing epochs grow with every new holder, and an old lease no longer counts as held", () =>
    Effect.gen(function*() {
      const electors = yield* Effect.forEach(["a", "b", "c"], (id) => LeaderElection.make(options(id)))
      const name = uniqueName("epochs")
      const leases: Array<Lease.Service> = []
      for (const election of electors) {
        const seen = yield* Deferred.make<Lease.Service>()
        const fiber = yield* Effect.fork(election.runWhileLeader(
          name,
          Effect.flatMap(Lease.Lease, (lease) => Effect.zipRight(Deferred.succeed(seen, lease), Effect.never))
        ))
        yield* waitUntil(time, Deferred.isDone(seen), ttl, "acquisition")
        leases.push(yield* Deferred.await(seen))
        yield* Fiber.interrupt(fiber)
      }
      const epochs = leases.map((lease) => lease.epoch)
      expect(epochs[1]).toBeGreaterThan(epochs[0]!)
      expect(epochs[2]).toBeGreaterThan(epochs[1]!)
      expect(yield* Effect.forEach(leases, (lease) => lease.stillHeld)).toEqual([false, false, false])
    }))

  it.effect("when the effect completes, the lease is released and its result returned; a failure is returned too", () =>
    Effect.gen(function*() {
      const store = yield* LeaseStore.LeaseStore
      const election = yield* LeaderElection.make(options("done"))
      const name = uniqueName("done")
      const result = yield* election.runWhileLeader(name, Effect.map(Lease.Lease, (lease) => lease.epoch * 10))
      expect(result).toBe(10)
      expect(yield* store.read(name)).toEqual({ holder: undefined, epoch: 1 })
      expect(yield* election.isLeader(name)).toBe(false)
      const error = yield* Effect.flip(election.runWhileLeader(name, Effect.fail("boom" as const)))
      expect(error).toBe("boom")
      expect(yield* store.read(name)).toEqual({ holder: undefined, epoch: 2 })
      expect((yield* election.status(name)).terms).toBe(2)
    }))

  for (const fault of ["fail", "hang"] as const) {
    it.effect(`a leader whose store calls ${fault} interrupts its effect before its lease can lapse; a follower ` +
      "takes over after it, and it leads again once the store recovers", () =>
      Effect.gen(function*() {
        const store = yield* LeaseStore.LeaseStore
        const broken = yield* faulty(store)
        const a = yield* LeaderElection.make(options("a")).pipe(
          Effect.provideService(LeaseStore.LeaseStore, broken.store)
        )
        const b = yield* LeaderElection.make(options("b"))
        const name = uniqueName(`fault-${fault}`)
        const log = yield* makeTermLog
        const fa = yield* Effect.fork(a.runWhileLeader(name, recordTerm(log, "a")))
        yield* waitUntil(time, a.isLeader(name), ttl, "a leading")
        const fb = yield* Effect.fork(b.runWhileLeader(name, recordTerm(log, "b")))
        yield* time.advance(scaled(ttl, 0.1))
        yield* broken.set(fault)
        // The last renewal that succeeded was sent before this moment: the lease lasts at least a TTL from it.
        const lastRenewal = (yield* a.status(name)).lastRenewal!
        yield* waitUntil(time, b.isLeader(name), scaled(ttl, 2), "b taking over")
        const [ta, tb] = yield* Ref.get(log)
        expect(ta!.end).toBeDefined()
        expect(ta!.end!).toBeLessThan(lastRenewal + Duration.toMillis(ttl))
        expect(tb!.start).toBeGreaterThanOrEqual(ta!.end!)
        expect(tb!.epoch).toBeGreaterThan(ta!.epoch)
        yield* broken.set("none")
        yield* Fiber.interrupt(fb)
        yield* waitUntil(time, a.isLeader(name), ttl, "a leading again")
        const terms = yield* Ref.get(log)
        expect(terms.map((t) => t.elector)).toEqual(["a", "b", "a"])
        expect(terms[2]!.epoch).toBeGreaterThan(tb!.epoch)
        yield* Fiber.interrupt(fa)
      }))
  }
}
