/**
 * The errors the gateway answers with. Each is a `Schema.TaggedError` in code and, on the wire, the JSON body
 * DESIGN.md gives: `{ "error": <code>, "message": ..., ...fields }` (no `_tag`), with its HTTP status. The
 * `…Json` schemas are those wire forms; the `Api` declaration uses them, so clients derived from it decode an error
 * body back into the class.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Health } from "@sg/resilience"
import * as Schema from "effect/Schema"

/** The request is wrong: a bad body, query parameter or path parameter; `field` names it (`body` for the whole). */
export class BadRequest extends Schema.TaggedError<BadRequest>("@sg/gateway/BadRequest")("BadRequest", {
  field: Schema.String,
  message: Schema.String
}) {}

/** No such route, or no such trace. */
export class NotFound extends Schema.TaggedError<NotFound>("@sg/gateway/NotFound")("NotFound", {
  message: Schema.String
}) {}

/** The body is larger than the gateway accepts. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>("@sg/gateway/PayloadTooLarge")(
  "PayloadTooLarge",
  { limit_bytes: Schema.Number, message: Schema.String }
) {}

/** How one provider of a fallback chain failed. */
export const ProviderFailure = Schema.Struct({
  provider: Schema.String,
  status: Schema.optional(Schema.Int),
  message: Schema.String
})

/**
 * The model provider failed, so the run could not finish; after a fallback chain, `attempts` says how each provider
 * failed.
 */
export class UpstreamFailed extends Schema.TaggedError<UpstreamFailed>("@sg/gateway/UpstreamFailed")(
  "UpstreamFailed",
  { provider: Schema.String, message: Schema.String, attempts: Schema.optional(Schema.Array(ProviderFailure)) }
) {}

/** The run tree outspent one of its budgets (`budget`: `max_steps`, `max_tokens`, `run_timeout`, `max_subagents`). */
export class BudgetExceeded extends Schema.TaggedError<BudgetExceeded>("@sg/gateway/BudgetExceeded")(
  "BudgetExceeded",
  { budget: Schema.String, limit: Schema.Number, message: Schema.String }
) {}

/** A circuit breaker on the run's path is open; `retry_after` is what is left of its cool-down in seconds. */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>("@sg/gateway/CircuitOpen")("CircuitOpen", {
  breaker: Schema.String,
  /** Seconds, rounded up; null while the breaker is held open (isolated) with no end. */
  retry_after: Schema.NullOr(Schema.Number),
  message: Schema.String
}) {}

/** The run took longer than its overall timeout. */
export class Timeout extends Schema.TaggedError<Timeout>("@sg/gateway/Timeout")("Timeout", {
  timeout_ms: Schema.Number,
  message: Schema.String
}) {}

/** `/readyz`: this replica should not be sent requests (starting, draining, or a required store is down). */
export class NotReady extends Schema.TaggedError<NotReady>("@sg/gateway/NotReady")("NotReady", {
  message: Schema.String,
  /** Everything degraded, as in a ready answer. */
  degraded: Schema.Array(Health.Indicator)
}) {}

/** The trace store cannot be read right now (Redis unreachable). */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>("@sg/gateway/StoreUnavailable")(
  "StoreUnavailable",
  { message: Schema.String }
) {}

/** No API key, or one that is not configured (answered with `WWW-Authenticate: Bearer`). */
export class Unauthorized extends Schema.TaggedError<Unauthorized>("@sg/gateway/Unauthorized")("Unauthorized", {
  message: Schema.String
}) {}

/** The key is valid but lacks the scope the route needs; `scope` names it. */
export class Forbidden extends Schema.TaggedError<Forbidden>("@sg/gateway/Forbidden")("Forbidden", {
  scope: Schema.String,
  message: Schema.String
}) {}

/** The key is over its rate limit (`SG_RATE_LIMIT`); `retry_after` is in seconds, as the `Retry-After` header. */
export class RateLimited extends Schema.TaggedError<RateLimited>("@sg/gateway/RateLimited")("RateLimited", {
  limit: Schema.String,
  retry_after: Schema.Number,
  message: Schema.String
}) {}

/** A bug: the gateway failed in a way no request should cause. Logged with its cause. */
export class InternalError extends Schema.TaggedError<InternalError>("@sg/gateway/InternalError")("InternalError", {
  message: Schema.String
}) {}

