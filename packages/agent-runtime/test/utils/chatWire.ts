/**
 * The OpenAI Chat Completions wire format as its API reference documents it (chat completion object, chunk object,
 * function calling, error object), for the fake `openai-compat` upstream.
 */
import { type Answer, data, events, json } from "./fakeUpstream.js"

const usage = (prompt: number, completion: number) => ({
  prompt_tokens: prompt,
  completion_tokens: completion,
  total_tokens: prompt + completion,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0
  }
})

/** A `chat.completion` answering `content`. */
export const completion = (content: string, tokens = { prompt: 19, completion: 10 }): Answer =>
  json(200, {
    id: "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    object: "chat.completion",
    created: 1741569952,
    model: "gpt-4.1-2025-04-14",
    choices: [{
      index: 0,
      message: { role: "assistant", content, refusal: null, annotations: [] },
      logprobs: null,
      finish_reason: "stop"
    }],
    usage: usage(tokens.prompt, tokens.completion),
    service_tier: "default"
  })

/** A `chat.completion` asking for one function call. */
export const toolCallCompletion = (id: string, name: string, args: string): Answer =>
  json(200, {
    id: "chatcmpl-abc123",
    object: "chat.completion",
    created: 1699896916,
    model: "gpt-4o-mini",
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: null,
        tool_calls: [{ id, type: "function", function: { name, arguments: args } }]
      },
      logprobs: null,
      finish_reason: "tool_calls"
    }],
    usage: usage(82, 17)
  })

const chunk = (delta: Record<string, unknown>, finish: string | null, extra?: Record<string, unknown>) =>
  data({
    id: "chatcmpl-123",
    object: "chat.completion.chunk",
    created: 1694268190,
    model: "gpt-4o-mini",
    system_fingerprint: "fp_44709d6fcb",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...extra
  })

/** The usage chunk `stream_options: {include_usage: true}` adds: no choices. */
const usageChunk = (prompt: number, completion: number) =>
  data({
    id: "chatcmpl-123",
    object: "chat.completion.chunk",
    created: 1694268190,
    model: "gpt-4o-mini",
    system_fingerprint: "fp_44709d6fcb",
    choices: [],
    usage: usage(prompt, completion)
  })

/** The events of a streamed text answer, split into `pieces`, with usage and `[DONE]`. */
export const textEvents = (pieces: ReadonlyArray<string>, tokens = { prompt: 9, completion: 12 }): Array<string> => [
  chunk({ role: "assistant", content: "", refusal: null }, null),
  ...pieces.map((piece) => chunk({ content: piece }, null)),
  chunk({}, "stop"),
  usageChunk(tokens.prompt, tokens.completion),
  data("[DONE]")
]

/** A streamed text answer. */
export const streamedText = (pieces: ReadonlyArray<string>, tokens?: { prompt: number; completion: number }) =>
  events(textEvents(pieces, tokens))

/** The events of a streamed function call, its arguments in `pieces`. */
export const toolCallEvents = (id: string, name: string, pieces: ReadonlyArray<string>): Array<string> => [
  chunk({
    role: "assistant",
    content: null,
    tool_calls: [{ index: 0, id, type: "function", function: { name, arguments: "" } }],
    refusal: null
  }, null),
  ...pieces.map((piece) => chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] }, null)),
  chunk({}, "tool_calls"),
  usageChunk(82, 17),
  data("[DONE]")
]

/** A streamed function call. */
export const streamedToolCall = (id: string, name: string, pieces: ReadonlyArray<string>) =>
  events(toolCallEvents(id, name, pieces))

/** The error object, with its status. */
export const error = (
  status: number,
  message: string,
  type: string,
  code: string | null,
  headers?: Record<string, string>
) =>
  json(status, { error: { message, type, param: null, code } }, headers)

/** A 429 rate limit, with `Retry-After`. */
export const rateLimited = (retryAfterSeconds: number) =>
  error(
    429,
    "Rate limit reached for gpt-4o-mini in organization org-xyz on requests per min (RPM): Limit 3, Used 3, " +
      "Requested 1. Please try again in 20s.",
    "requests",
    "rate_limit_exceeded",
    {
      "retry-after": String(retryAfterSeconds),
      "x-ratelimit-limit-requests": "3",
      "x-ratelimit-remaining-requests": "0"
    }
  )
