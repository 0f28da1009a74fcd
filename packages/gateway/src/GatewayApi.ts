/**
 * The gateway's HTTP contract (DESIGN.md, "HTTP") as an `HttpApi` declaration: every route with the schemas of its
 * path, query, body, answer and errors. The server is built from it (`Gateway`) and clients are derived from it
 * (`HttpApiClient.make(Api)`). JSON, snake_case fields; errors are `{ error: <code>, message, ... }`.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { AgentRuntime } from "@sg/agent-runtime"
import { CircuitBreaker, Health as HealthIndicators } from "@sg/resilience"
import { ExecutionRecord, TraceId, TraceRecord, TraceWatchdog } from "@sg/trace"
import * as Schema from "effect/Schema"
import * as ApiError from "./ApiError.js"
import * as ApiKeys from "./ApiKeys.js"
import * as OpenAiWire from "./OpenAiWire.js"
import * as Prometheus from "./Prometheus.js"

/**
 * `GET /api/traces` query: `status`, `agent`, `tenant` (an admin key's filter; any other key sees its own tenant
 * only), `limit` (1 to 100, 20 by default), `cursor` (a `next_cursor`).
 */
export const ListParams = Schema.Struct({
  status: Schema.optional(ExecutionRecord.Status),
  agent: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64))),
  tenant: Schema.optional(ExecutionRecord.Tenant),
  limit: Schema.optional(
    Schema.NumberFromString.pipe(
      Schema.int({ message: () => "must be a whole number" }),
      Schema.between(1, 100, { message: () => "must be between 1 and 100" })
    )
  ),
  cursor: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(256)))
})

/** A page of execution record summaries, newest first; `next_cursor` is null on the last page. */
export const TracePage = Schema.Struct({
  items: Schema.Array(ExecutionRecord.ExecutionSummary),
  next_cursor: Schema.NullOr(Schema.String)
})

/** `GET /api/traces/:trace_id` path. */
export const TracePath = Schema.Struct({ trace_id: TraceId.TraceId })

/**
 * One trace: its lifecycle record (state, timestamps, fields; null once its hash expired) and its execution record
 * (null when none was kept: successes are sampled).
 */
export const TraceDetail = Schema.Struct({
  trace_id: TraceId.TraceId,
  lifecycle: Schema.NullOr(TraceRecord.TraceRecord),
  record: Schema.NullOr(ExecutionRecord.ExecutionRecord)
})

/** The Redis connection as `/api/status` shows it. */
export const RedisStatus = Schema.Struct({
  /** Whether the last background PING (every second) answered within the readiness timeout. */
  reachable: Schema.Boolean,
  /** The server's URL, password masked. */
  target: Schema.String,
  prefix: Schema.String,
  /** The masters the client sees (`host:port`): the one server, or every master of a Redis Cluster. */
  masters: Schema.Array(Schema.String)
})

/**
 * Access as `/api/status` shows it: whether keys are required, how many are configured and for which tenants (a
 * non-admin key sees its own tenant only), the rate limit per key, and whether `/metrics` is open. Never a key.
 */
export const AccessStatus = Schema.Struct({
  enabled: Schema.Boolean,
  keys: Schema.NonNegativeInt,
  tenants: Schema.Array(Schema.String),
  rate_limit: Schema.NullOr(Schema.String),
  metrics_public: Schema.Boolean
})

/** `GET /api/status`. */
export const Status = Schema.Struct({
  store: Schema.Literal("redis", "redis-cluster", "memory"),
  access: AccessStatus,
  /** Null when no Redis is in use (the memory store). */
  redis: Schema.NullOr(RedisStatus),
  /** Null when this process runs no watchdog. */
  watchdog: Schema.NullOr(TraceWatchdog.Status),
  circuits: Schema.Array(CircuitBreaker.Status)
})

/** `GET /healthz`: the process is up. */
export const Health = Schema.Struct({ status: Schema.Literal("ok") })

/**
 * `GET /readyz` 200: this replica can serve; `degraded` names what is not well (`store`, `breaker:<name>`, and any
 * `Health` indicator), none of it fatal. 503 `not_ready` otherwise (starting, draining, or a required store down).
 */
export const Readiness = Schema.Struct({
  ready: Schema.Literal(true),
  degraded: Schema.Array(HealthIndicators.Indicator)
})

/** `GET /metrics` answer: the Prometheus text exposition. */
export const MetricsText = HttpApiSchema.Text({ contentType: Prometheus.contentType })

/** `POST /v1/runs` body: a run request, and `stream: true` for server-sent events. */
export const RunBody = Schema.extend(
  AgentRuntime.RunRequest,
  Schema.Struct({ stream: Schema.optional(Schema.Boolean) })
)

