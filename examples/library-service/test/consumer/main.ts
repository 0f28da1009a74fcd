// A project outside the workspace that installed sg's packed tarballs: the memory store, trace ids and a breaker,
// with no ioredis installed. The Redis layer is only named in a type, to check its declarations resolve.
import { CircuitBreaker } from "@sg/resilience"
import { TraceIdGenerator, type TraceRecord, TraceStore } from "@sg/trace"
import type * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Effect, Layer, Option } from "effect"

export type RedisStoreLayer = typeof TraceStoreRedis.layer

const program = Effect.gen(function*() {
  const id = yield* (yield* TraceIdGenerator.TraceIdGenerator).next
  const store = yield* TraceStore.TraceStore
  yield* store.create(id, "RECEIVED")
  yield* store.finish(id, "COMPLETED")
  const state: TraceRecord.State = Option.getOrThrow(yield* store.get(id)).state
  const answer = yield* (yield* CircuitBreaker.CircuitBreaker).protect("demo")(Effect.succeed(42))
  return { id, state, answer }
})

const layer = Layer.mergeAll(TraceStore.layerMemory, TraceIdGenerator.layer, CircuitBreaker.layer())

Effect.runPromise(Effect.provide(program, layer)).then((result) => console.log(JSON.stringify(result)))
