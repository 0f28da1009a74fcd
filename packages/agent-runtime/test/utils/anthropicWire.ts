/**
 * The Anthropic Messages API wire format as its documentation shows it (a message, the streaming events of a text
 * answer and of a tool use, error objects), for the fake `anthropic` upstream.
 */
import { type Answer, events, json, named } from "./fakeUpstream.js"

/** A message answering `text`. */
export const message = (text: string): Answer =>
  json(200, {
    content: [{ text, type: "text" }],
    id: "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    model: "claude-haiku-4-5",
    role: "assistant",
    stop_reason: "end_turn",
    stop_sequence: null,
    type: "message",
    usage: { input_tokens: 2095, output_tokens: 503 }
  })

const start = (inputTokens: number) =>
  named("message_start", {
    type: "message_start",
    message: {
      id: "msg_014p7gG3wDgGV9EUtLvnow3U",
      type: "message",
      role: "assistant",
      model: "claude-haiku-4-5",
      stop_sequence: null,
      usage: { input_tokens: inputTokens, output_tokens: 2 },
      content: [],
      stop_reason: null
    }
  })

const stop = (reason: string, outputTokens: number) => [
  named("message_delta", {
    type: "message_delta",
    delta: { stop_reason: reason, stop_sequence: null },
    usage: { output_tokens: outputTokens }
  }),
  named("message_stop", { type: "message_stop" })
]

/** The events of a streamed text answer, split into `pieces`. */
export const textEvents = (pieces: ReadonlyArray<string>): Array<string> => [
  start(25),
  named("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
  named("ping", { type: "ping" }),
  ...pieces.map((text) =>
    named("content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } })
  ),
  named("content_block_stop", { type: "content_block_stop", index: 0 }),
  ...stop("end_turn", 15)
]

/** A streamed text answer. */
export const streamedText = (pieces: ReadonlyArray<string>) => events(textEvents(pieces))

/** The events of a tool use (after a short text), its input JSON in `pieces`. */
export const toolUseEvents = (id: string, name: string, pieces: ReadonlyArray<string>): Array<string> => [
  start(472),
  named("content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
  named("content_block_delta", {
    type: "content_block_delta",
    index: 0,
    delta: { type: "text_delta", text: "Let me work that out." }
  }),
  named("content_block_stop", { type: "content_block_stop", index: 0 }),
  named("content_block_start", {
    type: "content_block_start",
    index: 1,
    content_block: { type: "tool_use", id, name, input: {} }
  }),
  named("content_block_delta", {
    type: "content_block_delta",
    index: 1,
    delta: { type: "input_json_delta", partial_json: "" }
  }),
  ...pieces.map((partial_json) =>
    named("content_block_delta", {
      type: "content_block_delta",
      index: 1,
      delta: { type: "input_json_delta", partial_json }
    })
  ),
  named("content_block_stop", { type: "content_block_stop", index: 1 }),
  ...stop("tool_use", 89)
]

/** A streamed tool use. */
export const streamedToolUse = (id: string, name: string, pieces: ReadonlyArray<string>) =>
  events(toolUseEvents(id, name, pieces))

/** The error object, with its status. */
export const error = (status: number, type: string, message: string, headers?: Record<string, string>) =>
  json(status, { type: "error", error: { type, message } }, headers)

/** An error event in the middle of a stream. */
export const errorEvent = named("error", { type: "error", error: { type: "overloaded_error", message: "Overloaded" } })