/** The wire codes, by error. */
export const codes = {
  BadRequest: "bad_request",
  NotFound: "not_found",
  PayloadTooLarge: "payload_too_large",
  UpstreamFailed: "upstream_error",
  BudgetExceeded: "budget_exceeded",
  CircuitOpen: "circuit_open",
  Timeout: "timeout",
  NotReady: "not_ready",
  StoreUnavailable: "store_unavailable",
  Unauthorized: "unauthorized",
  Forbidden: "forbidden",
  RateLimited: "rate_limited",
  InternalError: "internal_error"
} as const

/** Any error of this module. */
export type ApiError =
  | BadRequest
  | NotFound
  | PayloadTooLarge
  | UpstreamFailed
  | BudgetExceeded
  | CircuitOpen
  | Timeout
  | NotReady
  | StoreUnavailable
  | Unauthorized
  | Forbidden
  | RateLimited
  | InternalError

/**
 * The wire form of a tagged error: `_tag` becomes `error: <code>`, every other field stays; annotated with the
 * status HttpApi answers it with.
 */
const wire = <A, I extends { readonly _tag: string }, Code extends string>(
  schema: Schema.Schema<A, I>,
  tag: I["_tag"],
  code: Code,
  status: number
) =>
  Schema.transform(
    Schema.Struct({ error: Schema.Literal(code) }, Schema.Record({ key: Schema.String, value: Schema.Unknown })),
    schema,
    {
      strict: false,
      decode: ({ error: _, ...fields }) => ({ ...fields, _tag: tag }),
      encode: ({ _tag: _, ...fields }) => ({ ...fields, error: code })
    }
  ).annotations(HttpApiSchema.annotations({ status }))

/** 400 `bad_request`. */
export const BadRequestJson = wire(BadRequest, "BadRequest", codes.BadRequest, 400)
/** 404 `not_found`. */
export const NotFoundJson = wire(NotFound, "NotFound", codes.NotFound, 404)
/** 413 `payload_too_large`. */
export const PayloadTooLargeJson = wire(PayloadTooLarge, "PayloadTooLarge", codes.PayloadTooLarge, 413)
/** 502 `upstream_error`. */
export const UpstreamFailedJson = wire(UpstreamFailed, "UpstreamFailed", codes.UpstreamFailed, 502)
/** 422 `budget_exceeded`. */
export const BudgetExceededJson = wire(BudgetExceeded, "BudgetExceeded", codes.BudgetExceeded, 422)
/** 503 `circuit_open` (the `Retry-After` header is set beside it). */
export const CircuitOpenJson = wire(CircuitOpen, "CircuitOpen", codes.CircuitOpen, 503)
/** 504 `timeout`. */
export const TimeoutJson = wire(Timeout, "Timeout", codes.Timeout, 504)
/** 503 `not_ready`. */
export const NotReadyJson = wire(NotReady, "NotReady", codes.NotReady, 503)
/** 503 `store_unavailable`. */
export const StoreUnavailableJson = wire(StoreUnavailable, "StoreUnavailable", codes.StoreUnavailable, 503)
/** 401 `unauthorized`. */
export const UnauthorizedJson = wire(Unauthorized, "Unauthorized", codes.Unauthorized, 401)
/** 403 `forbidden`. */
export const ForbiddenJson = wire(Forbidden, "Forbidden", codes.Forbidden, 403)
/** 429 `rate_limited` (`Retry-After` and the `x-ratelimit-*` headers are set beside it). */
export const RateLimitedJson = wire(RateLimited, "RateLimited", codes.RateLimited, 429)
/** 500 `internal_error`. */
export const InternalErrorJson = wire(InternalError, "InternalError", codes.InternalError, 500)

/** The HTTP status of each error. */
export const statuses: Record<ApiError["_tag"], number> = {
  BadRequest: 400,
  NotFound: 404,
  PayloadTooLarge: 413,
  BudgetExceeded: 422,
  UpstreamFailed: 502,
  CircuitOpen: 503,
  Timeout: 504,
  NotReady: 503,
  StoreUnavailable: 503,
  Unauthorized: 401,
  Forbidden: 403,
  RateLimited: 429,
  InternalError: 500
}

/** The code a status answers with when nothing more specific is known (a response from another app). */
export const codeOfStatus = (status: number): string => {
  switch (status) {
    case 400:
      return codes.BadRequest
    case 401:
      return codes.Unauthorized
    case 403:
      return codes.Forbidden
    case 404:
      return codes.NotFound
    case 413:
      return codes.PayloadTooLarge
    case 422:
      return codes.BudgetExceeded
    case 429:
      return codes.RateLimited
    case 499:
      return "client_closed_request"
    case 500:
      return codes.InternalError
    case 502:
      return codes.UpstreamFailed
    case 504:
      return codes.Timeout
    default:
      return `http_${status}`
  }
}
