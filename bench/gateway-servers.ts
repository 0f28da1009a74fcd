/**
 * The servers `bench/gateway.ts` measures: one trivial handler (`POST /v1/runs`: read the JSON body, answer a small
 * JSON inside an agent-run span), served five ways on a free loopback port:
 * - `bare`: the handler alone, the platform's own request tracer off;
 * - `plain`: the handler as @effect/platform serves it by default (its request tracer on);
 * - `traced`: the handler inside the `Ingress` middleware (trace id, server span, lifecycle RECEIVED → EGRESS →
 *   COMPLETED in the Redis store, on a private `redis-server`, behind the trace-store breaker, trace headers, request
 *   metrics) with the `Recorder` installed (successes sampled at 10 %, saved to the Redis execution store): what a
 *   deployment runs;
 * - `traced (memory)`: the same over the memory stores;
 * - `ingress+recorder`: as `traced`, but no request gets a lifecycle record;
 * - `ingress`: the middleware alone: no lifecycle record, no recorder.
 * The last two tell apart what the middleware, the recorder and the three `TraceLifecycle` writes each cost.
 */
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { CircuitBreaker } from "@sg/resilience"
import { ExecutionSpan, ExecutionStore, Recorder, TraceIdGenerator, TraceLifecycle, TraceStore } from "@sg/trace"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { Ingress } from "@sg/gateway"
import { RedisTestServer } from "@sg/redis/testing"
import * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"

export { ManagedRuntime } from "effect"

/** The variants measured. */
export type Variant = "bare" | "plain" | "ingress" | "ingress+recorder" | "traced" | "traced (memory)"

const handler = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const body = yield* request.json
  return yield* HttpServerResponse.json({ status: "success", output: typeof body === "object" ? "ok" : "?" })
}).pipe(ExecutionSpan.agentRun({ agentId: "bench" }), Effect.orDie)

const app = HttpRouter.empty.pipe(HttpRouter.post("/v1/runs", handler))

const server = NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })

const memoryStores = Layer.merge(TraceStore.layerMemory, ExecutionStore.layerMemory)

/** The stores in Redis, on a private `redis-server` this process starts (and stops with the layer). */
const redisStores = Layer.merge(TraceStoreRedis.layer(), ExecutionStoreRedis.layer()).pipe(
  Layer.provide(
    Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "2 seconds" }), RedisTestServer.layerSpawned)
  ),
  Layer.orDie
)

type Stores = Layer.Layer<TraceStore.TraceStore | ExecutionStore.ExecutionStore>

const traced = (lifecycle: boolean, recorder: boolean, stores: Stores) =>
  Layer.unwrapEffect(
    Effect.map(
      Ingress.make(lifecycle ? undefined : { lifecycle: () => false }),
      (ingress) => HttpServer.serve(ingress(app))
    )
  ).pipe(
  HttpMiddleware.withTracerDisabledWhen(() => true),
  Layer.provide(
    recorder
      ? Layer.unwrapEffect(Effect.map(ExecutionStore.ExecutionStore, (store) => Recorder.layer({ save: store.save })))
      : Layer.empty
  ),
  Layer.provide(TraceLifecycle.layer()),
  Layer.provide(Layer.mergeAll(stores, CircuitBreaker.layer().pipe(Layer.orDie), TraceIdGenerator.layer))
)

/** A server running `variant`, with its URL. */
export const layer = (variant: Variant): Layer.Layer<HttpServer.HttpServer> => {
  const served = variant === "traced"
    ? traced(true, true, redisStores)
    : variant === "traced (memory)"
    ? traced(true, true, memoryStores)
    : variant === "ingress+recorder"
    ? traced(false, true, memoryStores)
    : variant === "ingress"
    ? traced(false, false, memoryStores)
    : variant === "bare"
    ? HttpServer.serve(app).pipe(HttpMiddleware.withTracerDisabledWhen(() => true))
    : HttpServer.serve(app)
  return served.pipe(Layer.provideMerge(server), Layer.orDie)
}

/** The server's base URL. */
export const url: Effect.Effect<string, never, HttpServer.HttpServer> = Effect.map(HttpServer.HttpServer, (s) =>
  s.address._tag === "TcpAddress" ? `http://127.0.0.1:${s.address.port}` : "")