/**
 * `POST /v1/runs`: run an agent. With `stream: true` (or `accept: text/event-stream`), the answer is an event stream
 * (`text/event-stream`: `run.started`, `text.delta`, `tool.started`, `tool.finished`, `run.finished` / `run.failed`)
 * instead of the JSON `RunResult`; a run that fails before its first output answers its error status either way.
 */
export const runs = HttpApiGroup.make("runs").annotate(ApiKeys.Rule, ApiKeys.rule("run")).add(
  HttpApiEndpoint.post("create", "/v1/runs")
    .setPayload(RunBody)
    .addSuccess(AgentRuntime.RunResult)
    .addError(ApiError.UpstreamFailedJson)
    .addError(ApiError.CircuitOpenJson)
    .addError(ApiError.TimeoutJson)
    .addError(ApiError.BudgetExceededJson)
)

/**
 * The OpenAI-compatible routes (`ChatCompletions`): Chat Completions with `model` = an sg agent, and the agents as
 * models. Their errors are OpenAI's `{error: {message, type, param, code}}` (`OpenAiWire.ErrorBody`), with the
 * statuses of the other routes.
 */
export const openai = HttpApiGroup.make("openai")
  .annotate(ApiKeys.Rule, ApiKeys.rule("run", "openai"))
  .add(
    HttpApiEndpoint.post("chatCompletions", "/v1/chat/completions")
      .setPayload(OpenAiWire.ChatCompletionRequest)
      .addSuccess(OpenAiWire.ChatCompletion)
  )
  .add(HttpApiEndpoint.get("models", "/v1/models").addSuccess(OpenAiWire.ModelList))
  .add(HttpApiEndpoint.get("model", "/v1/models/:model").setPath(OpenAiWire.ModelPath).addSuccess(OpenAiWire.Model))

/** The execution records: list them, open one. */
export const traces = HttpApiGroup.make("traces")
  .annotate(ApiKeys.Rule, ApiKeys.rule("read"))
  .add(
    HttpApiEndpoint.get("list", "/api/traces")
      .setUrlParams(ListParams)
      .addSuccess(TracePage)
      .addError(ApiError.StoreUnavailableJson)
  )
  .add(
    HttpApiEndpoint.get("get", "/api/traces/:trace_id")
      .setPath(TracePath)
      .addSuccess(TraceDetail)
      .addError(ApiError.StoreUnavailableJson)
  )

/** Status, health, readiness and metrics. */
export const ops = HttpApiGroup.make("ops")
  .add(
    HttpApiEndpoint.get("status", "/api/status")
      .addSuccess(Status)
      .annotate(ApiKeys.Rule, ApiKeys.rule("read"))
  )
  .add(
    HttpApiEndpoint.get("healthz", "/healthz")
      .addSuccess(Health)
      .annotate(ApiKeys.Rule, ApiKeys.rule("open"))
  )
  .add(
    HttpApiEndpoint.get("readyz", "/readyz")
      .addSuccess(Readiness)
      .addError(ApiError.NotReadyJson)
      .annotate(ApiKeys.Rule, ApiKeys.rule("open"))
  )
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(MetricsText)
      .annotate(ApiKeys.Rule, ApiKeys.rule("admin"))
  )

/** The trace viewer page: one HTML document (its script and style inline, allowed by hash in its CSP). */
export const Html = HttpApiSchema.Text({ contentType: "text/html; charset=utf-8" })

/** `GET /traces/:trace_id` path: any text, so that the page itself can say what is wrong with a malformed id. */
export const PagePath = Schema.Struct({ trace_id: Schema.String })

/** The trace viewer: the list at `/`, one trace's waterfall at `/traces/:trace_id` (the same page, routed in it). */
export const viewer = HttpApiGroup.make("viewer")
  .annotate(ApiKeys.Rule, ApiKeys.rule("open"))
  .add(HttpApiEndpoint.get("index", "/").addSuccess(Html))
  .add(HttpApiEndpoint.get("trace", "/traces/:trace_id").setPath(PagePath).addSuccess(Html))

/**
 * The gateway's API. Errors every route may answer: 400 `bad_request` (naming the field), 404 `not_found`,
 * 413 `payload_too_large`, 500 `internal_error` (a bug, never an input); with API keys configured (`Access`), 401
 * `unauthorized`, 403 `forbidden` and 429 `rate_limited`. Each group and endpoint says what it needs of its caller
 * with an `ApiKeys.Rule` annotation.
 */
export class Api extends HttpApi.make("sg")
  .add(runs)
  .add(openai)
  .add(traces)
  .add(ops)
  .add(viewer)
  .addError(ApiError.BadRequestJson)
  .addError(ApiError.NotFoundJson)
  .addError(ApiError.PayloadTooLargeJson)
  .addError(ApiError.UnauthorizedJson)
  .addError(ApiError.ForbiddenJson)
  .addError(ApiError.RateLimitedJson)
  .addError(ApiError.InternalErrorJson)
{}
