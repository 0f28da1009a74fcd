/**
 * A `LanguageModel` over the OpenAI Chat Completions wire format (`POST <baseUrl>/chat/completions`), the one
 * Ollama, vLLM, llama.cpp's server, LM Studio, OpenRouter, LiteLLM and Portkey speak: messages with `role: tool`
 * results, `tools` / `tool_choice` / `tool_calls`, `response_format` for objects, usage tokens, and streaming
 * (`stream: true` with `stream_options: {include_usage: true}`) with tool-call arguments assembled from their deltas.
 *
 * Written on @effect/ai's `LanguageModel.make` over `HttpClient` rather than @effect/ai-openrouter: that package's
 * newest release (0.10) peers @effect/ai 0.35, not the 0.37 this workspace runs, and it sends OpenRouter's own fields.
 *
 * Failures are @effect/ai's `AiError`s: a non-2xx answer is `HttpResponseError` with the body (so the provider's own
 * message and `Retry-After` survive), a network failure `HttpRequestError`, an unreadable answer `MalformedOutput`,
 * an error event inside a stream or a stream that ends before the model finished `UnknownError`.
 */
import * as AiError from "@effect/ai/AiError"
import * as IdGenerator from "@effect/ai/IdGenerator"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import * as Tool from "@effect/ai/Tool"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as EffectChunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Inspectable from "effect/Inspectable"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Sse from "./internal/sseParser.js"
import { messageOfBody, oneLine } from "./internal/upstream.js"

/** How to reach a Chat Completions endpoint. */
export interface Options {
  /** The API root, e.g. `http://localhost:11434/v1` (Ollama); `/chat/completions` is appended. */
  readonly baseUrl: string
  /** Sent as `Authorization: Bearer <key>` when present. */
  readonly apiKey?: Redacted.Redacted | undefined
  /** The `model` of every request. */
  readonly model: string
  /** Fields merged into every request body (`temperature`, `max_tokens`, ...). */
  readonly body?: Readonly<Record<string, unknown>> | undefined
}

const module = "OpenAiCompat"

// ---------------------------------------------------------------------------------------------------------------
// Wire schemas: lenient (every field optional or nullable), since the servers that speak this format differ in
// what they leave out.
// ---------------------------------------------------------------------------------------------------------------

const OptionalString = Schema.optional(Schema.NullOr(Schema.String))
const OptionalNumber = Schema.optional(Schema.NullOr(Schema.Number))

const WireUsage = Schema.Struct({
  prompt_tokens: OptionalNumber,
  completion_tokens: OptionalNumber,
  total_tokens: OptionalNumber,
  prompt_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({ cached_tokens: OptionalNumber }))),
  completion_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({ reasoning_tokens: OptionalNumber })))
})

const WireToolCall = Schema.Struct({
  index: OptionalNumber,
  id: OptionalString,
  type: OptionalString,
  function: Schema.optional(Schema.NullOr(Schema.Struct({ name: OptionalString, arguments: OptionalString })))
})

const WireMessage = Schema.Struct({
  role: OptionalString,
  content: OptionalString,
  reasoning_content: OptionalString,
  reasoning: OptionalString,
  tool_calls: Schema.optional(Schema.NullOr(Schema.Array(WireToolCall)))
})

/** A `chat.completion` answer. */
const Completion = Schema.Struct({
  id: OptionalString,
  model: OptionalString,
  created: OptionalNumber,
  choices: Schema.Array(Schema.Struct({ message: WireMessage, finish_reason: OptionalString })),
  usage: Schema.optional(Schema.NullOr(WireUsage))
})

/** One `chat.completion.chunk` of a stream (or an `{error}` some servers send mid-stream). */
const Chunk = Schema.Struct({
  id: OptionalString,
  model: OptionalString,
  created: OptionalNumber,
  choices: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({
    index: OptionalNumber,
    delta: Schema.optional(Schema.NullOr(WireMessage)),
    finish_reason: OptionalString
  })))),
  usage: Schema.optional(Schema.NullOr(WireUsage)),
  error: Schema.optional(Schema.Unknown)
})
type Chunk = typeof Chunk.Type

const decodeCompletion = Schema.decodeUnknown(Completion)
const decodeChunk = Schema.decodeUnknownEither(Schema.parseJson(Chunk))

