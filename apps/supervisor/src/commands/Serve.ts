/**
 * `sg serve`: the gateway, with the agent runtime, the breakers, lifecycle tracing, the recorder, and the orphan
 * watchdog under the lease, all configured from the environment.
 *
 * Layers, from the bottom (built first, released last) to the top:
 *
 * 1. `Environment.backendLayer`: the trace store (`REDIS_URL`: Redis, else memory, said in the first log line), the
 *    lease, the watchdog under it, and with Redis the one client they share (the gateway pings it for `/readyz`).
 * 2. `CircuitBreaker.layerConfig` and `TraceIdGenerator.layer`, then `AgentRuntime.layerConfig` (`SG_MODEL`) and
 *    `TraceLifecycle.layer()` over them: one set of breakers for the model, the tools, the trace store and
 *    `/api/status`.
 * 3. `Recorder.layerConfig` saving to the store: it installs its tracer for everything built above it, so the
 *    server's request fibers record; its release flushes what is queued. Below it, `Otel.layerConfig`
 *    (`OTEL_EXPORTER_OTLP_ENDPOINT`; unset: nothing): the recorder hands it each sampled trace, and it flushes after.
 * 4. `NodeHttpServer.layer` over a `node:http` server this module keeps a handle on, listening on `PORT`.
 * 5. `Gateway.layer()`: the routes inside the ingress middleware, served on it.
 * 6. `announce`: the start-up line (address, store, model), and on release the graceful stop: no new connections,
 *    requests in flight get `SG_SHUTDOWN_GRACE` (10 s) to finish, then the remaining connections are closed.
 *
 * Released top-down on SIGTERM or SIGINT: the server drains and closes before the recorder flushes, the recorder
 * flushes before the store, the watchdog lets go of the lease, and the Redis client quits last.
 */
import * as Command from "@effect/cli/Command"
import type * as HttpPlatform from "@effect/platform/HttpPlatform"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { AgentRuntime, Provider } from "@sg/agent-runtime"
import { Gateway } from "@sg/gateway"
import { Otel } from "@sg/otel"
import { CircuitBreaker, type InvalidBreakerPolicy } from "@sg/resilience"
import { type InvalidTraceInput, Recorder, TraceIdGenerator, TraceLifecycle, TraceStore } from "@sg/trace"
import { Config, ConfigError, Deferred, Duration, Effect, Either, Layer } from "effect"
import * as Http from "node:http"
import * as Environment from "../Environment.js"

/** How `sg serve` listens and stops. */
export interface Settings {
  /** `PORT` (8080); 0 lets the system pick a free port (the start-up line says which). */
  readonly port: number
  /** `SG_SHUTDOWN_GRACE` (10 seconds): how long requests in flight may take to finish once a stop is asked. */
  readonly shutdownGrace: Duration.Duration
}

/** `PORT` and `SG_SHUTDOWN_GRACE`, validated. */
export const config: Config.Config<Settings> = Config.all({
  port: Config.integer("PORT").pipe(
    Config.withDefault(8080),
    Config.validate({
      message: "PORT must be a whole number from 0 to 65535 (0: any free port)",
      validation: (n) => n >= 0 && n <= 65535
    }),
    Config.withDescription("the port the gateway listens on")
  ),
  shutdownGrace: Config.mapOrFail(
    Config.duration("SG_SHUTDOWN_GRACE").pipe(Config.withDefault(Duration.seconds(10))),
    (grace) =>
      Duration.isFinite(grace) && Duration.greaterThan(grace, Duration.zero)
        ? Either.right(grace)
        : Either.left(
          ConfigError.InvalidData(["SG_SHUTDOWN_GRACE"], "must be a finite duration greater than zero")
        )
  ).pipe(Config.withDescription("how long requests in flight may take to finish on SIGTERM"))
})

/** A `node:http` server and the responses it has not finished, so a stop can wait for them. */
interface Tracked {
  readonly server: Http.Server
  readonly inFlight: Set<Http.ServerResponse>
  draining: boolean
}

/** A server whose responses are tracked; once draining, each response asks the client to close its connection. */
const track = (server: Http.Server): Tracked => {
  const tracked: Tracked = { server, inFlight: new Set(), draining: false }
  server.on("request", (_request: Http.IncomingMessage, response: Http.ServerResponse) => {
    if (tracked.draining) response.setHeader("connection", "close")
    tracked.inFlight.add(response)
    response.once("close", () => tracked.inFlight.delete(response))
  })
  return tracked
}

/**
 * The graceful stop: stop accepting, close idle keep-alive connections, let the requests in flight finish (their
 * responses close their connections) within `grace`, then close whatever is still open. `node:http` drives it;
 * the platform's own finalizer then finds the server closed already.
 */
