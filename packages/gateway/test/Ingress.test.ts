import { HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, layer } from "@effect/vitest"
import { CircuitBreaker } from "@sg/resilience"
import { CurrentTrace, TraceId, TraceIdGenerator, TraceLifecycle, TraceStore, TraceStoreUnavailable } from "@sg/trace"
import { Effect, Layer, Option } from "effect"
import * as Ingress from "../src/Ingress.js"
import { mintedIdOf, traceHeadersOf } from "./utils/headers.js"
import * as T from "./utils/TestGateway.js"

/** What the handler saw: the current trace and the span it runs in. */
const inspect = Effect.gen(function*() {
  const trace = yield* CurrentTrace.CurrentTrace
  const span = yield* Effect.currentSpan
  const parent = Option.getOrUndefined(span.parent)
  return yield* HttpServerResponse.json({
    trace_id: trace.traceId,
    span: { traceId: span.traceId, spanId: span.spanId, kind: span.kind, name: span.name },
    parent: parent === undefined ? null : { traceId: parent.traceId, spanId: parent.spanId, tag: parent._tag }
  })
}).pipe(Effect.orDie)

const app = HttpRouter.empty.pipe(
  HttpRouter.get("/inspect", inspect),
  HttpRouter.get("/traced/:name", Effect.succeed(HttpServerResponse.text("traced"))),
  HttpRouter.get("/traced-failure", Effect.succeed(HttpServerResponse.text("nope", { status: 503 }))),
  HttpRouter.get("/die", Effect.die(new Error("boom")))
)

/** A plain HttpApp served behind the ingress, a lifecycle record for `/traced…` only. */
const served = (store: Layer.Layer<TraceStore.TraceStore>) =>
  Layer.unwrapEffect(
    Effect.map(
      Ingress.make({ lifecycle: (request) => request.url.startsWith("/traced") }),
      (ingress) => HttpServer.serve(ingress(app))
    )
  ).pipe(
    HttpMiddleware.withTracerDisabledWhen(() => true),
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(TraceLifecycle.layer()),
    Layer.provideMerge(Layer.mergeAll(T.layerJournaled(store), T.breakers, TraceIdGenerator.layer))
  )

const caller = { trace: "4bf92f3577b34da6a3ce929d0e0e4736", span: "00f067aa0ba902b7" }

describe("Ingress on any HttpApp", () => {
  layer(served(TraceStore.layerMemory), { excludeTestServices: true })("over the memory store", (it) => {
    it.effect("provides CurrentTrace; the app runs in a server span of the sg trace, parented on the caller's", () =>
      Effect.gen(function*() {
        const adopted = yield* T.raw({
          path: "/inspect",
          headers: { traceparent: `00-${caller.trace}-${caller.span}-01` }
        })
        const headers = traceHeadersOf(adopted)
        expect(adopted.json).toEqual({
          trace_id: headers.traceId,
          span: { traceId: caller.trace, spanId: headers.spanId, kind: "server", name: "http.server GET" },
          parent: { traceId: caller.trace, spanId: caller.span, tag: "ExternalSpan" }
        })
        expect(TraceId.toHex(headers.traceId)).toBe(caller.trace)

        const minted = yield* T.raw({ path: "/inspect" })
        const id = mintedIdOf(minted)
        expect(minted.json.trace_id).toBe(id)
        expect(minted.json.span.traceId).toBe(TraceId.toHex(id))
        expect(minted.json.span.spanId).toBe(traceHeadersOf(minted).spanId)
        expect(minted.json.parent).toMatchObject({ traceId: TraceId.toHex(id), tag: "ExternalSpan" })
      }))

    it.effect("failures the app leaves to the server (a defect, an unknown route) still carry the trace headers", () =>
      Effect.gen(function*() {
        const died = yield* T.raw({ path: "/die" })
        expect(died.status).toBe(500)
        mintedIdOf(died)
        const missing = yield* T.raw({ path: "/missing" })
        expect(missing.status).toBe(404)
        mintedIdOf(missing)
      }))

    it.effect("the lifecycle predicate picks which requests get a record; the route is the path", () =>
      Effect.gen(function*() {
        const traced = mintedIdOf(yield* T.raw({ path: "/traced/a?x=1", headers: { "x-sg-channel": "web" } }))
        expect(yield* T.writesOf(traced)).toEqual([
          {
            op: "create",
            id: traced,
            state: "RECEIVED",
            fields: { method: "GET", route: "/traced/a", channel: "web" }
          },
          { op: "finish", id: traced, state: "COMPLETED" }
        ])
        const failed = mintedIdOf(yield* T.raw({ path: "/traced-failure" }))
        expect((yield* T.writesOf(failed)).at(-1)).toEqual({
          op: "finish",
          id: failed,
          state: "ERRORED",
          fields: { error: "http_503" }
        })
        const plain = mintedIdOf(yield* T.raw({ path: "/inspect" }))
        expect(yield* T.writesOf(plain)).toEqual([])
      }))
  })

  /** A store whose every lifecycle write fails as if Redis were down. */
  const storeDown = Layer.effect(
    TraceStore.TraceStore,
    Effect.map(TraceStore.makeMemory(), (store) => {
      const down = (command: string) =>
        Effect.fail(new TraceStoreUnavailable({ operation: command, message: "Redis at redis://127.0.0.1:1 is not connected" }))
      return TraceStore.TraceStore.of({
        ...store,
        create: () => down("MULTI"),
        transition: () => down("EVALSHA"),
        finish: () => down("EVALSHA")
      })
    })
  )

  layer(served(storeDown), { excludeTestServices: true })("over a store that is down", (it) => {
    it.effect("requests still succeed with their headers; the trace-store breaker opens, then skips the writes", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 10; i++) {
          const answer = yield* T.raw({ path: `/traced/${i}` })
          expect(answer.status).toBe(200)
          expect(answer.text).toBe("traced")
          mintedIdOf(answer)
        }
        const breakers = yield* CircuitBreaker.CircuitBreaker
        expect((yield* breakers.status(TraceLifecycle.breakerName)).state).toBe("open")
        const journal = yield* T.Journal
        // Three writes failed and opened the breaker; every later one was skipped without reaching the store.
        expect(journal.length).toBe(3)
      }))
  })
})