// ---------------------------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------------------------

type WireRequestMessage =
  | { readonly role: "system" | "user"; readonly content: string }
  | {
    readonly role: "assistant"
    readonly content: string | null
    readonly tool_calls?: ReadonlyArray<
      { readonly id: string; readonly type: "function"; readonly function: { name: string; arguments: string } }
    >
  }
  | { readonly role: "tool"; readonly tool_call_id: string; readonly content: string }

const resultText = (result: unknown): string => typeof result === "string" ? result : JSON.stringify(result) ?? "null"

/** The prompt as Chat Completions messages: text parts joined, tool calls and their results paired by id. */
export const toMessages = (prompt: Prompt.Prompt): Array<WireRequestMessage> => {
  const messages: Array<WireRequestMessage> = []
  for (const message of prompt.content) {
    switch (message.role) {
      case "system":
        messages.push({ role: "system", content: message.content })
        break
      case "user": {
        const text = message.content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("\n")
        messages.push({ role: "user", content: text })
        break
      }
      case "assistant": {
        let text = ""
        const calls: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }> = []
        const results: Array<WireRequestMessage> = []
        for (const part of message.content) {
          if (part.type === "text") text += part.text
          else if (part.type === "tool-call" && !part.providerExecuted) {
            calls.push({
              id: part.id,
              type: "function",
              function: { name: part.name, arguments: JSON.stringify(part.params ?? {}) }
            })
          } else if (part.type === "tool-result") {
            results.push({ role: "tool", tool_call_id: part.id, content: resultText(part.result) })
          }
        }
        messages.push(
          calls.length > 0
            ? { role: "assistant", content: text === "" ? null : text, tool_calls: calls }
            : { role: "assistant", content: text }
        )
        messages.push(...results)
        break
      }
      case "tool":
        for (const part of message.content) {
          messages.push({ role: "tool", tool_call_id: part.id, content: resultText(part.result) })
        }
        break
    }
  }
  return messages
}

const toolChoiceOf = (choice: LanguageModel.ProviderOptions["toolChoice"]): unknown => {
  if (choice === "auto" || choice === "none" || choice === "required") return choice
  if ("tool" in choice) return { type: "function", function: { name: choice.tool } }
  return choice.mode === "required" ? "required" : "auto"
}

/** Each tool's JSON schema, computed once (it is asked for on every call). */
const schemas = new WeakMap<Tool.Any, unknown>()
const jsonSchemaOf = (tool: Tool.Any): unknown => {
  let schema = schemas.get(tool)
  if (schema === undefined) {
    schema = Tool.getJsonSchemaFromSchemaAst(tool.parametersSchema.ast)
    schemas.set(tool, schema)
  }
  return schema
}

/** The request body of a call (without `stream`). */
export const requestBody = (options: Options, provider: LanguageModel.ProviderOptions): Record<string, unknown> => {
  const body: Record<string, unknown> = { ...options.body, model: options.model, messages: toMessages(provider.prompt) }
  const tools = provider.tools.filter((tool) => !Tool.isProviderDefined(tool))
  if (tools.length > 0 && provider.toolChoice !== "none") {
    body["tools"] = tools.map((tool) => ({
      type: "function",
      function: {
        name: tool.name,
        ...(tool.description !== undefined ? { description: tool.description } : {}),
        parameters: jsonSchemaOf(tool)
      }
    }))
    body["tool_choice"] = toolChoiceOf(provider.toolChoice)
  }
  if (provider.responseFormat.type === "json") {
    body["response_format"] = {
      type: "json_schema",
      json_schema: {
        name: provider.responseFormat.objectName,
        schema: Tool.getJsonSchemaFromSchemaAst(provider.responseFormat.schema.ast),
        strict: true
      }
    }
  }
  return body
}

// ---------------------------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------------------------

const finishReasonOf = (reason: string | null | undefined): Response.FinishReason => {
  switch (reason) {
    case "stop":
      return "stop"
    case "length":
      return "length"
    case "tool_calls":
    case "function_call":
      return "tool-calls"
    case "content_filter":
      return "content-filter"
    case null:
    case undefined:
      return "unknown"
    default:
      return "other"
  }
}

