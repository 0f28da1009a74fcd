/**
 * The OpenAI-compatible routes: `POST /v1/chat/completions` and `GET /v1/models` (and `/v1/models/:model`), in
 * OpenAI's wire format (`OpenAiWire`), so that OpenAI's SDKs and every tool built on them talk to sg's agents.
 *
 * - `model` names an sg agent (`GET /v1/models` lists them); an unknown one is 404 `model_not_found`.
 * - `messages` become the run: the last message, which must be the user's, is its input; the ones before are its
 *   history (system and developer messages after the agent's instructions). Only text content is read. `metadata`
 *   is the run's metadata.
 * - The answer is a `chat.completion` whose `usage` counts the whole run tree's tokens; with `stream: true`,
 *   `chat.completion.chunk` events (the role, the text as it streams, the finish, the usage chunk with
 *   `stream_options.include_usage`) ending in `data: [DONE]`. A run that fails before its first output answers its
 *   status; one that fails after ends the stream with an `{error}` event (no `[DONE]`).
 * - Errors are OpenAI's `{error: {message, type, param, code}}`, with sg's statuses and sg's error code as `code`.
 *
 * Every request is a traced, recorded run, like `POST /v1/runs` (the ingress picks it up as an agent run).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { AgentRuntime, type RunEvent } from "@sg/agent-runtime"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as ApiError from "./ApiError.js"
import { Api } from "./GatewayApi.js"
import { readJson } from "./internal/body.js"
import * as Issues from "./internal/issues.js"
import * as RunErrors from "./internal/runErrors.js"
import * as Wire from "./OpenAiWire.js"
import * as Sse from "./Sse.js"

/** What `owned_by` says of sg's agents. */
export const owner = "sg"

/** An OpenAI-shaped error response. */
export const errorResponse = (
  status: number,
  error: { readonly message: string; readonly code: string; readonly param?: string | undefined },
  headers?: Readonly<Record<string, string>>
): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(Wire.errorBody(status, error), { status, ...(headers !== undefined ? { headers } : {}) })

const statuses = ApiError.statuses

/** The OpenAI-shaped answer of one of the gateway's errors (`Retry-After` on `circuit_open`). */
export const fromApiError = (error: ApiError.ApiError): HttpServerResponse.HttpServerResponse =>
  errorResponse(
    statuses[error._tag],
    {
      message: error.message,
      code: ApiError.codes[error._tag],
      param: error._tag === "BadRequest" ? error.field : undefined
    },
    error._tag === "CircuitOpen" && error.retry_after !== null
      ? { "retry-after": String(error.retry_after) }
      : undefined
  )

const modelNotFound = (model: string, known: ReadonlyArray<string>) =>
  errorResponse(404, {
    message: `The model \`${model}\` does not exist: sg serves the agents ${known.join(", ")}`,
    code: "model_not_found",
    param: "model"
  })

const textOf = (message: Wire.Message, index: number): Effect.Effect<string, ApiError.BadRequest> => {
  const content = message.content
  if (content === undefined || content === null) return Effect.succeed("")
  if (typeof content === "string") return Effect.succeed(content)
  const texts: Array<string> = []
  for (const part of content) {
    if (part.type !== "text" || part.text === undefined) {
      return Effect.fail(
        new ApiError.BadRequest({
          field: `messages.${index}.content`,
          message: `messages.${index}.content: only text parts are supported, not "${part.type}"`
        })
      )
    }
    texts.push(part.text)
  }
  return Effect.succeed(texts.join("\n"))
}

/** The run a chat asks for: its last (user) message as input, the ones before as history. */
const toRun = (
  chat: Wire.ChatCompletionRequest
): Effect.Effect<
  { request: AgentRuntime.RunRequest; history: Array<AgentRuntime.HistoryMessage> },
  ApiError.BadRequest
> =>
  Effect.gen(function*() {
    const last = chat.messages.length - 1
    const history: Array<AgentRuntime.HistoryMessage> = []
    let input = ""
    for (let i = 0; i <= last; i++) {
      const message = chat.messages[i]!
      if (message.role === "tool") {
        return yield* new ApiError.BadRequest({
          field: `messages.${i}.role`,
          message: `messages.${i}.role: "tool" messages are not supported: sg's agents run their own tools`
        })
      }
      const text = yield* textOf(message, i)
      if (i === last) {
        if (message.role !== "user") {
          return yield* new ApiError.BadRequest({
            field: `messages.${i}.role`,
            message: `messages.${i}.role: the last message must be the user's, not "${message.role}"`
          })
        }
        input = text
      } else {
        history.push({ role: message.role === "developer" ? "system" : message.role, content: text })
      }
    }
    const request = yield* Schema.decodeUnknown(AgentRuntime.RunRequest)({
      input,
      agent: chat.model,
      ...(chat.metadata !== undefined && chat.metadata !== null ? { metadata: chat.metadata } : {})
    }).pipe(
      Effect.mapError((error) => {
        const bad = Issues.fromParseError(error, "body")
        const field = bad.field === "input" ? `messages.${last}.content` : bad.field
        return new ApiError.BadRequest({ field, message: `${field}: ${bad.message.slice(bad.field.length + 2)}` })
      })
    )
    return { request, history }
  })

const usageOf = (usage: { readonly input: number; readonly output: number }): typeof Wire.Usage.Type => ({
  prompt_tokens: usage.input,
  completion_tokens: usage.output,
  total_tokens: usage.input + usage.output
})

const finishReasonOf = (result: AgentRuntime.RunResult): typeof Wire.FinishReason.Type =>
  result.status === "success" ? "stop" : "length"

