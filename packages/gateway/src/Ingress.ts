/**
 * The ingress/egress middleware: wraps any @effect/platform `HttpApp` so that every request belongs to an sg trace.
 *
 * - The trace id: a valid incoming `traceparent` (strict W3C, `TraceId.fromTraceparent`) is adopted, else a valid
 *   `x-trace-id`; otherwise (or when they are invalid) a UUIDv7 is minted by the `TraceIdGenerator`.
 * - Spans: the request runs in a server span whose parent is `Tracer.externalSpan` of that id, so every span of the
 *   request carries it (and the `Recorder` groups them under it). An adopted `traceparent` gives the caller's span
 *   as that parent; a minted id has no caller, so the parent is a placeholder whose id is the trace id's low 64 bits.
 *   Serve the app with the platform's own tracer off (`HttpMiddleware.withTracerDisabledWhen(() => true)`, as
 *   `serve` does): it would otherwise open a span around this one from a loosely parsed `traceparent`.
 * - `CurrentTrace` is provided to the app.
 * - Lifecycle, for the requests `options.lifecycle` picks (by default the agent runs, `POST /v1/runs` and
 *   `POST /v1/chat/completions`):
 *   `TraceLifecycle.begin` (`RECEIVED`; metadata `method`, `route`, `platform` and `channel` from `x-sg-platform` /
 *   `x-sg-channel`) before the app runs, without waiting for it; once the response is ready, `COMPLETED`, or `ERRORED`
 *   with `error` = the error code for a status of 400 and up (a streamed response is `EGRESS` while its body
 *   streams; a whole one leaves in the same moment it completes, so that step is not written apart). All of them best
 *   effort (`TraceLifecycle` swallows failures behind the `trace-store` breaker); the request waits for them (at most
 *   the lifecycle deadline) before the response leaves, so a client that reads the trace next finds it finished.
 * - Every response carries `x-trace-id` and `traceparent` (the server span's id, flags `01` or the caller's sampled
 *   bit; never the W3C random flag), failures the app leaves to the server included.
 * - Metrics: `sg_http_requests_total` and `sg_http_request_duration_seconds`, by method, route and status.
 * - A streamed response (an event stream): the span, the metrics and the lifecycle end when its body ends, not when
 *   its headers are ready; the app tells a stream that broke off through `StreamOutcome` (the lifecycle then ends
 *   `ERRORED` with that code), and a client that went away mid-stream ends it `ERRORED` with `client_closed_request`
 *   (status 499 in the metrics).
 * - A traced request whose client went away (the platform answers 499) has its server span marked
 *   `ExecutionSpan.cancelled`, so its execution record is an error, `cancelled`, kept whatever the sampling rate.
 * - Admission (`options.admit`, the gateway's API keys): decided after the trace id and the span, before any
 *   lifecycle write. A refused request is answered as the admission says (traced, with trace headers, counted in the
 *   metrics) and never reaches the app nor the store; an admitted one runs with the admission's context, its headers
 *   on the response, and its tenant in the lifecycle (`tenant`) and on the server span (`sg.tenant`, so the record is
 *   filed under it).
 * - One trace id may arrive on several requests: each request's lifecycle writes go on a lane of its own
 *   (`TraceLifecycle.begin`), carried in `CurrentTrace`, so none overwrites another's.
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { CurrentTrace, ExecutionSpan, TraceId, TraceIdGenerator, TraceLifecycle } from "@sg/trace"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as ApiError from "./ApiError.js"

/** What an admission decided about a request. */
export type Admission =
  | {
    readonly _tag: "Refused"
    /** The answer (401, 403, 429...). */
    readonly response: HttpServerResponse.HttpServerResponse
    /** The route template the request was for, for the metrics; `unmatched` when none. */
    readonly route?: string | undefined
  }
  | {
    readonly _tag: "Admitted"
    /** The tenant the request runs for (its lifecycle's `tenant`, its record's). */
    readonly tenant?: string | undefined
    /** Headers for the response, whatever it is. */
    readonly headers?: Readonly<Record<string, string>> | undefined
    /** Services the app runs with (the caller's principal). */
    readonly context?: Context.Context<never> | undefined
  }

