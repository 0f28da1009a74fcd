// What a project outside the workspace composes from sg's packed tarballs: trace ids, lifecycle writes behind a
// breaker, the recorder saving to the execution store, leader election, and the gateway's Ingress middleware around
// its own HttpApp. It serves one request on a free port and reads back the trace's lifecycle and execution records.
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Ingress } from "@sg/gateway"
import { LeaderElection } from "@sg/leader"
import { CircuitBreaker } from "@sg/resilience"
import {
  ExecutionSpan,
  ExecutionStore,
  Recorder,
  TraceId,
  TraceIdGenerator,
  TraceLifecycle,
  TraceStore
} from "@sg/trace"
import { Effect, Layer, Option } from "effect"
import { createServer } from "node:http"

const app = HttpRouter.empty.pipe(
  HttpRouter.get(
    "/greet",
    Effect.succeed("hello").pipe(
      ExecutionSpan.tool("greet", { input: "world" }),
      Effect.map((text) => HttpServerResponse.text(text))
    )
  )
)

const served = Layer.unwrapEffect(
  Effect.map(Ingress.make({ lifecycle: () => true }), (ingress) => HttpServer.serve(ingress(app)))
)

/** The stores the program runs on: memory or Redis, the caller's choice. */
export type Stores = TraceStore.TraceStore | ExecutionStore.ExecutionStore | LeaderElection.LeaderElection

/** Serves, asks once, and answers what the trace left behind. */
export const program = Effect.gen(function*() {
  const address = (yield* HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") return yield* Effect.dieMessage("not a TCP server")
  const response = yield* Effect.promise(() =>
    fetch(`http://127.0.0.1:${address.port}/greet`, { signal: AbortSignal.timeout(10_000) })
  )
  const body = yield* Effect.promise(() => response.text())
  const id = Option.getOrThrow(TraceId.parse(response.headers.get("x-trace-id") ?? ""))
  yield* (yield* Recorder.Recorder).flush
  const lifecycle = yield* (yield* TraceStore.TraceStore).get(id)
  const record = yield* (yield* ExecutionStore.ExecutionStore).get(id)
  const led = yield* (yield* LeaderElection.LeaderElection).runWhileLeader("consumer", Effect.succeed("led"))
  return {
    status: response.status,
    body,
    trace_id: id,
    version: TraceId.versionOf(id),
    state: Option.map(lifecycle, (r) => r.state).pipe(Option.getOrNull),
    record: Option.map(record, (r) => ({
      trace_id: r.trace_id,
      status: r.status,
      tools: r.runs.flatMap((run) => run.tool_calls.map((call) => call.tool))
    })).pipe(Option.getOrNull),
    led
  }
})

/** Everything `program` needs, over `stores`. */
export const layer = <E, R>(stores: Layer.Layer<Stores, E, R>) =>
  served.pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })),
    Layer.provideMerge(Layer.unwrapEffect(
      Effect.map(ExecutionStore.ExecutionStore, (store) => Recorder.layer({ save: store.save, sampleSuccess: 1 }))
    )),
    Layer.provideMerge(TraceLifecycle.layer()),
    Layer.provideMerge(Layer.mergeAll(stores, CircuitBreaker.layer(), TraceIdGenerator.layer))
  )

/** Runs `program` over `stores` and prints its answer as one JSON line. */
export const main = <E>(stores: Layer.Layer<Stores, E>) =>
  Effect.runPromise(Effect.scoped(Effect.provide(program, layer(stores)))).then(
    (result) => console.log(JSON.stringify(result)),
    (error: unknown) => {
      console.error(error)
      process.exitCode = 1
    }
  )
