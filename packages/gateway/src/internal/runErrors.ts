/**
 * A run's failure as the gateway answers it (502 `upstream_error`, 503 `circuit_open` with `Retry-After`, 504
 * `timeout`, 422 `budget_exceeded`, 400 for an unknown agent), and the `x-sg-provider` / `x-sg-attempts` headers
 * of a run's model calls.
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { AgentRuntime, RunEvent } from "@sg/agent-runtime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ApiError from "../ApiError.js"
import * as Issues from "./issues.js"

/** What a run's failure answers. */
export type RunApiError =
  | ApiError.UpstreamFailed
  | ApiError.CircuitOpen
  | ApiError.Timeout
  | ApiError.BudgetExceeded
  | ApiError.BadRequest

/** Seconds for `Retry-After`: rounded up, at least 1; undefined while the breaker is held open with no end. */
export const retryAfterSeconds = (retryAfter: Duration.Duration): number | undefined =>
  Duration.isFinite(retryAfter) ? Math.max(1, Math.ceil(Duration.toMillis(retryAfter) / 1000)) : undefined

/** The gateway's error for a run's failure. */
export const toApiError = (error: AgentRuntime.RunError): RunApiError => {
  switch (error._tag) {
    case "UpstreamError":
      return new ApiError.UpstreamFailed({
        provider: error.provider,
        message: error.message,
        ...(error.attempts !== undefined ? { attempts: error.attempts } : {})
      })
    case "RunTimeout":
      return new ApiError.Timeout({ timeout_ms: error.timeout_ms, message: error.message })
    case "UnknownAgent":
      return Issues.badRequest([{ path: ["agent"], message: error.message }], "body")
    case "CircuitOpenError":
      return new ApiError.CircuitOpen({
        breaker: error.name,
        retry_after: retryAfterSeconds(error.retryAfter) ?? null,
        message: error.message
      })
    case "BudgetExceeded":
      return new ApiError.BudgetExceeded({ budget: error.budget, limit: error.limit, message: error.message })
  }
}

/** Sets `headers` on the response the request ends with, success or error. */
export const setHeadersOnResponse = (headers: () => Readonly<Record<string, string>>): Effect.Effect<void> =>
  HttpApp.appendPreResponseHandler((_, response) =>
    Effect.succeed(HttpServerResponse.setHeaders(response, headers()))
  )

/** Fails with the gateway's error for `error`; a `circuit_open` also sets `Retry-After` on the response. */
export const failWith = (error: AgentRuntime.RunError): Effect.Effect<never, RunApiError> => {
  const api = toApiError(error)
  if (api._tag !== "CircuitOpen" || api.retry_after === null) return Effect.fail(api)
  const seconds = String(api.retry_after)
  return Effect.zipRight(setHeadersOnResponse(() => ({ "retry-after": seconds })), Effect.fail(api))
}

/**
 * Follows a run's `model.attempt` events: `x-sg-provider` is the provider of its last model call's last try (the one
 * that answered, or the last that failed), `x-sg-attempts` how many providers that call tried.
 */
export const makeAttempts = () => {
  let provider: string | undefined
  let attempts = 0
  return {
    observe: (event: RunEvent.RunEvent): void => {
      if (event.type !== "model.attempt") return
      provider = event.provider
      attempts = event.attempt
    },
    headers: (): Readonly<Record<string, string>> =>
      provider === undefined ? {} : { "x-sg-provider": provider, "x-sg-attempts": String(attempts) }
  }
}
