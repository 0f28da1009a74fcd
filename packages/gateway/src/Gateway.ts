/**
 * The gateway: the `Api` declaration implemented over the services in context, wrapped in the `Ingress`
 * middleware, served by whatever `HttpServer` is provided.
 *
 * ```ts
 * Gateway.layer().pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 8080 })),
 *   Layer.provide(services), // AgentRuntime, TraceStore, ExecutionStore, TraceLifecycle, CircuitBreaker, TraceIdGenerator
 *   Layer.launch
 * )
 * ```
 *
 * A `TraceWatchdog`, when present in the context the layer is built in, shows in `/api/status`, and so does a Redis
 * store's address. `ApiKeys`, when present, guards the routes (`Access`), with the `RateLimit.RequestLimit` in
 * context if any; a key that is not `admin` reads its own tenant's traces only (another tenant's trace answers 404,
 * as an unknown one). `/readyz` answers from the `Readiness` in context, or from one the layer starts itself (default
 * options, the `readinessTimeout` below). Install the `Recorder` (`Recorder.layerStore`) around it to keep records.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { AgentRuntime } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import type { TraceIdGenerator, TraceStoreFailure } from "@sg/trace"
import { ExecutionStore, TraceLifecycle, TraceStore, TraceWatchdog } from "@sg/trace"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Access from "./Access.js"
import * as ApiError from "./ApiError.js"
import * as ApiKeys from "./ApiKeys.js"
import * as ChatCompletions from "./ChatCompletions.js"
import { Api } from "./GatewayApi.js"
import * as Ingress from "./Ingress.js"
import * as Issues from "./internal/issues.js"
import * as Runs from "./internal/runs.js"
import * as Prometheus from "./Prometheus.js"
import * as RateLimit from "./RateLimit.js"
import * as Readiness from "./Readiness.js"
import * as Viewer from "./Viewer.js"

/** How the gateway serves. */
export interface Options {
  /** Largest request body accepted, in bytes; 1 MiB by default. Larger ones answer 413. */
  readonly maxBodyBytes?: number | undefined
  /**
   * How long the background check waits for the store to answer a PING, when the layer starts its own `Readiness`
   * (none in context); 500 millis by default.
   */
  readonly readinessTimeout?: Duration.DurationInput | undefined
  /** The ingress middleware's options (which requests get a lifecycle record). */
  readonly ingress?: Omit<Ingress.Options, "admit"> | undefined
  /** `/metrics` needs no key even with API keys configured (`SG_METRICS_PUBLIC`); off by default. */
  readonly metricsPublic?: boolean | undefined
}

/** The defaults of `Options`. */
export const defaults = {
  maxBodyBytes: 1024 * 1024,
  readinessTimeout: Duration.millis(500)
} as const

const storeUnavailable = (error: { readonly message: string }) =>
  new ApiError.StoreUnavailable({ message: `the trace store cannot be read: ${error.message}` })

const runsLive = (maxBodyBytes: number) =>
  HttpApiBuilder.group(Api, "runs", (handlers) =>
    Effect.map(Effect.zip(AgentRuntime.AgentRuntime, TraceLifecycle.TraceLifecycle), ([runtime, lifecycle]) =>
      // Raw: the body is read and decoded there, so that every way it can be bad answers 400 or 413 (see readJson).
      handlers.handleRaw("create", ({ request }) => Runs.handle(runtime, lifecycle, request, maxBodyBytes))))

/** The one tenant the caller may read, or `undefined` for every tenant (an admin key, or access open). */
const tenantOf = (caller: Option.Option<ApiKeys.Principal>): string | undefined =>
  Option.isNone(caller) || ApiKeys.allows(caller.value, "admin") ? undefined : caller.value.tenant

const caller = Effect.serviceOption(ApiKeys.CurrentPrincipal)

const notFound = (traceId: string) =>
  new ApiError.NotFound({ message: `no trace ${traceId}: it is unknown, was not sampled, or has expired` })

