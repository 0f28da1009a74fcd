/**
 * `POST /v1/runs`: the body read and decoded (every way it can be bad answers 400 or 413), the run made, and its
 * answer sent as JSON, or as server-sent events with `stream: true` (or `accept: text/event-stream` and no
 * `stream` field): `run.started`, `text.delta`, `tool.started`, `tool.finished`, then `run.finished` (the JSON
 * answer's body) or `run.failed` (`{error, message, ...}`). Both carry `x-sg-provider` and `x-sg-attempts`.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { AgentRuntime, type RunEvent } from "@sg/agent-runtime"
import { type TraceLifecycle, TraceRecord } from "@sg/trace"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as ApiError from "../ApiError.js"
import { ownFields } from "../Ingress.js"
import * as Sse from "../Sse.js"
import { readJson } from "./body.js"
import * as Issues from "./issues.js"
import * as RunErrors from "./runErrors.js"

const decodeRunRequest = Schema.decodeUnknown(AgentRuntime.RunRequest)

const isObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** An error's wire form: `{ error: <code>, message, ...fields }`. */
export const wireOf = (error: ApiError.ApiError): Record<string, unknown> => {
  const { _tag, ...fields } = error as unknown as { readonly _tag: keyof typeof ApiError.codes } & Record<
    string,
    unknown
  >
  return { error: ApiError.codes[_tag], message: error.message, ...fields }
}

/** The sg event stream's frames for one run event. */
const encode = (event: RunEvent.RunEvent): ReadonlyArray<string> => {
  switch (event.type) {
    case "model.attempt":
      return []
    case "run.finished":
      return [Sse.frame(event.type, JSON.stringify(event.result))]
    default: {
      const { type, ...data } = event
      return [Sse.frame(type, JSON.stringify(data))]
    }
  }
}

const wantsStream = (
  request: HttpServerRequest.HttpServerRequest,
  body: Record<string, unknown>
): Effect.Effect<boolean, ApiError.BadRequest> => {
  const stream = body["stream"]
  if (stream === undefined) {
    const accept = request.headers["accept"]
    return Effect.succeed(typeof accept === "string" && accept.toLowerCase().includes("text/event-stream"))
  }
  return typeof stream === "boolean"
    ? Effect.succeed(stream)
    : Effect.fail(new ApiError.BadRequest({ field: "stream", message: "stream: must be a boolean" }))
}

/** A metadata key naming a field sg writes itself (the store's or the ingress's) is refused, naming it. */
const checkMetadata = (request: AgentRuntime.RunRequest): Effect.Effect<void, ApiError.BadRequest> => {
  if (request.metadata === undefined) return Effect.void
  for (const key of Object.keys(request.metadata)) {
    if (TraceRecord.reservedFields.has(key) || ownFields.has(key)) {
      return Effect.fail(
        Issues.badRequest([{
          path: ["metadata", key],
          message: `"${key}" is a field sg writes itself in the trace's lifecycle record`
        }], "body")
      )
    }
  }
  return Effect.void
}

/** Answers `POST /v1/runs`. */
export const handle = (
  runtime: AgentRuntime.Service,
  lifecycle: TraceLifecycle.Service,
  request: HttpServerRequest.HttpServerRequest,
  maxBodyBytes: number
): Effect.Effect<
  AgentRuntime.RunResult | HttpServerResponse.HttpServerResponse,
  RunErrors.RunApiError | ApiError.PayloadTooLarge,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const body = yield* readJson(request, maxBodyBytes)
    if (!isObject(body)) {
      return yield* new ApiError.BadRequest({ field: "body", message: "body: must be a JSON object" })
    }
    const run = yield* Effect.mapError(decodeRunRequest(body), (error) => Issues.fromParseError(error, "body"))
    yield* checkMetadata(run)
    // The lifecycle record was created before the body was read: the metadata joins it now (best effort).
    if (run.metadata !== undefined) yield* lifecycle.annotate(run.metadata)
    const stream = yield* wantsStream(request, body)
    const attempts = RunErrors.makeAttempts()
    yield* RunErrors.setHeadersOnResponse(attempts.headers)
    if (!stream) {
      return yield* runtime.run(run, { onEvent: (event) => Effect.sync(() => attempts.observe(event)) }).pipe(
        Effect.catchAll(RunErrors.failWith)
      )
    }
    return yield* Sse.respond(
      (listener) =>
        runtime.run(run, {
          onEvent: (event) => {
            attempts.observe(event)
            return listener(event)
          },
          textDeltas: true
        }),
      {
        encode,
        failed: (error: AgentRuntime.RunError) => {
          const api = RunErrors.toApiError(error)
          return { frames: [Sse.frame("run.failed", JSON.stringify(wireOf(api)))], code: ApiError.codes[api._tag] }
        },
        headers: attempts.headers
      }
    ).pipe(Effect.catchAll(RunErrors.failWith))
  })
