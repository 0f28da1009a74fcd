import type { Vitest } from "@effect/vitest"
import { expect } from "@effect/vitest"
import { BreakerPolicy, BreakerStore } from "@sg/resilience"
import { Effect, Either, Queue } from "effect"

/** How time passes for a store: `TestClock.adjust` in memory, a real sleep against Redis. */
export interface StoreTime {
  readonly advance: (ms: number) => Effect.Effect<void>
  /** The store's idle timeout (the suite checks records expire after it). */
  readonly idleMs: number
}

/** A validated policy from options. */
export const policyOf = (options: BreakerPolicy.Options): BreakerPolicy.Policy => {
  const resolved = BreakerPolicy.validate(options)
  if (Either.isLeft(resolved)) throw new Error(resolved.left.message)
  return resolved.right.defaults
}

let counter = 0
/** A breaker name no other test uses (the store is shared across a suite's tests). */
export const uniqueName = (label: string) => `${label}-${process.pid}-${++counter}`

const cooldown = 200
const consecutive = policyOf({ threshold: 3, cooldown: `${cooldown} millis` })
const backoff = policyOf({ threshold: 1, cooldown: `${cooldown} millis`, backoff: { factor: 2, max: "700 millis" } })
const rate = policyOf({ failureRate: { threshold: 0.5, window: 4, minimumCalls: 3 }, cooldown: `${cooldown} millis` })
const twoTrials = policyOf({ threshold: 1, cooldown: `${cooldown} millis`, halfOpenTrials: 2 })
const ttl = 600

/**
 * The store's contract: what each operation does to a record, as `internal/record.ts` has it. The memory store runs
 * that module; the Redis store's Lua scripts must agree with it to the millisecond on every line below.
 */
