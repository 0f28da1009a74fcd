import { describe, expect, layer } from "@effect/vitest"
import { LeaderElection, Lease } from "@sg/leader"
import * as LeaseStoreRedis from "@sg/leader/LeaseStore/Redis"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Clock, Deferred, Duration, Effect, Fiber, Layer, Ref } from "effect"
import { leaseConformance, type Time, uniqueName, waitUntil } from "./utils/conformance.js"
import { makeTermLog, recordTerm } from "./utils/terms.js"

// Real time: a lease short enough for quick tests, long enough that a busy machine does not stall past its
// renew deadline (1 s) by accident.
const time: Time = {
  storeTtl: Duration.millis(300),
  electionTtl: Duration.millis(1_500),
  advance: (d) => Effect.sleep(d)
}

/** Forks `election` leading `name` forever; returns the fiber and the lease once it leads. */
const holdLease = (election: LeaderElection.Service, name: string) =>
  Effect.gen(function*() {
    const seen = yield* Deferred.make<Lease.Service>()
    const fiber = yield* Effect.fork(election.runWhileLeader(
      name,
      Effect.flatMap(Lease.Lease, (lease) => Effect.zipRight(Deferred.succeed(seen, lease), Effect.never))
    ))
    return { fiber, lease: yield* Deferred.await(seen) }
  })

describe("LeaderElection (Redis)", () => {
  layer(Layer.provideMerge(LeaseStoreRedis.layerStore, RedisTestServer.layerWithClient), { excludeTestServices: true })(
    "against a real Redis",
    (it) => {
      leaseConformance(it, time)

      it.effect("keeps the token in <prefix>:lease:<name> with a TTL, the epoch in <prefix>:lease:<name>:epoch", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const election = yield* LeaderElection.make({ ttl: time.electionTtl, identity: "keys" })
          const name = uniqueName("keys")
          const { fiber, lease } = yield* holdLease(election, name)
          const keys = LeaseStoreRedis.keys(redis, name)
          expect(keys).toEqual({ lease: `${redis.prefix}:lease:${name}`, epoch: `${redis.prefix}:lease:${name}:epoch` })
          expect(yield* redis.use("GET", (c) => c.get(keys.lease))).toBe(lease.token)
          const pttl = yield* redis.use("PTTL", (c) => c.pttl(keys.lease))
          expect(pttl).toBeGreaterThan(0)
          expect(pttl).toBeLessThanOrEqual(1_500)
          expect(yield* redis.use("GET", (c) => c.get(keys.epoch))).toBe(String(lease.epoch))
          expect(yield* redis.use("PTTL", (c) => c.pttl(keys.epoch))).toBe(-1)
          yield* Fiber.interrupt(fiber)
          expect(yield* redis.use("EXISTS", (c) => c.exists(keys.lease))).toBe(0)
          expect(yield* redis.use("GET", (c) => c.get(keys.epoch))).toBe(String(lease.epoch))
        }))

      it.effect("Lease.stillHeld asks Redis: a token or epoch changed behind the holder's back is seen at once", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const election = yield* LeaderElection.make({ ttl: time.electionTtl, identity: "held" })
          const name = uniqueName("held")
          const { fiber, lease } = yield* holdLease(election, name)
          const keys = LeaseStoreRedis.keys(redis, name)
          expect(yield* lease.stillHeld).toBe(true)
          yield* redis.use("INCR", (c) => c.incr(keys.epoch))
          expect(yield* lease.stillHeld).toBe(false)
          yield* redis.use("DECR", (c) => c.decr(keys.epoch))
          expect(yield* lease.stillHeld).toBe(true)
          yield* redis.use("SET", (c) => c.set(keys.lease, "someone-else", "PX", 10_000))
          expect(yield* lease.stillHeld).toBe(false)
          yield* Fiber.interrupt(fiber)
        }))
    }
  )

  const spawned = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)
  layer(Layer.provideMerge(LeaseStoreRedis.layerStore, spawned), { excludeTestServices: true })("across a restart", (it) => {
    it.effect("steps down while Redis is gone and leads again after it restarts, with a larger epoch", () =>
      Effect.gen(function*() {
        const server = yield* RedisTestServer.RedisTestServer
        const election = yield* LeaderElection.make({ ttl: time.electionTtl, identity: "restart" })
        const name = uniqueName("restart")
        const log = yield* makeTermLog
        const fiber = yield* Effect.fork(election.runWhileLeader(name, recordTerm(log, "a")))
        yield* waitUntil(time, election.isLeader(name), Duration.seconds(5), "first acquisition")
        const stoppedAt = yield* Clock.currentTimeMillis
        yield* server.stop
        // The renew deadline is 1 s: the effect is interrupted well before the 1.5 s lease could lapse.
        const following = Effect.map(election.isLeader(name), (leader) => !leader)
        yield* waitUntil(time, following, Duration.seconds(2), "step-down")
        const [first] = yield* Ref.get(log)
        expect(first!.end).toBeDefined()
        // At most the renew deadline after the last renewal, which came before the stop (plus scheduling slack).
        expect(first!.end! - stoppedAt).toBeLessThanOrEqual(1_000 + 300)
        yield* server.start
        // The restarted server has no epoch counter: the elector's floor keeps the next epoch above the last one.
        yield* waitUntil(time, election.isLeader(name), Duration.seconds(15), "reacquisition")
        const terms = yield* Ref.get(log)
        expect(terms).toHaveLength(2)
        expect(terms[1]!.epoch).toBeGreaterThan(terms[0]!.epoch)
        yield* Fiber.interrupt(fiber)
      }))
  })
})