/** Decides whether a request may reach the app, before anything of it is written. */
export type Admit = (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<Admission>

/** Every request admitted, with nothing added. */
export const admitAll: Admit = () => Effect.succeed({ _tag: "Admitted" })

/** How the middleware behaves. */
export interface Options {
  /** Which requests get a lifecycle record; `isAgentRun` by default. */
  readonly lifecycle?: ((request: HttpServerRequest.HttpServerRequest) => boolean) | undefined
  /** Who may make a request (`admitAll` by default). */
  readonly admit?: Admit | undefined
}

/**
 * How a streamed response ended, as its app tells the ingress: `fail(code)` when the stream broke off with an error
 * after its 200 went out. Provided to the app for every request.
 */
export class StreamOutcome extends Context.Tag("@sg/gateway/Ingress/StreamOutcome")<StreamOutcome, {
  readonly fail: (code: string) => void
}>() {}

/** The middleware: the app with tracing, lifecycle, trace headers and request metrics around it. */
export type Middleware = <E, R>(
  app: HttpApp.Default<E, R>
) => HttpApp.Default<E, Exclude<R, CurrentTrace.CurrentTrace | StreamOutcome>>

/** The path of a request URL, without its query. */
export const pathOf = (url: string): string => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

/** The default lifecycle predicate: the agent runs, `POST /v1/runs` and `POST /v1/chat/completions`. */
export const isAgentRun = (request: HttpServerRequest.HttpServerRequest): boolean => {
  if (request.method !== "POST") return false
  const path = pathOf(request.url)
  return path === "/v1/runs" || path === "/v1/chat/completions"
}

/** Requests served, by `method`, `route` (the route template, or `unmatched`) and `status`. */
export const requests = Metric.counter("sg_http_requests_total", {
  description: "HTTP requests served, by method, route and status",
  incremental: true
})

/** Time from ingress to the response being ready, in seconds, by `method`, `route` and `status`. */
export const requestDuration = Metric.histogram(
  "sg_http_request_duration_seconds",
  MetricBoundaries.fromIterable([
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60
  ]),
  "HTTP request latency from ingress to response, by method, route and status"
)

const knownMethods = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])

const labelCache = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
const labelsOf = (method: string, route: string, status: number): ReadonlyArray<MetricLabel.MetricLabel> => {
  const m = knownMethods.has(method) ? method : "OTHER"
  const key = `${m} ${route} ${status}`
  let labels = labelCache.get(key)
  if (labels === undefined) {
    labels = [
      MetricLabel.make("method", m),
      MetricLabel.make("route", route),
      MetricLabel.make("status", String(status))
    ]
    labelCache.set(key, labels)
  }
  return labels
}

/** What a request says about its trace, when it says something valid. */
interface Adopted {
  readonly traceId: TraceId.TraceId
  readonly parentId: string | undefined
  readonly flags: number
}

const headerOf = (request: HttpServerRequest.HttpServerRequest, name: string): string | undefined => {
  const value: unknown = request.headers[name]
  return typeof value === "string" ? value : undefined
}

const adopt = (request: HttpServerRequest.HttpServerRequest): Adopted | undefined => {
  const traceparent = headerOf(request, "traceparent")
  if (traceparent !== undefined) {
    const parsed = TraceId.fromTraceparent(traceparent)
    if (Option.isSome(parsed)) {
      return { traceId: parsed.value.traceId, parentId: parsed.value.parentId, flags: parsed.value.flags & 1 }
    }
  }
  const xTraceId = headerOf(request, "x-trace-id")
  if (xTraceId !== undefined) {
    const parsed = TraceId.parse(xTraceId.trim())
    if (Option.isSome(parsed)) return { traceId: parsed.value, parentId: undefined, flags: 1 }
  }
  return undefined
}

const spanIdPattern = /^[0-9a-f]{16}$/
const zeroSpanId = "0000000000000000"

/** The placeholder parent of a trace with no caller: the id's low 64 bits (random in a UUIDv7), never zero. */
const placeholderSpanId = (hex: string): string => {
  const low = hex.slice(16)
  return low === zeroSpanId ? "0000000000000001" : low
}

const cut = (value: string, max: number): string => (value.length > max ? value.slice(0, max) : value)

const metadataOf = (request: HttpServerRequest.HttpServerRequest, path: string): Record<string, string> => {
  const metadata: Record<string, string> = { method: request.method, route: cut(path, 256) }
  const platform = headerOf(request, "x-sg-platform")
  const channel = headerOf(request, "x-sg-channel")
  if (platform !== undefined) metadata["platform"] = cut(platform, 256)
  if (channel !== undefined) metadata["channel"] = cut(channel, 256)
  return metadata
}

const decoder = new TextDecoder()

/**
 * The lifecycle fields the ingress writes itself (`method`, `route`, `platform`, `channel` and `tenant` at the start,
 * `error` at the end): a request's own metadata may not use them, any more than the store's
 * `TraceRecord.reservedFields`.
 */
export const ownFields: ReadonlySet<string> = new Set(["method", "route", "platform", "channel", "tenant", "error"])