export const storeConformance = (it: Vitest.MethodsNonLive<BreakerStore.BreakerStore, boolean>, time: StoreTime) => {
  const store = BreakerStore.BreakerStore

  /** Opens `name` under `policy` with consecutive failures; returns the open snapshot. */
  const trip = (name: string, policy: BreakerPolicy.Policy) =>
    Effect.gen(function*() {
      const s = yield* store
      let snapshot = yield* s.read(name, policy)
      while (snapshot.state === "closed") snapshot = yield* s.failure(name, policy, snapshot.generation, 0)
      return snapshot
    })

  it.effect("an unknown breaker reads as closed, generation and version 0", () =>
    Effect.gen(function*() {
      const s = yield* store
      const snapshot = yield* s.read(uniqueName("unknown"), consecutive)
      expect(snapshot).toMatchObject({ state: "closed", generation: 0, version: 0, failures: 0, trials: 0 })
    }))

  it.effect("consecutive failures from any reporter open it on the threshold, for the cool-down", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("consecutive")
      const first = yield* s.failure(name, consecutive, 0, 0)
      expect(first).toMatchObject({ state: "closed", failures: 1 })
      expect(first.generation).toBeGreaterThan(0)
      const second = yield* s.failure(name, consecutive, first.generation, 0)
      expect(second).toMatchObject({ state: "closed", failures: 2, generation: first.generation })
      expect(second.version).toBeGreaterThan(first.version)
      const third = yield* s.failure(name, consecutive, first.generation, 0)
      expect(third).toMatchObject({ state: "open", failures: 3, reopenings: 0 })
      expect(third.generation).toBeGreaterThan(first.generation)
      expect(third.until - third.openedAt).toBe(cooldown)
      expect(third.changedAt).toBe(third.openedAt)
      // A failure of a call admitted while closed changes nothing once open: no deadline moves.
      const late = yield* s.failure(name, consecutive, first.generation, 0)
      expect(late).toMatchObject({ state: "open", until: third.until, version: third.version })
    }))

  it.effect("a success restarts the count: told on its own, or before the next failure", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("success")
      const one = yield* s.failure(name, consecutive, 0, 0)
      yield* s.failure(name, consecutive, one.generation, 0)
      const reset = yield* s.successes(name, consecutive, one.generation, 1)
      expect(reset.failures).toBe(0)
      const again = yield* s.successes(name, consecutive, one.generation, 1)
      expect(again.version).toBe(reset.version)
      yield* s.failure(name, consecutive, one.generation, 0)
      const after = yield* s.failure(name, consecutive, one.generation, 5)
      expect(after).toMatchObject({ state: "closed", failures: 1 })
    }))

  it.effect("reports from another generation change nothing, but a new record takes those from before it", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("generation")
      const opened = yield* trip(name, consecutive)
      const closed = yield* s.reset(name, consecutive)
      expect(closed.state).toBe("closed")
      expect(closed.generation).toBeGreaterThan(opened.generation)
      const stale = yield* s.failure(name, consecutive, opened.generation, 0)
      expect(stale).toMatchObject({ failures: 0, version: closed.version })
      const fresh = yield* s.failure(name, consecutive, closed.generation, 0)
      expect(fresh.failures).toBe(1)
      // A new record: a reporter that read it before it existed (generation 0) still counts.
      const other = uniqueName("born")
      const created = yield* s.failure(other, consecutive, 0, 0)
      const before = yield* s.failure(other, consecutive, 0, 0)
      expect(before).toMatchObject({ failures: 2, generation: created.generation })
    }))

  it.effect("failure rate: no verdict before the minimum calls; successes slide failures out of the window", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("rate")
      const one = yield* s.failure(name, rate, 0, 0)
      const two = yield* s.failure(name, rate, one.generation, 0)
      expect(two).toMatchObject({ state: "closed", failures: 2 })
      // [1, 1, 0, 0] after two successes: 2 in 4 reaches 0.5, but only a failure opens it.
      const slid = yield* s.successes(name, rate, one.generation, 2)
      expect(slid).toMatchObject({ state: "closed", failures: 2 })
      // Four more successes push both failures out.
      const clean = yield* s.successes(name, rate, one.generation, 9)
      expect(clean).toMatchObject({ state: "closed", failures: 0 })
      // [0, 0, 0, 1]: 1 in 4.
      const lone = yield* s.failure(name, rate, one.generation, 0)
      expect(lone).toMatchObject({ state: "closed", failures: 1 })
      // [0, 0, 1, 1]: 2 in 4 opens it.
      const opened = yield* s.failure(name, rate, one.generation, 0)
      expect(opened).toMatchObject({ state: "open", failures: 2 })
    }))

  it.effect("after the cool-down exactly one caller gets the trial; the others are rejected until it answers", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("trial")
      expect((yield* s.acquire(name, consecutive, "a", ttl)).verdict).toBe("closed")
      const opened = yield* trip(name, consecutive)
      const early = yield* s.acquire(name, consecutive, "a", ttl)
      expect(early.verdict).toBe("rejected")
      expect(early.snapshot.state).toBe("open")
      yield* time.advance(cooldown + 20)
      const granted = yield* s.acquire(name, consecutive, "a", ttl)
      expect(granted.verdict).toBe("granted")
      expect(granted.snapshot).toMatchObject({ state: "half_open", trials: 1, failures: 3 })
      expect(granted.snapshot.generation).toBeGreaterThan(opened.generation)
      expect(granted.snapshot.trialsUntil - granted.snapshot.now).toBe(ttl)
      expect((yield* s.acquire(name, consecutive, "b", ttl)).verdict).toBe("rejected")
      // Asking again under the same token (a reply lost) keeps the slot.
      expect((yield* s.acquire(name, consecutive, "a", ttl)).verdict).toBe("granted")
      const closed = yield* s.settle(name, consecutive, granted.snapshot.generation, "a", "success")
      expect(closed).toMatchObject({ state: "closed", failures: 0, trials: 0, reopenings: 0 })
    }))

  it.effect("half-open trials: as many slots as the policy says", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("slots")
      yield* trip(name, twoTrials)
      yield* time.advance(cooldown + 20)
      const a = yield* s.acquire(name, twoTrials, "a", ttl)
      const b = yield* s.acquire(name, twoTrials, "b", ttl)
      expect([a.verdict, b.verdict, (yield* s.acquire(name, twoTrials, "c", ttl)).verdict]).toEqual([
        "granted",
        "granted",
        "rejected"
      ])
      const generation = a.snapshot.generation
      expect(b.snapshot.generation).toBe(generation)
      const one = yield* s.settle(name, twoTrials, generation, "a", "success")
      expect(one).toMatchObject({ state: "half_open", trials: 1 })
      expect((yield* s.settle(name, twoTrials, generation, "b", "success")).state).toBe("closed")
    }))

  it.effect("a trial token not renewed expires and frees its slot; a renewed one keeps it", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("expiry")
      yield* trip(name, consecutive)
      yield* time.advance(cooldown + 20)
      const held = yield* s.acquire(name, consecutive, "dead", ttl)
      yield* time.advance(ttl / 2)
      expect((yield* s.acquire(name, consecutive, "other", ttl)).verdict).toBe("rejected")
      expect(yield* s.renew(name, held.snapshot.generation, "dead", ttl)).toBe(true)
      yield* time.advance(ttl / 2 + 100)
      expect((yield* s.acquire(name, consecutive, "other", ttl)).verdict).toBe("rejected")
      yield* time.advance(ttl)
      expect((yield* s.read(name, consecutive)).trials).toBe(0)
      const taken = yield* s.acquire(name, consecutive, "other", ttl)
      expect(taken.verdict).toBe("granted")
      // The dead holder's late answer decides nothing, nor can it renew.
      expect(yield* s.renew(name, held.snapshot.generation, "dead", ttl)).toBe(false)
      const late = yield* s.settle(name, consecutive, held.snapshot.generation, "dead", "failure")
      expect(late).toMatchObject({ state: "half_open", trials: 1 })
    }))

  it.effect("a failed trial reopens for twice as long each time, up to the cap; closing starts over", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("backoff")
      let snapshot = yield* trip(name, backoff)
      const opened = [snapshot.until - snapshot.openedAt]
      for (let i = 0; i < 3; i++) {
        yield* time.advance(snapshot.until - snapshot.now + 20)
        const granted = yield* s.acquire(name, backoff, `t${i}`, ttl)
        expect(granted.verdict).toBe("granted")
        snapshot = yield* s.settle(name, backoff, granted.snapshot.generation, `t${i}`, "failure")
        expect(snapshot).toMatchObject({ state: "open", reopenings: i + 1, failures: i + 2 })
        expect(snapshot.until).toBeGreaterThan(granted.snapshot.now)
        opened.push(snapshot.until - snapshot.openedAt)
      }
      expect(opened).toEqual([200, 400, 700, 700])
      yield* time.advance(snapshot.until - snapshot.now + 20)
      const granted = yield* s.acquire(name, backoff, "last", ttl)
      yield* s.settle(name, backoff, granted.snapshot.generation, "last", "success")
      const again = yield* trip(name, backoff)
      expect(again.until - again.openedAt).toBe(200)
    }))

  it.effect("a trial that gives up (ignored) frees its slot without deciding; a wrong token decides nothing", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("ignored")
      yield* trip(name, consecutive)
      yield* time.advance(cooldown + 20)
      const granted = yield* s.acquire(name, consecutive, "a", ttl)
      const wrong = yield* s.settle(name, consecutive, granted.snapshot.generation, "nobody", "failure")
      expect(wrong).toMatchObject({ state: "half_open", trials: 1, version: granted.snapshot.version })
      const freed = yield* s.settle(name, consecutive, granted.snapshot.generation, "a", "ignored")
      expect(freed).toMatchObject({ state: "half_open", trials: 0 })
      expect((yield* s.acquire(name, consecutive, "b", ttl)).verdict).toBe("granted")
    }))

  it.effect("isolate holds it open with no deadline until reset", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("isolate")
      const one = yield* s.failure(name, consecutive, 0, 0)
      const isolated = yield* s.isolate(name, consecutive)
      expect(isolated).toMatchObject({ state: "isolated", failures: 1 })
      expect(isolated.generation).toBeGreaterThan(one.generation)
      yield* time.advance(time.idleMs + cooldown + 100)
      expect((yield* s.read(name, consecutive)).state).toBe("isolated")
      expect((yield* s.acquire(name, consecutive, "a", ttl)).verdict).toBe("rejected")
      const reset = yield* s.reset(name, consecutive)
      expect(reset).toMatchObject({ state: "closed", failures: 0 })
      expect((yield* s.acquire(name, consecutive, "a", ttl)).verdict).toBe("closed")
    }))

  it.effect("an idle record expires after its last deadline plus the idle timeout; generations keep growing", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("idle")
      const opened = yield* trip(name, consecutive)
      yield* time.advance(cooldown + time.idleMs / 2)
      expect((yield* s.read(name, consecutive)).state).toBe("open")
      yield* time.advance(time.idleMs / 2 + 100)
      expect(yield* s.read(name, consecutive)).toMatchObject({ state: "closed", version: 0, generation: 0 })
      const fresh = yield* s.failure(name, consecutive, 0, 0)
      expect(fresh.generation).toBeGreaterThan(opened.generation)
      expect(fresh.version).toBeGreaterThan(opened.version)
    }))

  it.scoped("subscribers hear every change that matters: failures, transitions, trials; not reads or renewals", () =>
    Effect.gen(function*() {
      const s = yield* store
      const name = uniqueName("feed")
      const feed = yield* s.subscribe
      const heard = Effect.gen(function*() {
        const out: Array<string> = []
        // Changes published by earlier tests' stores are filtered out by name.
        for (const change of yield* Queue.takeAll(feed)) {
          if (change._tag !== "Changed" || change.name !== name) continue
          out.push(`${change.snapshot.state}:${change.snapshot.failures}`)
        }
        return out
      })
      const settleFeed = time.advance(100)
      const one = yield* s.failure(name, consecutive, 0, 0)
      yield* s.read(name, consecutive)
      yield* s.failure(name, consecutive, one.generation, 0)
      yield* s.failure(name, consecutive, one.generation, 0)
      yield* time.advance(cooldown + 20)
      const granted = yield* s.acquire(name, consecutive, "a", ttl)
      yield* s.renew(name, granted.snapshot.generation, "a", ttl)
      yield* s.settle(name, consecutive, granted.snapshot.generation, "a", "success")
      yield* settleFeed
      expect(yield* heard).toEqual(["closed:1", "closed:2", "open:3", "half_open:3", "closed:0"])
    }))
}