const tracesLive = HttpApiBuilder.group(Api, "traces", (handlers) =>
  Effect.map(Effect.zip(TraceStore.TraceStore, ExecutionStore.ExecutionStore), ([store, executions]) =>
    handlers
      .handle("list", ({ urlParams }) =>
        Effect.flatMap(caller, (principal): Effect.Effect<
          ExecutionStore.Page,
          ApiError.Forbidden | ExecutionStore.InvalidExecutionQuery | TraceStoreFailure
        > => {
          const own = tenantOf(principal)
          if (own !== undefined && urlParams.tenant !== undefined && urlParams.tenant !== own) {
            return Effect.fail(
              new ApiError.Forbidden({
                scope: "admin",
                message: "tenant: only an admin key lists another tenant's traces"
              })
            )
          }
          return executions.list(own === undefined ? urlParams : { ...urlParams, tenant: own })
        }).pipe(
          Effect.catchTags({
            InvalidExecutionQuery: (error) =>
              Effect.fail(Issues.badRequest([{ path: [error.field], message: error.message }], "query")),
            TraceStoreUnavailable: (error) => Effect.fail(storeUnavailable(error)),
            TraceStoreCommandError: (error) => Effect.fail(storeUnavailable(error))
          })
        ))
      .handle("get", ({ path: { trace_id } }) =>
        Effect.all([
          Effect.map(caller, tenantOf),
          store.get(trace_id).pipe(
            Effect.catchTag("InvalidTraceRecord", (error) =>
              Effect.as(
                Effect.logWarning(`unreadable lifecycle record: ${error.message}`).pipe(
                  Effect.annotateLogs({ trace_id, field: error.field })
                ),
                Option.none()
              ))
          ),
          executions.get(trace_id).pipe(
            Effect.catchTag("ExecutionRecordCorrupt", (error) =>
              Effect.as(
                Effect.logWarning(`unreadable execution record: ${error.message}`).pipe(
                  Effect.annotateLogs({ trace_id })
                ),
                Option.none()
              ))
          )
        ], { concurrency: 3 }).pipe(
          Effect.catchTags({
            TraceStoreUnavailable: (error) => Effect.fail(storeUnavailable(error)),
            TraceStoreCommandError: (error) => Effect.fail(storeUnavailable(error))
          }),
          Effect.flatMap(([own, stored, kept]) => {
            // Another tenant's trace is not there for this caller: a record answers for its whole trace, and the
            // lifecycle alone (no record kept) for itself.
            const record = own === undefined ? kept : Option.filter(kept, (r) => r.tenant === own)
            const lifecycle = own === undefined
              ? stored
              : Option.isSome(kept) && Option.isNone(record)
              ? Option.none()
              : Option.filter(stored, (l) => l.fields["tenant"] === own)
            return Option.isNone(lifecycle) && Option.isNone(record)
              ? Effect.fail(notFound(trace_id))
              : Effect.succeed({
                trace_id,
                lifecycle: Option.getOrNull(lifecycle),
                record: Option.getOrNull(record)
              })
          })
        ))
  ))

/** 503 `not_ready`; while starting, with `Retry-After: 1` (it will be ready soon; a draining replica will not). */
const notReady = (report: Readiness.Report): Effect.Effect<never, ApiError.NotReady> => {
  const failure = Effect.fail(
    new ApiError.NotReady({ message: report.reason ?? "not ready", degraded: report.degraded })
  )
  return report.phase !== "starting" ? failure : Effect.zipRight(
    HttpApp.appendPreResponseHandler((_, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", "1"))
    ),
    failure
  )
}

const opsLive = (readinessTimeout: Duration.Duration, metricsPublic: boolean) =>
  HttpApiBuilder.group(Api, "ops", (handlers) =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const keys = yield* Effect.serviceOption(ApiKeys.ApiKeys)
      const limit = yield* Effect.serviceOption(RateLimit.RequestLimit)
      const access = Effect.gen(function*() {
        const set = Option.isNone(keys) ? ApiKeys.empty : yield* keys.value.current
        const own = tenantOf(yield* caller)
        return {
          enabled: set.entries.length > 0,
          keys: set.entries.length,
          tenants: own === undefined ? set.tenants : [own],
          rate_limit: Option.isNone(limit) ? null : limit.value.limit.text,
          metrics_public: metricsPublic
        }
      })
      const breakers = yield* CircuitBreaker.CircuitBreaker
      const watchdog = yield* Effect.serviceOption(TraceWatchdog.TraceWatchdog)
      const readiness = yield* Option.match(yield* Effect.serviceOption(Readiness.Readiness), {
        onNone: () => Readiness.make({ timeout: readinessTimeout }),
        onSome: Effect.succeed
      })
      const address = store.address
      // The last background check's answer; before the first one, the store is asked.
      const reachable = Effect.flatMap(readiness.store, (check) =>
        Option.match(check, {
          onNone: () => store.ping.pipe(Effect.timeout(readinessTimeout), Effect.isSuccess),
          onSome: (last) => Effect.succeed(last.reachable)
        }))
      return handlers
        .handle("healthz", () => Effect.succeed({ status: "ok" as const }))
        .handle("readyz", () =>
          Effect.flatMap(readiness.report, (report) =>
            report.ready ? Effect.succeed({ ready: true as const, degraded: report.degraded }) : notReady(report)))
        .handle("status", () =>
          Effect.all({
            store: Effect.succeed(store.backend),
            access,
            redis: address === undefined
              ? Effect.succeed(null)
              : Effect.map(
                Effect.zip(reachable, address.masters, { concurrent: true }),
                ([reachable, masters]) => ({ reachable, target: address.target, prefix: address.prefix, masters })
              ),
            watchdog: Option.match(watchdog, {
              onNone: () => Effect.succeed(null),
              onSome: (running) => running.status
            }),
            circuits: breakers.snapshot
          }, { concurrency: "unbounded" }))
        .handle("metrics", () => Prometheus.snapshot)
    }))