/** The `error` of a JSON error body (or the `error.code` of an OpenAI-shaped one), else the code of its status. */
const errorCodeOf = (response: HttpServerResponse.HttpServerResponse): string => {
  const body = response.body
  if (body._tag === "Uint8Array" && body.contentType.includes("json") && body.body.length <= 65_536) {
    try {
      const parsed: unknown = JSON.parse(decoder.decode(body.body))
      if (typeof parsed === "object" && parsed !== null && "error" in parsed) {
        const error = parsed.error
        if (typeof error === "string") return error
        if (typeof error === "object" && error !== null && "code" in error && typeof error.code === "string") {
          return error.code
        }
      }
    } catch {
      // not JSON after all: fall back to the status
    }
  }
  return ApiError.codeOfStatus(response.status)
}

/** Builds the middleware over the `TraceIdGenerator` and `TraceLifecycle` in context. */
export const make = (
  options?: Options
): Effect.Effect<Middleware, never, TraceIdGenerator.TraceIdGenerator | TraceLifecycle.TraceLifecycle> =>
  Effect.map(
    Effect.zip(TraceIdGenerator.TraceIdGenerator, TraceLifecycle.TraceLifecycle),
    ([generator, lifecycle]): Middleware => {
      const traced = options?.lifecycle ?? isAgentRun
      const admit = options?.admit ?? admitAll

      const handle = <E, R>(
        app: HttpApp.Default<E, R>,
        request: HttpServerRequest.HttpServerRequest,
        traceId: TraceId.TraceId,
        adopted: Adopted | undefined
      ) => {
        const hex = TraceId.toHex(traceId)
        const flags = adopted?.flags ?? 1
        const path = pathOf(request.url)
        const record = traced(request)
        const parent = Tracer.externalSpan({
          traceId: hex,
          spanId: adopted?.parentId ?? placeholderSpanId(hex),
          sampled: (flags & 1) === 1
        })
        const spanOptions = { parent, kind: "server", captureStackTrace: false } as const
        return Effect.flatMap(Effect.makeSpan(`http.server ${request.method}`, spanOptions), (span) => {
          span.attribute("http.request.method", request.method)
          span.attribute("url.path", path)
          const userAgent = headerOf(request, "user-agent")
          if (userAgent !== undefined) span.attribute("user_agent.original", userAgent)
          const spanId = spanIdPattern.test(span.spanId) && span.spanId !== zeroSpanId
            ? span.spanId
            : placeholderSpanId(hex)
          const headers: Record<string, string> = {
            "x-trace-id": traceId,
            traceparent: TraceId.toTraceparent(traceId, spanId, flags)
          }
          const streamFailure: { code: string | undefined } = { code: undefined }
          // One context for everything the request runs: the server span as parent, the trace (and this request's
          // lifecycle lane) as CurrentTrace, and what the admission gave.
          let base = Context.make(Tracer.ParentSpan, span).pipe(
            Context.add(StreamOutcome, {
              fail: (code) => {
                streamFailure.code ??= code
              }
            })
          )
          const contextOf = (lane: CurrentTrace.RequestLane | undefined) =>
            Context.add(base, CurrentTrace.CurrentTrace, { traceId, lane })

          return Effect.clockWith((clock) => {
            const start = clock.unsafeCurrentTimeNanos()
            const endSpan = (exit: Exit.Exit<unknown, unknown>) =>
              Effect.sync(() => span.end(clock.unsafeCurrentTimeNanos(), exit))
            let streaming = false
            const serve = (lane: CurrentTrace.RequestLane | undefined) => {
              const extra = contextOf(lane)
              const inTrace = <A, E1, R1>(effect: Effect.Effect<A, E1, R1>) => Effect.provide(effect, extra)
              /** Metrics and lifecycle for an answer of `status`; `error` is the code of a failed one. */
              const done = (status: number, error: () => string) => {
                span.attribute("http.response.status_code", status)
                // The platform's 499: the client went away and the app was interrupted. The run's record says so.
                if (record && status === 499) ExecutionSpan.cancelled(span)
                const route = span.attributes.get("http.route")
                const labels = labelsOf(request.method, typeof route === "string" ? route : "unmatched", status)
                requests.unsafeUpdate(1, labels)
                requestDuration.unsafeUpdate(Number(clock.unsafeCurrentTimeNanos() - start) / 1e9, labels)
                const failed = status >= 400 || streamFailure.code !== undefined
                return lane !== undefined
                  ? failed
                    ? lifecycle.finish(lane, "ERRORED", { error: streamFailure.code ?? error() })
                    : lifecycle.finish(lane, "COMPLETED")
                  : Effect.void
              }
              const answered = (response: HttpServerResponse.HttpServerResponse) =>
                done(response.status, () => errorCodeOf(response))
              /**
               * A streamed body: the bookkeeping waits for its end, or for the client to go away. Should the server
               * never start the body (the client left first), the request scope's closing does it.
               */
              const deferToEnd = (response: HttpServerResponse.HttpServerResponse) =>
                Effect.flatMap(Effect.serviceOption(Scope.Scope), (scope) => {
                  const body = response.body
                  if (body._tag !== "Stream") return Effect.succeed(response)
                  streaming = true
                  let ended = false
                  const end = (exit: Exit.Exit<unknown, unknown>) => {
                    if (ended) return Effect.void
                    ended = true
                    const gone = Exit.isInterrupted(exit)
                    if (gone) streamFailure.code ??= ApiError.codeOfStatus(499)
                    return done(gone ? 499 : response.status, () => ApiError.codeOfStatus(response.status)).pipe(
                      Effect.zipRight(endSpan(exit))
                    )
                  }
                  const stream = Stream.ensuringWith(body.stream, end)
                  const deferred = HttpServerResponse.setBody(
                    response,
                    HttpBody.stream(stream, body.contentType, body.contentLength)
                  )
                  const egress = lane === undefined ? Effect.void : inTrace(lifecycle.transition("EGRESS"))
                  return Option.isNone(scope)
                    ? Effect.as(egress, deferred)
                    : Effect.as(
                      Effect.zipRight(
                        egress,
                        Scope.addFinalizer(scope.value, Effect.suspend(() => end(Exit.interrupt(FiberId.none))))
                      ),
                      deferred
                    )
                })
              const respond = (exit: Exit.Exit<HttpServerResponse.HttpServerResponse, E>) =>
                Exit.isSuccess(exit)
                  ? exit.value.body._tag === "Stream"
                    ? deferToEnd(HttpServerResponse.setHeaders(exit.value, headers))
                    : Effect.as(answered(exit.value), HttpServerResponse.setHeaders(exit.value, headers))
                  : Effect.flatMap(HttpServerError.causeResponse(exit.cause), ([response]) =>
                    answered(response).pipe(
                      // The server turns the failure into its response later: set the headers on that one.
                      Effect.zipRight(
                        HttpApp.appendPreResponseHandler((_, failed) =>
                          Effect.succeed(HttpServerResponse.setHeaders(failed, headers))
                        )
                      ),
                      Effect.zipRight(Effect.failCause(exit.cause))
                    ))
              return Effect.flatMap(Effect.exit(inTrace(app)), respond)
            }
            const refuse = (response: HttpServerResponse.HttpServerResponse, route: string | undefined) => {
              if (route !== undefined) span.attribute("http.route", route)
              span.attribute("http.response.status_code", response.status)
              const labels = labelsOf(request.method, route ?? "unmatched", response.status)
              requests.unsafeUpdate(1, labels)
              requestDuration.unsafeUpdate(Number(clock.unsafeCurrentTimeNanos() - start) / 1e9, labels)
              return Effect.succeed(HttpServerResponse.setHeaders(response, headers))
            }
            const admitted = (tenant: string | undefined) => {
              if (!record) return serve(undefined)
              const metadata = metadataOf(request, path)
              if (tenant !== undefined) metadata["tenant"] = tenant
              return Effect.flatMap(
                Effect.provide(lifecycle.begin(traceId, metadata), contextOf(undefined)),
                serve
              )
            }
            return Effect.flatMap(Effect.provide(admit(request), contextOf(undefined)), (admission) => {
              if (admission._tag === "Refused") return refuse(admission.response, admission.route)
              if (admission.headers !== undefined) Object.assign(headers, admission.headers)
              if (admission.context !== undefined) base = Context.merge(base, admission.context)
              if (admission.tenant !== undefined) span.attribute(ExecutionSpan.Attributes.tenant, admission.tenant)
              return admitted(admission.tenant)
            }).pipe(
              Effect.onExit((exit) => streaming && Exit.isSuccess(exit) ? Effect.void : endSpan(exit))
            )
          })
        })
      }

      // The platform serves an app uninterruptibly (a route makes its handler interruptible), so the bookkeeping
      // after the app's exit always runs.
      return <E, R>(app: HttpApp.Default<E, R>) =>
        Effect.withFiberRuntime((fiber) => {
          const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
          const adopted = adopt(request)
          return adopted === undefined
            ? Effect.flatMap(generator.next, (traceId) => handle(app, request, traceId, undefined))
            : handle(app, request, adopted.traceId, adopted)
        }) as HttpApp.Default<E, Exclude<R, CurrentTrace.CurrentTrace | StreamOutcome>>
    }
  )