const drain = (tracked: Tracked, grace: Duration.Duration): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { inFlight, server } = tracked
    tracked.draining = true
    for (const response of inFlight) if (!response.headersSent) response.setHeader("connection", "close")
    const closed = yield* Deferred.make<void>()
    if (server.listening) server.close(() => Deferred.unsafeDone(closed, Effect.void))
    else Deferred.unsafeDone(closed, Effect.void)
    server.closeIdleConnections()
    yield* Effect.logInfo(
      `stopping: no new connections; ${inFlight.size} request(s) in flight get up to ${Duration.format(grace)}`
    )
    // Finalizers run uninterruptibly, and a timeout waits for an uninterruptible effect: make the wait interruptible.
    const finished = yield* Deferred.await(closed).pipe(Effect.interruptible, Effect.timeoutTo({
      duration: grace,
      onSuccess: () => true,
      onTimeout: () => false
    }))
    if (!finished) {
      yield* Effect.logWarning(
        `grace period over: closing the connections of ${inFlight.size} request(s) still in flight`
      )
      server.closeAllConnections()
      yield* Deferred.await(closed).pipe(Effect.interruptible, Effect.timeout("2 seconds"), Effect.ignore)
    }
    yield* Effect.logInfo("server stopped")
  })

const describeModel = (settings: Provider.Settings): string =>
  settings.kind === "demo" ? "demo (offline)" : `openai ${settings.model} at ${settings.baseUrl}`

/** Logs where the server listens and what it runs on; its release drains the server. */
const announce = (tracked: Tracked, grace: Duration.Duration) =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const selected = yield* Environment.backend
    const model = yield* Provider.config
    const address = server.address
    const where = address._tag === "TcpAddress" ? `http://localhost:${address.port}` : `unix:${address.path}`
    const store = selected.kind === "redis" ? `redis at ${selected.target}` : "memory (this process only)"
    yield* Effect.logInfo(`sg serve listening on ${where}; store: ${store}; model: ${describeModel(model)}`)
    yield* Effect.addFinalizer(() => drain(tracked, grace))
  }))

/** The agent runtime, lifecycle writes and trace ids over one set of breakers, on the backend `REDIS_URL` picks. */
export const servicesLayer = Layer.mergeAll(AgentRuntime.layerConfig, TraceLifecycle.layer()).pipe(
  Layer.provideMerge(Layer.mergeAll(CircuitBreaker.layerConfig, TraceIdGenerator.layer)),
  Layer.provideMerge(Environment.backendLayer)
)

/** The recorder (`SG_RECORD`, `SG_SAMPLE_SUCCESS`, `SG_TRUNCATE`) saving kept records to the store. */
export const recorderLayer: Layer.Layer<Recorder.Recorder, ConfigError.ConfigError, TraceStore.TraceStore> = Layer
  .unwrapEffect(Effect.map(TraceStore.TraceStore, (store) => Recorder.layerConfig({ save: store.saveExecution })))

/**
 * OTLP export of sampled traces (`OTEL_EXPORTER_OTLP_ENDPOINT` and the rest; unset: none), over `node:http` with
 * keep-alive (a quarter of the CPU `fetch` takes per export request).
 */
export const otelLayer = Otel.layerConfig.pipe(
  Layer.provide(NodeHttpClient.layerWithoutAgent),
  Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: true }))
)

/** Why `sg serve` could not start. */
export type StartError =
  | ConfigError.ConfigError
  | InvalidTraceInput
  | InvalidBreakerPolicy
  | AgentRuntime.InvalidAgents
  | HttpServerError.ServeError

/**
 * Everything `sg serve` runs, as one layer configured from the environment (see the module comment for the
 * order). It gives the `HttpServer`, for its address.
 */
export const layer: Layer.Layer<HttpServer.HttpServer | HttpPlatform.HttpPlatform, StartError> = Layer.unwrapEffect(
  Effect.map(config, (settings) => {
    const tracked = track(Http.createServer())
    const served = Gateway.layer().pipe(
      Layer.provideMerge(NodeHttpServer.layer(() => tracked.server, { port: settings.port })),
      Layer.provide(recorderLayer),
      Layer.provide(otelLayer),
      Layer.provide(servicesLayer)
    )
    return Layer.provideMerge(announce(tracked, settings.shutdownGrace), served)
  })
)

/** Serves until interrupted (SIGINT, SIGTERM). */
export const serve = Command.make("serve", {}, () => Effect.zipRight(Environment.logToStderr, Layer.launch(layer)))
  .pipe(
    Command.withDescription(
      "Run the gateway on PORT (8080) with the orphan watchdog under the trace-watchdog lease. REDIS_URL unset: " +
        "an in-memory store for this process only. SIGTERM or SIGINT: stop accepting, let requests in flight finish " +
        "(SG_SHUTDOWN_GRACE, 10 seconds), flush records, release the lease, exit 0. Logs go to stderr."
    )
  )
