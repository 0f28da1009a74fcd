import { describe, expect, layer } from "@effect/vitest"
import { LeaderElection } from "@sg/leader"
import * as LeaseStoreRedis from "@sg/leader/LeaseStore/Redis"
import { RedisClient } from "@sg/redis"
import { RedisTestCluster } from "@sg/redis/testing"
import { Duration, Effect, Fiber, Layer } from "effect"
import { leaseConformance, type Time, uniqueName, waitUntil } from "./utils/conformance.js"

const time: Time = {
  storeTtl: Duration.millis(300),
  electionTtl: Duration.millis(1_500),
  advance: (d) => Effect.sleep(d)
}

describe("LeaderElection (Redis Cluster)", () => {
  layer(Layer.provideMerge(LeaseStoreRedis.layerStore, RedisTestCluster.layerWithClient()), {
    excludeTestServices: true,
    timeout: 60_000
  })("against a real three-master cluster", (it) => {
    leaseConformance(it, time)

    it.effect("a lease's two keys share one slot, tagged by its name: each lease lands where its name hashes", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const name = uniqueName("slot")
        const keys = LeaseStoreRedis.keys(redis, name)
        expect(keys).toEqual({ lease: `${redis.prefix}:lease:{${name}}`, epoch: `${redis.prefix}:lease:{${name}}:epoch` })
        const slot = (key: string) => redis.use("KEYSLOT", (c) => c.call("CLUSTER", "KEYSLOT", key) as Promise<number>)
        expect(yield* slot(keys.lease)).toBe(yield* slot(keys.epoch))
        const election = yield* LeaderElection.make({ ttl: time.electionTtl, identity: "slot" })
        const fiber = yield* Effect.fork(election.runWhileLeader(name, Effect.never))
        yield* waitUntil(time, election.isLeader(name), Duration.seconds(5), "acquisition")
        expect(yield* redis.use("GET", (c) => c.get(keys.epoch))).toBe("1")
        yield* Fiber.interrupt(fiber)
      }))
  })
})
