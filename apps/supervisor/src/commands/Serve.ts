/**
 * `sg serve`: the gateway, with the agent runtime, the breakers, lifecycle tracing, the recorder, and the orphan
 * watchdog under the lease, all configured from the environment.
 *
 * Before any layer, the API keys (`SG_API_KEYS`, `SG_API_KEYS_FILE`, re-read on SIGHUP) are read: how many there are
 * decides where it listens (`Environment.bind`: `SG_HOST`, by default `127.0.0.1` without keys and `0.0.0.0` with
 * them; beyond loopback without keys only with `SG_INSECURE=on`).
 *
 * Layers, from the bottom (built first, released last) to the top:
 *
 * 1. `Environment.backendLayer`: the trace store (`REDIS_URL`: Redis, else memory, said in the first log line), the
 *    lease, the watchdog under it, and with Redis the one client they share (`/api/status` shows it).
 * 2. `Environment.breakersLayer` (with `REDIS_URL` and `SG_BREAKER_SHARED` on, breakers shared through Redis, the
 *    trace store's own kept local), `TraceIdGenerator.layer` and `Health.layer`, then `AgentRuntime.layerConfig`
 *    (`SG_MODEL`), `TraceLifecycle.layerConfig` and `Readiness.layerConfig` (`SG_READY_REQUIRES_STORE`; it pings the
 *    store every second) over them: one set of breakers for the model, the tools, the trace store, `/readyz` and
 *    `/api/status`.
 * 3. `Recorder.layerConfig` saving to the store: it installs its tracer for everything built above it, so the
 *    server's request fibers record; its release flushes what is queued. Below it, `Otel.layerConfig`
 *    (`OTEL_EXPORTER_OTLP_ENDPOINT`; unset: nothing): the recorder hands it each sampled trace, and it flushes after.
 * 4. `NodeHttpServer.layer` over a `node:http` server this module keeps a handle on, listening on `PORT`. Until the
 *    gateway's handler is attached (and once it is detached), that server answers every request itself: 503
 *    `not_ready` with `Retry-After: 1`, since Node would otherwise leave a request with no listener unanswered.
 * 5. `Gateway.layer({ metricsPublic })`: the routes inside the ingress middleware, served on it, guarded by the keys
 *    and the per-key `SG_RATE_LIMIT` (`Environment.rateLimitLayer`: in Redis with `REDIS_URL`, on the one client).
 * 6. `announce`: the start-up line (the address the server is bound to, store, model, breakers, access: the number of
 *    keys and their tenants, never a key), and on release the graceful stop: `/readyz` 503, no new
 *    connections, requests in flight get `SG_SHUTDOWN_GRACE` (10 s) to finish, then the remaining connections close.
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
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { AgentRuntime, Demo, Provider } from "@sg/agent-runtime"
import { ApiKeys, Gateway, RateLimit, Readiness } from "@sg/gateway"
import { Otel } from "@sg/otel"
import { Health, type InvalidBreakerPolicy } from "@sg/resilience"
import {
  type ExecutionStore,
  type InvalidTraceInput,
  Recorder,
  TraceId,
  TraceIdGenerator,
  TraceLifecycle
} from "@sg/trace"
import { Config, ConfigError, Deferred, Duration, Effect, Either, Layer, Option, Runtime } from "effect"
import { randomBytes } from "node:crypto"
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

/**
 * 503 `not_ready` with `Retry-After: 1` and trace headers of its own, in the gateway's JSON: for a request that
 * arrives while no handler is attached. The body, if any, is read and dropped.
 */
const answerNotReady = (
  request: Http.IncomingMessage,
  response: Http.ServerResponse,
  draining: boolean,
  id: TraceId.TraceId
) => {
  request.resume()
  const body = JSON.stringify({
    error: "not_ready",
    message: draining ? "sg is stopping" : "sg is starting: retry in a second",
    degraded: []
  })
  response.writeHead(503, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "retry-after": "1",
    "x-trace-id": id,
    traceparent: TraceId.toTraceparent(id, randomBytes(8).toString("hex"))
  })
  response.end(body)
}

