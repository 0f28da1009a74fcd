/**
 * The OpenAI Responses API wire format as its API reference documents it (the response object and its streaming
 * events: `response.created`, `response.output_item.added`, `response.output_text.delta`,
 * `response.function_call_arguments.delta`, `response.output_item.done`, `response.completed`), for the fake
 * `openai` upstream.
 */
import { type Answer, events, json, named } from "./fakeUpstream.js"

const responseObject = (status: string, output: ReadonlyArray<unknown>, usage?: { input: number; output: number }) => ({
  id: "resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654",
  object: "response",
  created_at: 1741290958,
  status,
  error: null,
  incomplete_details: null,
  instructions: null,
  max_output_tokens: null,
  model: "gpt-4o-mini",
  output,
  parallel_tool_calls: true,
  previous_response_id: null,
  reasoning: { effort: null, summary: null },
  store: true,
  temperature: 1.0,
  text: { format: { type: "text" } },
  tool_choice: "auto",
  tools: [],
  top_p: 1.0,
  truncation: "disabled",
  usage: usage === undefined ? null : {
    input_tokens: usage.input,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: usage.output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: usage.input + usage.output
  },
  user: null,
  metadata: {}
})

const messageItem = (text: string, status: string) => ({
  id: "msg_67c9fdcf37fc8190ba82116e33fb28c507b8b0ad4e5eb654",
  type: "message",
  status,
  role: "assistant",
  content: status === "completed" ? [{ type: "output_text", text, annotations: [] }] : []
})

const functionItem = (callId: string, name: string, args: string, status: string) => ({
  type: "function_call",
  id: `fc_${callId}`,
  call_id: callId,
  name,
  arguments: args,
  status
})

const created = (n: number) =>
  named("response.created", {
    type: "response.created",
    sequence_number: n,
    response: responseObject("in_progress", [])
  })

/** The events of a streamed text answer. */
export const textEvents = (pieces: ReadonlyArray<string>, usage = { input: 37, output: 11 }): Array<string> => {
  const text = pieces.join("")
  const itemId = messageItem("", "in_progress").id
  let n = 0
  return [
    created(n++),
    named("response.output_item.added", {
      type: "response.output_item.added",
      sequence_number: n++,
      output_index: 0,
      item: messageItem("", "in_progress")
    }),
    named("response.content_part.added", {
      type: "response.content_part.added",
      sequence_number: n++,
      item_id: itemId,
      output_index: 0,
      content_index: 0,
      part: { type: "output_text", text: "", annotations: [] }
    }),
    ...pieces.map((delta) =>
      named("response.output_text.delta", {
        type: "response.output_text.delta",
        sequence_number: n++,
        item_id: itemId,
        output_index: 0,
        content_index: 0,
        delta,
        logprobs: []
      })
    ),
    named("response.output_text.done", {
      type: "response.output_text.done",
      sequence_number: n++,
      item_id: itemId,
      output_index: 0,
      content_index: 0,
      text,
      logprobs: []
    }),
    named("response.output_item.done", {
      type: "response.output_item.done",
      sequence_number: n++,
      output_index: 0,
      item: messageItem(text, "completed")
    }),
    named("response.completed", {
      type: "response.completed",
      sequence_number: n++,
      response: responseObject("completed", [messageItem(text, "completed")], usage)
    })
  ]
}

/** A streamed text answer. */
export const streamedText = (pieces: ReadonlyArray<string>, usage?: { input: number; output: number }): Answer =>
  events(textEvents(pieces, usage))

/** The events of a streamed function call. */
export const functionCallEvents = (callId: string, name: string, pieces: ReadonlyArray<string>): Array<string> => {
  const args = pieces.join("")
  let n = 0
  return [
    created(n++),
    named("response.output_item.added", {
      type: "response.output_item.added",
      sequence_number: n++,
      output_index: 0,
      item: functionItem(callId, name, "", "in_progress")
    }),
    ...pieces.map((delta) =>
      named("response.function_call_arguments.delta", {
        type: "response.function_call_arguments.delta",
        sequence_number: n++,
        item_id: `fc_${callId}`,
        output_index: 0,
        delta
      })
    ),
    named("response.function_call_arguments.done", {
      type: "response.function_call_arguments.done",
      sequence_number: n++,
      item_id: `fc_${callId}`,
      output_index: 0,
      arguments: args
    }),
    named("response.output_item.done", {
      type: "response.output_item.done",
      sequence_number: n++,
      output_index: 0,
      item: functionItem(callId, name, args, "completed")
    }),
    named("response.completed", {
      type: "response.completed",
      sequence_number: n++,
      response: responseObject("completed", [functionItem(callId, name, args, "completed")], { input: 40, output: 9 })
    })
  ]
}

/** A streamed function call. */
export const streamedFunctionCall = (callId: string, name: string, pieces: ReadonlyArray<string>): Answer =>
  events(functionCallEvents(callId, name, pieces))

/** A whole (non-streamed) response answering `text`. */
export const response = (text: string): Answer =>
  json(200, responseObject("completed", [messageItem(text, "completed")], { input: 12, output: 7 }))

/** The error object, with its status. */
export const error = (
  status: number,
  message: string,
  type: string,
  code: string | null,
  headers?: Record<string, string>
) =>
  json(status, { error: { message, type, param: null, code } }, headers)