const usageOf = (usage: typeof WireUsage.Type | null | undefined): typeof Response.Usage.Encoded => {
  const input = usage?.prompt_tokens ?? undefined
  const output = usage?.completion_tokens ?? undefined
  return {
    inputTokens: input,
    outputTokens: output,
    totalTokens: usage?.total_tokens ?? (input === undefined && output === undefined ? undefined : (input ?? 0) +
      (output ?? 0)),
    reasoningTokens: usage?.completion_tokens_details?.reasoning_tokens ?? undefined,
    cachedInputTokens: usage?.prompt_tokens_details?.cached_tokens ?? undefined
  }
}

const malformed = (method: string, description: string) =>
  new AiError.MalformedOutput({ module, method, description })

const parseArguments = (
  method: string,
  name: string,
  text: string
): Either.Either<unknown, AiError.MalformedOutput> => {
  if (text.trim() === "") return Either.right({})
  try {
    return Either.right(JSON.parse(text))
  } catch {
    return Either.left(malformed(method, `the arguments of tool call "${name}" are not JSON: ${oneLine(text, 120)}`))
  }
}

const metadataPart = (answer: {
  readonly id?: string | null | undefined
  readonly model?: string | null | undefined
  readonly created?: number | null | undefined
}): Response.ResponseMetadataPartEncoded => ({
  type: "response-metadata",
  id: answer.id ?? undefined,
  modelId: answer.model ?? undefined,
  timestamp: typeof answer.created === "number" ? new Date(answer.created * 1000).toISOString() : undefined
})

const toParts = (completion: typeof Completion.Type): Effect.Effect<
  Array<Response.PartEncoded>,
  AiError.MalformedOutput,
  IdGenerator.IdGenerator
> =>
  Effect.gen(function*() {
    const choice = completion.choices[0]
    if (choice === undefined) return yield* malformed("generateText", "the answer has no choices")
    const ids = yield* IdGenerator.IdGenerator
    const parts: Array<Response.PartEncoded> = [metadataPart(completion)]
    const reasoning = choice.message.reasoning_content ?? choice.message.reasoning
    if (typeof reasoning === "string" && reasoning !== "") parts.push({ type: "reasoning", text: reasoning })
    const content = choice.message.content
    if (typeof content === "string" && content !== "") parts.push({ type: "text", text: content })
    for (const call of choice.message.tool_calls ?? []) {
      const name = call.function?.name ?? ""
      if (name === "") return yield* malformed("generateText", "a tool call has no function name")
      const params = yield* parseArguments("generateText", name, call.function?.arguments ?? "")
      parts.push({ type: "tool-call", id: call.id ?? (yield* ids.generateId()), name, params })
    }
    parts.push({ type: "finish", reason: finishReasonOf(choice.finish_reason), usage: usageOf(completion.usage) })
    return parts
  })

interface PendingCall {
  readonly id: string
  readonly name: string
  arguments: string
}

/** Turns a stream of chunks into @effect/ai stream parts; `end` closes what is open and emits the finish. */
class Assembler {
  private metadata = false
  private textId: string | undefined
  private reasoningId: string | undefined
  private readonly calls = new Map<number, PendingCall>()
  private reason: string | null | undefined
  private usage: typeof WireUsage.Type | null | undefined
  finished = false

  constructor(private readonly nextId: () => string) {}