/**
 * A server whose responses are tracked; once draining, each response asks the client to close its connection. Its
 * listener comes first: while it is the only one, the gateway's handler is not attached yet (or not any more), and
 * it answers the request itself.
 */
const track = (server: Http.Server, ids: TraceIdGenerator.Service): Tracked => {
  const tracked: Tracked = { server, inFlight: new Set(), draining: false }
  server.on("request", (request: Http.IncomingMessage, response: Http.ServerResponse) => {
    if (tracked.draining) response.setHeader("connection", "close")
    tracked.inFlight.add(response)
    response.once("close", () => tracked.inFlight.delete(response))
    if (server.listenerCount("request") === 1) {
      answerNotReady(request, response, tracked.draining, Effect.runSync(ids.next))
    }
  })
  return tracked
}

/**
 * The graceful stop: stop accepting, close idle keep-alive connections, let the requests in flight finish (their
 * responses close their connections) within `grace`, then close whatever is still open. `node:http` drives it;
 * the platform's own finalizer then finds the server closed already.
 */
const drain = (tracked: Tracked, grace: Duration.Duration, readiness: Readiness.Service): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { inFlight, server } = tracked
    yield* readiness.drain
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
  settings.length === 1
    ? Provider.describe(settings[0])
    : `${settings.map(Provider.describe).join(", then ")} (fallback chain)`

/** The address a server is bound to, as a URL (`http://127.0.0.1:8080`, `http://[::]:8080`). */
export const urlOf = (address: HttpServer.Address): string =>
  address._tag === "UnixAddress"
    ? `unix:${address.path}`
    : `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}`

/** Who may call, for the start-up line: the keys' count and tenants (never a key), the limit, `/metrics`. */
const describeAccess = (keys: ApiKeys.KeySet, bound: Environment.Bind, limit: string | null, metricsPublic: boolean) => {
  if (keys.entries.length === 0) {
    return bound.loopback
      ? "access: open, no API keys (loopback only; set SG_API_KEYS to serve other hosts)"
      : "access: open to anyone, no API keys (SG_INSECURE=on)"
  }
  const extras = [
    limit === null ? "no rate limit" : `rate limit ${limit} per key`,
    ...(metricsPublic ? ["/metrics public"] : [])
  ]
  return `access: ${ApiKeys.describe(keys)}, ${extras.join(", ")}`
}

/** Logs where the server listens (its real address) and what it runs on; its release drains the server. */
const announce = (tracked: Tracked, grace: Duration.Duration, bound: Environment.Bind, metricsPublic: boolean) =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const server = yield* HttpServer.HttpServer
    const readiness = yield* Readiness.Readiness
    const keys = yield* Effect.flatMap(ApiKeys.ApiKeys, (service) => service.current)
    const limit = yield* Effect.serviceOption(RateLimit.RequestLimit)
    const selected = yield* Environment.backend
    const model = yield* Provider.config
    const store = selected.kind === "redis" ? `${selected.mode} at ${selected.target}` : "memory (this process only)"
    const breakers = (yield* Environment.breakerMode) === "shared" ? "shared through Redis" : "this process only"
    if (bound.warning !== undefined) yield* Effect.logWarning(bound.warning)
    const access = describeAccess(keys, bound, Option.getOrNull(Option.map(limit, (l) => l.limit.text)), metricsPublic)
    yield* Effect.logInfo(
      `sg serve listening on ${urlOf(server.address)}; store: ${store}; model: ${describeModel(model)}; ` +
        `breakers: ${breakers}; ${access}`
    )
    yield* Effect.addFinalizer(() => drain(tracked, grace, readiness))
  }))

/** The agents `sg serve` runs: the demo agents, on the chain `SG_MODEL` names. */
const runtimeLayer = AgentRuntime.layerConfig(Demo.agents)

/**
 * The agent runtime, lifecycle writes, readiness and trace ids over one set of breakers and health indicators, on
 * the backend `REDIS_URL` picks.
 */
