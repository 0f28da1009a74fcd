import { describe, expect, layer } from "@effect/vitest"
import { LeaderElection } from "@sg/leader"
import * as LeaseStoreRedis from "@sg/leader/LeaseStore/Redis"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Clock, Deferred, Duration, Effect, Layer, Schedule } from "effect"
import { SweepHooks } from "../src/internal/sweepHooks.js"
import { formatEpochSeconds } from "../src/TraceRecord.js"
import * as TraceStore from "../src/TraceStore.js"
import * as TraceWatchdog from "../src/TraceWatchdog.js"
import { nextTraceId } from "./utils/ids.js"
import { redis as redisStore, StoreKit } from "./utils/StoreKit.js"

/** Polls `check` (real time) until it holds, failing with `what` after `limit`. */
const waitUntil = (check: Effect.Effect<boolean>, what: string, limit: Duration.DurationInput = "5 seconds") =>
  check.pipe(
    Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (ok) => ok }),
    Effect.timeoutFail({ duration: limit, onTimeout: () => new Error(`timed out waiting for ${what}`) }),
    Effect.orDie
  )

/** A fresh key prefix on the test server: a store, its kit, a client, and Redis leases beside them. */
const fresh = () => Layer.provideMerge(LeaseStoreRedis.layerStore, redisStore)

/** Plants a trace in flight created two hours ago (an orphan), as another writer would. */
const plantOrphan = Effect.gen(function*() {
  const kit = yield* StoreKit
  const id = nextTraceId()
  const created = formatEpochSeconds((yield* Clock.currentTimeMillis) - 2 * 3_600_000)
  yield* kit.writeRaw(id, { state: "INFERRING", created_at: created, updated_at: created })
  return id
})

describe("TraceWatchdog (Redis)", () => {
  layer(RedisTestServer.layer, { excludeTestServices: true })("under the real LeaderElection", (it) => {
    it.effect("the leader's sweep retires an orphan and reports it", () =>
      Effect.gen(function*() {
        const kit = yield* StoreKit
        const store = yield* TraceStore.TraceStore
        const orphan = yield* plantOrphan
        const election = yield* LeaderElection.make({ identity: "leader", ttl: "10 seconds" })
        const watchdog = yield* TraceWatchdog.make().pipe(
          Effect.provideService(LeaderElection.LeaderElection, election)
        )
        yield* waitUntil(Effect.map(watchdog.status, (s) => s.last_sweep !== null), "the first sweep")
        const status = yield* watchdog.status
        expect(status).toMatchObject({ leader: true, epoch: 1, last_sweep: { ok: true, report: { orphaned: 1 } } })
        expect(yield* kit.readRaw(orphan)).toMatchObject({ state: "ERRORED", error: "orphaned" })
        expect(yield* store.isActive(orphan)).toBe(false)
      }).pipe(Effect.scoped, Effect.provide(fresh())))

    it.effect("a stale ex-leader's sweep is fenced: it writes nothing and fails with LeaseLost", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const kit = yield* StoreKit
        const store = yield* TraceStore.TraceStore
        const orphan = yield* plantOrphan
        const planted = yield* kit.readRaw(orphan)
        // A renews only every 8 s, so nothing but the test changes its lease while its sweep is held up.
        const a = yield* LeaderElection.make({
          identity: "stale-a",
          ttl: "10 seconds",
          renewInterval: "8 seconds",
          renewDeadline: "9 seconds",
          retryPeriod: "1 second"
        })
        const b = yield* LeaderElection.make({ identity: "new-b", ttl: "10 seconds", retryPeriod: "50 millis" })
        const paused = yield* Deferred.make<void>()
        const resume = yield* Deferred.make<void>()
        // A's first sweep stops between its batch read and its decision, as a frozen process would, while its lease
        // lapses in Redis (the key vanishes, as at the end of its TTL) and b takes over.
        let first = true
        const hooks = SweepHooks.of({
          afterRead: () =>
            Effect.gen(function*() {
              if (!first) return
              first = false
              const { lease } = LeaseStoreRedis.keys(redis, TraceWatchdog.leaseName)
              yield* Effect.orDie(redis.use("DEL", (c) => c.del(lease)))
              yield* Deferred.succeed(paused, undefined)
              yield* Deferred.await(resume)
            })
        })
        const watchdog = yield* TraceWatchdog.make().pipe(
          Effect.provideService(LeaderElection.LeaderElection, a),
          Effect.provideService(SweepHooks, hooks)
        )
        yield* Deferred.await(paused)
        const stale = yield* watchdog.status
        expect(stale).toMatchObject({ leader: true, epoch: 1, last_sweep: null })
        yield* Effect.forkScoped(b.runWhileLeader(TraceWatchdog.leaseName, Effect.never))
        yield* waitUntil(b.isLeader(TraceWatchdog.leaseName), "b to take the lease")
        expect((yield* b.status(TraceWatchdog.leaseName)).epoch).toBe(2)
        yield* Deferred.succeed(resume, undefined)

        yield* waitUntil(Effect.map(watchdog.status, (s) => s.last_sweep !== null), "a's sweep to end")
        const { last_sweep } = yield* watchdog.status
        expect(last_sweep).toMatchObject({ ok: false, report: null })
        expect(last_sweep!.error).toMatch(/^LeaseLost: lease trace-watchdog is no longer held by this sweep at epoch 1/)
        // Nothing written: the orphan is as planted and still in the active set.
        expect(yield* kit.readRaw(orphan)).toEqual(planted)
        expect(yield* store.isActive(orphan)).toBe(true)
      }).pipe(Effect.scoped, Effect.provide(fresh())))
  })
})