/**
 * The trace viewer page, read once here (a missing page is a broken installation: the layer dies saying where it
 * looked) and answered as is for both of its routes.
 */
const viewerLive = HttpApiBuilder.group(Api, "viewer", (handlers) =>
  Effect.map(Effect.orDie(Viewer.load()), (page) => {
    const response = Effect.succeed(Viewer.respond(page))
    return handlers.handle("index", () => response).handle("trace", () => response)
  }))

const describe = (request: { readonly method: string; readonly url: string }): string => {
  const path = Ingress.pathOf(request.url)
  return `${request.method} ${path.length > 200 ? `${path.slice(0, 200)}…` : path}`
}

/**
 * Errors the API's own machinery raises, in the gateway's JSON: a path or query that does not decode becomes 400
 * `bad_request` naming the field (instead of HttpApi's `HttpApiDecodeError` body), an unknown route 404
 * `not_found`, a defect 500 `internal_error` (logged with its cause).
 */
const errorsLive = HttpApiBuilder.middleware(Api, (app) =>
  Effect.catchAllCause(app, (cause): Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    ApiError.BadRequest | ApiError.NotFound | ApiError.InternalError
  > => {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const error: unknown = failure.value
      if (error instanceof HttpApiDecodeError) return Effect.fail(Issues.badRequest(error.issues, "request"))
      if (HttpServerError.isServerError(error)) {
        if (error._tag === "RouteNotFound") {
          return Effect.fail(new ApiError.NotFound({ message: `no route for ${describe(error.request)}` }))
        }
        if (error._tag === "RequestError") {
          return Effect.fail(new ApiError.BadRequest({ field: "body", message: "body could not be read" }))
        }
      }
      return Effect.failCause(cause)
    }
    if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
    return Effect.zipRight(
      Effect.logError("request failed with a defect", cause),
      Effect.fail(new ApiError.InternalError({ message: "internal error: see the server's log" }))
    )
  }))

/** The API's handlers over the services in context (no server, no ingress). */
export const layerApi = (
  options?: Options
) =>
  HttpApiBuilder.api(Api).pipe(
    Layer.provide([
      runsLive(options?.maxBodyBytes ?? defaults.maxBodyBytes),
      ChatCompletions.layer(options?.maxBodyBytes ?? defaults.maxBodyBytes),
      tracesLive,
      opsLive(Duration.decode(options?.readinessTimeout ?? defaults.readinessTimeout), options?.metricsPublic === true),
      viewerLive,
      errorsLive
    ])
  )

/**
 * The whole gateway served on the `HttpServer` in context: the routes of `Api` inside the `Ingress` middleware,
 * with the platform's own request tracer off (the ingress opens the server span, parented on the sg trace id).
 */
export const layer = (options?: Options): Layer.Layer<
  never,
  never,
  | HttpServer.HttpServer
  | HttpRouter.HttpRouter.DefaultServices
  | AgentRuntime.AgentRuntime
  | TraceStore.TraceStore
  | ExecutionStore.ExecutionStore
  | TraceLifecycle.TraceLifecycle
  | TraceIdGenerator.TraceIdGenerator
  | CircuitBreaker.CircuitBreaker
> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const app = yield* HttpApiBuilder.httpApp
      const keys = yield* Effect.serviceOption(ApiKeys.ApiKeys)
      const admit = Option.isNone(keys) ? Ingress.admitAll : yield* Access.make(Api, {
        open: options?.metricsPublic === true ? ["ops.metrics"] : []
      }).pipe(Effect.provideService(ApiKeys.ApiKeys, keys.value))
      const ingress = yield* Ingress.make({ ...options?.ingress, admit })
      return HttpServer.serve(ingress(app))
    })
  ).pipe(
    HttpMiddleware.withTracerDisabledWhen(() => true),
    Layer.provide(layerApi(options)),
    Layer.provide([HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer])
  )