export const servicesLayer = Layer.mergeAll(runtimeLayer, TraceLifecycle.layerConfig, Readiness.layerConfig)
  .pipe(
    Layer.provideMerge(Layer.mergeAll(Environment.breakersLayer, TraceIdGenerator.layer, Health.layer)),
    Layer.provideMerge(Environment.backendLayer)
  )

/** The recorder (`SG_RECORD`, `SG_SAMPLE_SUCCESS`, `SG_TRUNCATE`) saving kept records to the execution store. */
export const recorderLayer: Layer.Layer<Recorder.Recorder, ConfigError.ConfigError, ExecutionStore.ExecutionStore> =
  Recorder.layerStore

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
  | ApiKeys.InvalidApiKeys
  | InvalidTraceInput
  | InvalidBreakerPolicy
  | AgentRuntime.InvalidAgents
  | HttpServerError.ServeError

/**
 * Everything `sg serve` runs, as one layer configured from the environment (see the module comment for the
 * order). It gives the `HttpServer`, for its address. The API keys are read first: how many there are decides
 * where it may listen (`Environment.bind`).
 */
export const layer: Layer.Layer<HttpServer.HttpServer | HttpPlatform.HttpPlatform, StartError> = Layer.unwrapScoped(
  Effect.gen(function*() {
    const settings = yield* config
    const ids = yield* TraceIdGenerator.make
    const keys = yield* Effect.flatMap(ApiKeys.config, ApiKeys.make).pipe(Effect.provide(NodeFileSystem.layer))
    const bound = yield* Environment.bind((yield* keys.current).entries.length)
    const metricsPublic = yield* Environment.metricsPublic
    const tracked = track(Http.createServer(), ids)
    const served = Gateway.layer({ metricsPublic }).pipe(
      Layer.provideMerge(NodeHttpServer.layer(() => tracked.server, { port: settings.port, host: bound.host })),
      Layer.provide(recorderLayer),
      Layer.provide(otelLayer),
      Layer.provideMerge(Layer.merge(Layer.succeed(ApiKeys.ApiKeys, keys), Environment.rateLimitLayer)),
      Layer.provideMerge(servicesLayer)
    )
    return Layer.provideMerge(announce(tracked, settings.shutdownGrace, bound, metricsPublic), served)
  })
)

/**
 * Keeps the process alive through repeated SIGTERM and SIGINT while `effect` runs. `NodeRuntime.runMain` handles the
 * first and then removes its listeners, so a second (a process manager that signals both a process group and its
 * leader, or an impatient operator) would kill the process mid-drain with the default action. These are logged and
 * ignored instead: `SG_SHUTDOWN_GRACE` bounds the drain, and SIGKILL still ends it at once.
 */
const absorbRepeatedSignals = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.acquireUseRelease(
    Effect.map(Effect.runtime<never>(), (runtime) => {
      let received = 0
      const listener = (signal: NodeJS.Signals) => {
        received += 1
        if (received === 1) return
        Runtime.runFork(runtime)(Effect.logWarning(`${signal} again: already stopping (SG_SHUTDOWN_GRACE bounds it)`))
      }
      process.on("SIGTERM", listener)
      process.on("SIGINT", listener)
      return listener
    }),
    () => effect,
    (listener) =>
      Effect.sync(() => {
        process.off("SIGTERM", listener)
        process.off("SIGINT", listener)
      })
  )

/** Serves until interrupted (SIGINT, SIGTERM). */
export const serve = Command.make(
  "serve",
  {},
  () => Effect.zipRight(Environment.logToStderr, absorbRepeatedSignals(Layer.launch(layer)))
).pipe(
    Command.withDescription(
      "Run the gateway on PORT (8080) with the orphan watchdog under the trace-watchdog lease. REDIS_URL unset: " +
        "an in-memory store for this process only. SIGTERM or SIGINT: stop accepting, let requests in flight finish " +
        "(SG_SHUTDOWN_GRACE, 10 seconds), flush records, release the lease, exit 0. Logs go to stderr."
    )
  )