  chunk(chunk: Chunk): Either.Either<Array<Response.StreamPartEncoded>, AiError.AiError> {
    if (chunk.error !== undefined && chunk.error !== null) {
      const said = messageOfBody(JSON.stringify({ error: chunk.error })) ?? "an error event"
      return Either.left(
        new AiError.UnknownError({ module, method: "streamText", description: `stream error: ${said}` })
      )
    }
    const parts: Array<Response.StreamPartEncoded> = []
    if (!this.metadata) {
      this.metadata = true
      parts.push(metadataPart(chunk))
    }
    if (chunk.usage !== undefined && chunk.usage !== null) this.usage = chunk.usage
    for (const choice of chunk.choices ?? []) {
      if ((choice.index ?? 0) !== 0) continue
      const delta = choice.delta
      const reasoning = delta?.reasoning_content ?? delta?.reasoning
      if (typeof reasoning === "string" && reasoning !== "") {
        if (this.reasoningId === undefined) {
          this.reasoningId = this.nextId()
          parts.push({ type: "reasoning-start", id: this.reasoningId })
        }
        parts.push({ type: "reasoning-delta", id: this.reasoningId, delta: reasoning })
      }
      const content = delta?.content
      if (typeof content === "string" && content !== "") {
        if (this.textId === undefined) {
          this.textId = this.nextId()
          parts.push({ type: "text-start", id: this.textId })
        }
        parts.push({ type: "text-delta", id: this.textId, delta: content })
      }
      const toolCalls = delta?.tool_calls ?? []
      for (let i = 0; i < toolCalls.length; i++) {
        const call = toolCalls[i]!
        const index = call.index ?? i
        let pending = this.calls.get(index)
        if (pending === undefined) {
          const name = call.function?.name ?? ""
          if (name === "") {
            return Either.left(malformed("streamText", `tool call ${index} starts without a function name`))
          }
          pending = { id: call.id ?? this.nextId(), name, arguments: "" }
          this.calls.set(index, pending)
          parts.push({ type: "tool-params-start", id: pending.id, name })
        }
        const piece = call.function?.arguments ?? ""
        if (piece !== "") {
          pending.arguments += piece
          parts.push({ type: "tool-params-delta", id: pending.id, delta: piece })
        }
      }
      if (choice.finish_reason !== undefined && choice.finish_reason !== null) this.reason = choice.finish_reason
    }
    return Either.right(parts)
  }

  end(sawDone: boolean): Either.Either<Array<Response.StreamPartEncoded>, AiError.AiError> {
    if (!sawDone && this.reason === undefined) {
      return Either.left(
        new AiError.UnknownError({
          module,
          method: "streamText",
          description: "the stream ended before the model finished (no finish_reason, no [DONE])"
        })
      )
    }
    const parts: Array<Response.StreamPartEncoded> = []
    if (this.reasoningId !== undefined) parts.push({ type: "reasoning-end", id: this.reasoningId })
    if (this.textId !== undefined) parts.push({ type: "text-end", id: this.textId })
    for (const call of this.calls.values()) {
      const params = parseArguments("streamText", call.name, call.arguments)
      if (Either.isLeft(params)) return Either.left(params.left)
      parts.push({ type: "tool-params-end", id: call.id })
      parts.push({ type: "tool-call", id: call.id, name: call.name, params: params.right })
    }
    const reason = this.reason === undefined && this.calls.size > 0 ? "tool_calls" : this.reason
    parts.push({ type: "finish", reason: finishReasonOf(reason), usage: usageOf(this.usage) })
    this.finished = true
    return Either.right(parts)
  }
}

/** A body cut off mid-way, with what the transport said (which `HttpResponseError.fromResponseError` drops). */
const cutOff = (method: string, error: HttpClientError.ResponseError) =>
  new AiError.HttpResponseError({
    module,
    method,
    reason: "Decode",
    description: describeCause(error.cause),
    request: {
      hash: error.request.hash,
      headers: Inspectable.redact(error.request.headers) as Record<string, string>,
      method: error.request.method,
      url: error.request.url,
      urlParams: error.request.urlParams
    },
    response: {
      headers: Inspectable.redact(error.response.headers) as Record<string, string>,
      status: error.response.status
    }
  }, { disableValidation: true })

const fromHttpError = (method: string) =>
(
  error: HttpClientError.HttpClientError
): Effect.Effect<never, AiError.AiError> =>
  error._tag === "RequestError"
    ? Effect.fail(AiError.HttpRequestError.fromRequestError({ module, method, error }))
    : error.reason === "Decode"
    ? Effect.fail(cutOff(method, error))
    : AiError.HttpResponseError.fromResponseError({ module, method, error })

const describeCause = (cause: unknown): string => {
  let message = "the connection was cut"
  let current: unknown = cause
  for (let depth = 0; depth < 6 && current instanceof Error; depth++) {
    if (current.message !== "") message = current.message
    current = (current as { readonly cause?: unknown }).cause
  }
  return `the response was cut off: ${message}`
}

/** The Chat Completions model over the `HttpClient` in context. */
export const make = (options: Options): Effect.Effect<LanguageModel.Service, never, HttpClient.HttpClient> =>
  Effect.map(makeWithStream(options), ({ languageModel }) => languageModel)

