/**
 * What sg adds to the weather service, as layers: the trace and execution stores and the watchdog's lease (Redis or
 * memory), circuit breakers, trace ids, best-effort lifecycle writes, the recorder of execution records, and the
 * orphan watchdog under leader election. Every setting comes from the environment (`SG_*`, DESIGN.md's defaults).
 */
import { LeaderElection } from "@sg/leader"
import * as LeaseStoreRedis from "@sg/leader/LeaseStore/Redis"
import { RedisClient } from "@sg/redis"
import { CircuitBreaker } from "@sg/resilience"
import { ExecutionStore, Recorder, TraceIdGenerator, TraceLifecycle, TraceStore, TraceWatchdog } from "@sg/trace"
import * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Config, Effect, Layer, Option } from "effect"

/** Traces, records and leases in Redis (`REDIS_URL`, keys under `SG_KEY_PREFIX`). */
export const Redis = Layer.mergeAll(TraceStoreRedis.layerConfig, ExecutionStoreRedis.layerConfig, LeaseStoreRedis.layer())
  .pipe(Layer.provide(RedisClient.layerConfig))

/** Traces, records and leases in this process' memory. */
export const Memory = Layer.mergeAll(TraceStore.layerMemoryConfig, ExecutionStore.layerMemoryConfig)
  .pipe(Layer.merge(LeaderElection.layerMemory()))

/** Everything the service needs of sg, over `Redis` or `Memory`. */
export const layer = <E, R>(store: Layer.Layer<Layer.Layer.Success<typeof Memory>, E, R>) =>
  Layer.mergeAll(TraceLifecycle.layer(), TraceWatchdog.layerConfig, Recorder.layerStore).pipe(
    Layer.provideMerge(Layer.mergeAll(store, CircuitBreaker.layerConfig, TraceIdGenerator.layer))
  )

/** `layer` over Redis when `REDIS_URL` is set, else over memory. */
export const layerConfig = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("REDIS_URL")), (url) => layer(Option.isSome(url) ? Redis : Memory))
)
