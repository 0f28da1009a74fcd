/**
 * A gateway on a free port for tests: `Gateway.layer` over the fake runtime, a store (memory by default, with a
 * journal of every lifecycle write), real breakers and the recorder (every success kept), plus helpers to send raw
 * requests to it.
 */
import { HttpApiClient, HttpClient, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { CircuitBreaker } from "@sg/resilience"
import { ExecutionStore, Recorder, TraceIdGenerator, TraceLifecycle, TraceStore } from "@sg/trace"
import { Context, Duration, Effect, Layer, Schedule } from "effect"
import * as Http from "node:http"
import * as Gateway from "../../src/Gateway.js"
import { Api } from "../../src/GatewayApi.js"
import * as FakeRuntime from "./FakeRuntime.js"

/** One lifecycle write, as the store was asked for it. */
export interface Write {
  readonly op: "create" | "annotate" | "transition" | "finish"
  readonly id: string
  readonly state?: string | undefined
  readonly fields?: Readonly<Record<string, string>> | undefined
}

/** Every lifecycle write the store was asked for, in order. */
export class Journal extends Context.Tag("test/gateway/Journal")<Journal, Array<Write>>() {}

/** The writes of one trace. */
export const writesOf = (id: string) => Effect.map(Journal, (writes) => writes.filter((w) => w.id === id))

/** A store that journals lifecycle writes, over `inner` (whatever else `inner` provides, passed on). */
export const layerJournaled = <ROut, E, R>(inner: Layer.Layer<TraceStore.TraceStore | ROut, E, R>) =>
  Layer.effectContext(
    Effect.gen(function*() {
      const context = yield* Effect.context<TraceStore.TraceStore | ROut>()
      const store = Context.get(context, TraceStore.TraceStore)
      const journal = yield* Journal
      const note = (write: Write) => Effect.sync(() => void journal.push(write))
      return Context.add(context, TraceStore.TraceStore, {
        ...store,
        create: (id, state, metadata, options) =>
          Effect.zipRight(
            note({ op: "create", id, state, fields: metadata }),
            store.create(id, state, metadata, options)
          ),
        annotate: (id, fields) => Effect.zipRight(note({ op: "annotate", id, fields }), store.annotate(id, fields)),
        transition: (id, state, options) =>
          Effect.zipRight(note({ op: "transition", id, state }), store.transition(id, state, options)),
        finish: (id, state, fields, options) =>
          Effect.zipRight(note({ op: "finish", id, state, fields }), store.finish(id, state, fields, options))
      })
    })
  ).pipe(Layer.provide(inner), Layer.provideMerge(Layer.sync(Journal, () => [])))

const recording = Layer.unwrapEffect(
  Effect.map(ExecutionStore.ExecutionStore, (store) =>
    Recorder.layer({ save: store.save, sampleSuccess: 1, grace: Duration.millis(5) }))
)

/** Breakers: the defaults, and a trace-store breaker that cools down in a second (for recovery tests). */
export const breakers = CircuitBreaker.layer({ policies: { "trace-store": { cooldown: Duration.seconds(1) } } }).pipe(
  Layer.orDie
)

/** The gateway and everything it needs, over the given stores (and whatever they need). */
export const make = <E, R>(
  store: Layer.Layer<TraceStore.TraceStore | ExecutionStore.ExecutionStore, E, R>,
  options?: Gateway.Options
) => {
  const services = FakeRuntime.layer.pipe(
    Layer.provideMerge(Layer.sync(FakeRuntime.Seen, () => [])),
    // A deadline no write misses on a loaded machine: these tests read the lifecycle right after the response.
    Layer.provideMerge(TraceLifecycle.layer({ deadline: "10 seconds" })),
    Layer.provideMerge(Layer.mergeAll(layerJournaled(store), breakers, TraceIdGenerator.layer))
  )
  return Gateway.layer(options).pipe(
    Layer.provide(recording),
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(services)
  )
}

/** The gateway over the memory store. */
export const layerMemory = make(Layer.merge(TraceStore.layerMemory, ExecutionStore.layerMemory))

/** A client derived from the `Api` declaration (our own spans are not propagated: the gateway mints ids). */
export const client = HttpApiClient.make(Api, { transformClient: HttpClient.withTracerPropagation(false) })

/** What a raw request got back. */
export interface Answer {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
  readonly json: any
}

/** A raw request, with `node:http` (so path, method and body bytes go out as given). */
export interface RawRequest {
  readonly method?: string
  readonly path: string
  readonly headers?: Readonly<Record<string, string | number>>
  /** The body; an array of chunks is sent chunked (no content-length). */
  readonly body?: string | Uint8Array | ReadonlyArray<Uint8Array>
  /** The agent to send it with; by default none (a connection of its own, closed after). */
  readonly agent?: Http.Agent
}

/** What a raw request got back, and whether it went out on a connection an earlier request had used. */
export interface AnswerOnSocket extends Answer {
  readonly reusedSocket: boolean
}

/** Sends a raw request to the gateway under test. */
export const raw = (request: RawRequest): Effect.Effect<AnswerOnSocket, Error, HttpServer.HttpServer> =>
  Effect.flatMap(HttpServer.HttpServer, (server) =>
    Effect.async<AnswerOnSocket, Error>((resume) => {
      const address = server.address
      if (address._tag !== "TcpAddress") return resume(Effect.fail(new Error("not a TCP server")))
      const req = Http.request({
        host: "127.0.0.1",
        port: address.port,
        method: request.method ?? "GET",
        path: request.path,
        headers: { ...request.headers },
        agent: request.agent ?? false
      }, (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          let json: unknown = undefined
          try {
            json = JSON.parse(text)
          } catch {
            // not JSON
          }
          const status = res.statusCode ?? 0
          resume(Effect.succeed({ status, headers: res.headers, text, json, reusedSocket: req.reusedSocket }))
        })
        res.on("error", (error) => resume(Effect.fail(error)))
      })
      req.on("error", (error) => resume(Effect.fail(error)))
      const body = request.body
      if (body === undefined) req.end()
      else if (typeof body === "string" || body instanceof Uint8Array) req.end(body)
      else {
        for (const chunk of body) req.write(chunk)
        req.end()
      }
    }))

/** Sends a JSON run request. */
export const postRun = (body: unknown, headers?: Readonly<Record<string, string>>) =>
  raw({
    method: "POST",
    path: "/v1/runs",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })

/** Retries `effect` every 20 ms for up to `within` (real time) until it succeeds. */
export const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, within: Duration.DurationInput = "5 seconds") =>
  Effect.retry(effect, Schedule.spaced("20 millis").pipe(Schedule.upTo(within)))
