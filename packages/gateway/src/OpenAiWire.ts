/**
 * The OpenAI wire format of the OpenAI-compatible routes, as schemas: the Chat Completions request (what sg reads
 * of it: `model`, `messages`, `stream`, `stream_options`, `metadata`; the rest is accepted and ignored), the
 * completion, the streamed chunk, the model list and the error object `{error: {message, type, param, code}}`.
 */
import * as Schema from "effect/Schema"

/** A content part of a message: sg reads text parts. */
export const ContentPart = Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) })

/** A message of the request. */
export const Message = Schema.Struct({
  role: Schema.Literal("system", "developer", "user", "assistant", "tool"),
  content: Schema.optional(Schema.NullOr(Schema.Union(Schema.String, Schema.Array(ContentPart)))),
  name: Schema.optional(Schema.String)
})

/** A message of the request. */
export type Message = typeof Message.Type

/** `POST /v1/chat/completions` body: `model` names an sg agent. */
export const ChatCompletionRequest = Schema.Struct({
  model: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9_.-]{1,64}$/, {
    message: () => "must be an agent name: 1 to 64 letters, digits, '_', '.' or '-'"
  })),
  messages: Schema.Array(Message).pipe(Schema.minItems(1, { message: () => "must hold at least one message" })),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(Schema.NullOr(Schema.Struct({ include_usage: Schema.optional(Schema.Boolean) }))),
  metadata: Schema.optional(Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String })))
})

/** `POST /v1/chat/completions` body. */
export type ChatCompletionRequest = typeof ChatCompletionRequest.Type

/** Token counts, as OpenAI names them. */
export const Usage = Schema.Struct({
  prompt_tokens: Schema.Int,
  completion_tokens: Schema.Int,
  total_tokens: Schema.Int
})

/** Why the answer ended: `stop`, or `length` when the run hit its step limit. */
export const FinishReason = Schema.Literal("stop", "length")

/** A `chat.completion`. */
export const ChatCompletion = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("chat.completion"),
  created: Schema.Int,
  model: Schema.String,
  system_fingerprint: Schema.Null,
  choices: Schema.Array(Schema.Struct({
    index: Schema.Int,
    message: Schema.Struct({ role: Schema.Literal("assistant"), content: Schema.String, refusal: Schema.Null }),
    logprobs: Schema.Null,
    finish_reason: FinishReason
  })),
  usage: Usage
})

/** A `chat.completion`. */
export type ChatCompletion = typeof ChatCompletion.Type

/** A `chat.completion.chunk` of a stream. */
export const ChatCompletionChunk = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("chat.completion.chunk"),
  created: Schema.Int,
  model: Schema.String,
  system_fingerprint: Schema.Null,
  choices: Schema.Array(Schema.Struct({
    index: Schema.Int,
    delta: Schema.Struct({
      role: Schema.optional(Schema.Literal("assistant")),
      content: Schema.optional(Schema.String)
    }),
    logprobs: Schema.Null,
    finish_reason: Schema.NullOr(FinishReason)
  })),
  usage: Schema.optional(Schema.NullOr(Usage))
})

/** A `chat.completion.chunk`. */
export type ChatCompletionChunk = typeof ChatCompletionChunk.Type

/** One model (an sg agent) of `GET /v1/models`. */
export const Model = Schema.Struct({
  id: Schema.String,
  object: Schema.Literal("model"),
  created: Schema.Int,
  owned_by: Schema.String
})

/** `GET /v1/models`. */
export const ModelList = Schema.Struct({ object: Schema.Literal("list"), data: Schema.Array(Model) })

/** `GET /v1/models/:model` path. */
export const ModelPath = Schema.Struct({ model: Schema.String })

/** OpenAI's error object. `code` is sg's error code (`upstream_error`, `model_not_found`, `budget_exceeded`...). */
export const ErrorBody = Schema.Struct({
  error: Schema.Struct({
    message: Schema.String,
    type: Schema.String,
    param: Schema.NullOr(Schema.String),
    code: Schema.NullOr(Schema.String)
  })
})

/** OpenAI's error object. */
export type ErrorBody = typeof ErrorBody.Type

/** The `type` OpenAI gives an error of `status`. */
export const errorTypeOf = (status: number): string =>
  status >= 500 ? (status === 500 ? "server_error" : "api_error") : "invalid_request_error"

/** OpenAI's error object for an answer of `status`. */
export const errorBody = (
  status: number,
  error: { readonly message: string; readonly code: string; readonly param?: string | undefined }
): ErrorBody => ({
  error: { message: error.message, type: errorTypeOf(status), param: error.param ?? null, code: error.code }
})
