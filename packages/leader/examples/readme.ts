import { LeaderElection, Lease } from "@sg/leader"
import * as LeaseStoreRedis from "@sg/leader/LeaseStore/Redis"
import { RedisClient } from "@sg/redis"
import { Effect, Layer, Schedule } from "effect"

const sweep = Effect.gen(function*() {
  const lease = yield* Lease.Lease
  yield* Effect.logInfo(`sweeping as holder ${lease.token} at epoch ${lease.epoch}`)
})

const Watchdog = Layer.scopedDiscard(Effect.gen(function*() {
  const election = yield* LeaderElection.LeaderElection
  const loop = Effect.repeat(sweep, Schedule.spaced("5 minutes"))
  yield* Effect.forkScoped(election.runWhileLeader("trace-watchdog", loop))
}))

Watchdog.pipe(
  Layer.provide(LeaseStoreRedis.layer()),
  Layer.provide(RedisClient.layerConfig),
  Layer.launch,
  Effect.runFork
)