/** `chatcmpl-` and the run id's hex digits. */
const completionId = (runId: string): string => `chatcmpl-${runId.replace(/-/g, "")}`

const decodeChat = Schema.decodeUnknown(Wire.ChatCompletionRequest)

/** Answers `POST /v1/chat/completions`: always a response, errors in OpenAI's shape. */
export const handle = (
  runtime: AgentRuntime.Service,
  request: HttpServerRequest.HttpServerRequest,
  maxBodyBytes: number
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, Scope.Scope> =>
  Effect.gen(function*() {
    const body = yield* readJson(request, maxBodyBytes)
    const chat = yield* Effect.mapError(decodeChat(body), (error) => Issues.fromParseError(error, "body"))
    if (!runtime.agents.includes(chat.model)) return modelNotFound(chat.model, runtime.agents)
    const { history, request: run } = yield* toRun(chat)
    const created = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const attempts = RunErrors.makeAttempts()
    yield* RunErrors.setHeadersOnResponse(attempts.headers)
    let usage = { input: 0, output: 0 }
    const observe = (event: RunEvent.RunEvent) => {
      attempts.observe(event)
      if (event.type === "run.finished") usage = event.usage
    }

    if (chat.stream !== true) {
      const result = yield* runtime.run(run, { history, onEvent: (event) => Effect.sync(() => observe(event)) })
      const completion: Wire.ChatCompletion = {
        id: completionId(result.run_id),
        object: "chat.completion",
        created,
        model: chat.model,
        system_fingerprint: null,
        choices: [{
          index: 0,
          message: { role: "assistant", content: result.output, refusal: null },
          logprobs: null,
          finish_reason: finishReasonOf(result)
        }],
        usage: usageOf(usage)
      }
      return HttpServerResponse.unsafeJson(completion)
    }

    const includeUsage = chat.stream_options?.include_usage === true
    let id = "chatcmpl-"
    const chunk = (
      delta: Wire.ChatCompletionChunk["choices"][number]["delta"],
      finish: typeof Wire.FinishReason.Type | null
    ): string => {
      const value: Wire.ChatCompletionChunk = {
        id,
        object: "chat.completion.chunk",
        created,
        model: chat.model,
        system_fingerprint: null,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        ...(includeUsage ? { usage: null } : {})
      }
      return Sse.frame(undefined, JSON.stringify(value))
    }
    const encode = (event: RunEvent.RunEvent): ReadonlyArray<string> => {
      switch (event.type) {
        case "run.started":
          id = completionId(event.run_id)
          return [chunk({ role: "assistant", content: "" }, null)]
        case "text.delta":
          return [chunk({ content: event.delta }, null)]
        case "run.finished": {
          const frames = [chunk({}, finishReasonOf(event.result))]
          if (includeUsage) {
            const last: Wire.ChatCompletionChunk = {
              id,
              object: "chat.completion.chunk",
              created,
              model: chat.model,
              system_fingerprint: null,
              choices: [],
              usage: usageOf(event.usage)
            }
            frames.push(Sse.frame(undefined, JSON.stringify(last)))
          }
          return frames
        }
        default:
          return []
      }
    }
    return yield* Sse.respond(
      (listener) =>
        runtime.run(run, {
          history,
          onEvent: (event) => {
            observe(event)
            return listener(event)
          },
          textDeltas: true
        }),
      {
        encode,
        failed: (error: AgentRuntime.RunError) => {
          const api = RunErrors.toApiError(error)
          const body: Wire.ErrorBody = {
            error: {
              message: api.message,
              type: Wire.errorTypeOf(statuses[api._tag]),
              param: null,
              code: ApiError.codes[api._tag]
            }
          }
          return { frames: [Sse.frame(undefined, JSON.stringify(body))], code: ApiError.codes[api._tag] }
        },
        end: [Sse.frame(undefined, "[DONE]")],
        headers: attempts.headers
      }
    )
  }).pipe(
    Effect.catchAll((error) =>
      Effect.succeed(
        error._tag === "BadRequest" || error._tag === "PayloadTooLarge"
          ? fromApiError(error)
          : fromApiError(RunErrors.toApiError(error))
      )
    ),
    Effect.catchAllDefect((defect) =>
      Effect.as(
        Effect.logError("chat completion failed with a defect", defect),
        errorResponse(500, { message: "internal error: see the server's log", code: ApiError.codes.InternalError })
      )
    )
  )

/** The models `GET /v1/models` lists: the runtime's agents, the default first. */
const models = (runtime: AgentRuntime.Service, created: number): Array<typeof Wire.Model.Type> =>
  [runtime.defaultAgent, ...runtime.agents.filter((agent) => agent !== runtime.defaultAgent)].map((id) => ({
    id,
    object: "model" as const,
    created,
    owned_by: owner
  }))

/** The handlers of the `openai` group (`maxBodyBytes` bounds a chat's body, as `POST /v1/runs`'). */
export const layer = (maxBodyBytes: number) =>
  HttpApiBuilder.group(Api, "openai", (handlers) =>
    Effect.gen(function*() {
      const runtime = yield* AgentRuntime.AgentRuntime
      const created = Math.floor((yield* Clock.currentTimeMillis) / 1000)
      const list = models(runtime, created)
      return handlers
        .handleRaw("chatCompletions", ({ request }) => handle(runtime, request, maxBodyBytes))
        .handle("models", () => Effect.succeed({ object: "list" as const, data: list }))
        .handleRaw("model", ({ path }) =>
          Effect.succeed(
            list.find((model) => model.id === path.model) === undefined
              ? modelNotFound(path.model, runtime.agents)
              : HttpServerResponse.unsafeJson(list.find((model) => model.id === path.model)!)
          ))
    }))