/** The Chat Completions model, and its own stream under the `LanguageModel` (see `Provider.stream`). */
export const makeWithStream = (options: Options): Effect.Effect<{
  readonly languageModel: LanguageModel.Service
  readonly stream: LanguageModel.ConstructorParams["streamText"]
}, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const url = `${options.baseUrl.replace(/\/+$/, "")}/chat/completions`
    const client = yield* HttpClient.HttpClient
    const ok = HttpClient.filterStatusOk(client)
    const post = (body: Record<string, unknown>, accept: string) => {
      let request = HttpClientRequest.post(url).pipe(
        HttpClientRequest.setHeader("accept", accept),
        HttpClientRequest.bodyUnsafeJson(body)
      )
      if (options.apiKey !== undefined) request = HttpClientRequest.bearerToken(request, options.apiKey)
      return request
    }

    const generateText = (provider: LanguageModel.ProviderOptions) =>
      ok.execute(post(requestBody(options, provider), "application/json")).pipe(
        Effect.flatMap((response) => response.json),
        Effect.catchAll(fromHttpError("generateText")),
        Effect.flatMap((json) =>
          Effect.mapError(decodeCompletion(json), (error) =>
            AiError.MalformedOutput.fromParseError({ module, method: "generateText", error }))
        ),
        Effect.flatMap(toParts)
      )

    const streamText = (
      provider: LanguageModel.ProviderOptions
    ): Stream.Stream<Response.StreamPartEncoded, AiError.AiError> =>
      Stream.suspend(() => {
        let counter = 0
        // Ids of the parts this stream opens; tool calls keep the provider's own ids when it gives them.
        const assembler = new Assembler(() => `compat_${++counter}`)
        const parser = new Sse.Parser()
        const decoder = new TextDecoder()
        let sawDone = false
        const partsOf = (events: ReadonlyArray<Sse.Event>): Either.Either<
          Array<Response.StreamPartEncoded>,
          AiError.AiError
        > => {
          const parts: Array<Response.StreamPartEncoded> = []
          for (const event of events) {
            // After `[DONE]` the body is read to its end (so the connection is kept), but nothing more counts.
            if (sawDone) continue
            if (event.data.trim() === "[DONE]") {
              sawDone = true
              continue
            }
            const chunk = decodeChunk(event.data)
            if (Either.isLeft(chunk)) {
              const issue = ParseResult.ArrayFormatter.formatErrorSync(chunk.left)[0]
              return Either.left(malformed(
                "streamText",
                `an event is not a chat.completion.chunk${issue === undefined ? "" : ` (${issue.message})`}: ${
                  oneLine(event.data, 120)
                }`
              ))
            }
            const more = assembler.chunk(chunk.right)
            if (Either.isLeft(more)) return more
            for (const part of more.right) parts.push(part)
          }
          return Either.right(parts)
        }
        const parse = (
          bytes: EffectChunk.Chunk<Uint8Array>
        ): Effect.Effect<EffectChunk.Chunk<Response.StreamPartEncoded>, AiError.AiError> =>
          Effect.suspend(() => {
            let events: Array<Sse.Event> = []
            try {
              for (const piece of bytes) events = events.concat(parser.feed(decoder.decode(piece, { stream: true })))
            } catch (error) {
              return Effect.fail(malformed("streamText", error instanceof Error ? error.message : String(error)))
            }
            return Effect.map(partsOf(events), EffectChunk.unsafeFromArray)
          })
        const body = { ...requestBody(options, provider), stream: true, stream_options: { include_usage: true } }
        const events = ok.execute(post(body, "text/event-stream")).pipe(
          Effect.map((response) => response.stream),
          Stream.unwrapScoped,
          Stream.catchAll((error) => Stream.fromEffect(fromHttpError("streamText")(error))),
          Stream.mapChunksEffect(parse)
        )
        const end = Stream.fromIterableEffect(Effect.suspend(() =>
          Either.flatMap(
            partsOf(parser.end()),
            (last) => Either.map(assembler.end(sawDone), (rest) => [...last, ...rest])
          )
        ))
        return Stream.concat(events, end)
      })

    const languageModel = yield* LanguageModel.make({ generateText, streamText })
    return { languageModel, stream: streamText }
  })
