import { LeaderElection } from "@sg/leader"
import * as LeaseStoreRedis from "@sg/leader/LeaseStore/Redis"
import { RedisClient } from "@sg/redis"
import { CircuitBreaker } from "@sg/resilience"
import {
  ExecutionSpan,
  ExecutionStore,
  Recorder,
  TraceId,
  TraceIdGenerator,
  TraceLifecycle,
  TraceStore,
  TraceWatchdog
} from "@sg/trace"
import * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Config, Effect, Layer, Option, Tracer } from "effect"

// One unit of work in a trace of its own: a lifecycle record, and spans the recorder reduces to an execution record.
const shout = (input: string) =>
  Effect.gen(function*() {
    const id = yield* (yield* TraceIdGenerator.TraceIdGenerator).next
    const lifecycle = yield* TraceLifecycle.TraceLifecycle
    const request = yield* lifecycle.begin(id, { channel: "cli" }) // RECEIVED: hash, failsafe TTL, active set
    const output = yield* Effect.succeed(input.toUpperCase()).pipe(
      ExecutionSpan.tool("upper", { input }), // a tool call of...
      ExecutionSpan.agentRun({ agentId: "shouter" }), // ...one agent run, in...
      Effect.withParentSpan(Tracer.externalSpan({ traceId: TraceId.toHex(id), spanId: TraceId.toHex(id).slice(16) }))
    ) // ...the trace `id` (the gateway's ingress does this for every request)
    yield* lifecycle.finish(request, "COMPLETED") // terminal TTL, out of the active set
    return { id, output }
  })

const program = Effect.gen(function*() {
  const store = yield* TraceStore.TraceStore
  const { id, output } = yield* shout("hello")
  console.log(output) // HELLO
  yield* (yield* Recorder.Recorder).flush // records are saved off the request path: flush before reading one
  console.log(yield* store.get(id)) // Some(TraceRecord { state: "COMPLETED", created_at, updated_at, fields })
  console.log(yield* (yield* ExecutionStore.ExecutionStore).get(id)) // Some({ trace_id, status: "success", runs: [{ agent_id: "shouter" }] })
  console.log(yield* store.sweepOrphans()) // { scanned, removed_missing, removed_terminal, orphaned, ... }
  console.log(yield* (yield* TraceWatchdog.TraceWatchdog).status) // { leader: true, epoch: 1, last_sweep }
})

// Traces, execution records and the watchdog's lease in Redis when REDIS_URL is set, else in memory.
const Backend = Layer.unwrapEffect(Effect.map(Config.option(Config.string("REDIS_URL")), (url) =>
  Option.isSome(url)
    ? Layer.mergeAll(TraceStoreRedis.layerConfig, ExecutionStoreRedis.layerConfig, LeaseStoreRedis.layer()).pipe(
      Layer.provide(RedisClient.layerConfig)
    )
    : Layer.mergeAll(TraceStore.layerMemoryConfig, ExecutionStore.layerMemoryConfig, LeaderElection.layerMemory())))

// Every record kept (the default keeps all errors and 10 % of successes).
const Recording = Layer.unwrapEffect(
  Effect.map(ExecutionStore.ExecutionStore, (store) => Recorder.layer({ save: store.save, sampleSuccess: 1 }))
)

const Sg = Layer.mergeAll(TraceLifecycle.layer(), TraceWatchdog.layerConfig, Recording).pipe(
  Layer.provideMerge(Layer.mergeAll(Backend, CircuitBreaker.layerConfig, TraceIdGenerator.layer))
)

Effect.runPromise(program.pipe(Effect.provide(Sg)))
