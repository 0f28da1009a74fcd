/**
 * Model responses and contents: what a call's success value says (@effect/ai's response parts, finish reason, a
 * tool's returned failure), and the conventions' message documents (`gen_ai.input.messages` /
 * `gen_ai.output.messages`), every text cut by `text`.
 */
import type { EndedSpan } from "@sg/trace/TraceExporter"
import * as Option from "effect/Option"
import { str } from "./attributes.js"

/** A Toolkit.handle result that is a failure (the tool's failure mode "return"). */
export const toolkitFailure = (span: EndedSpan): { readonly result: unknown } | undefined => {
  if (span.name !== "Toolkit.handle" || span.exit._tag !== "Success") return undefined
  const value = span.exit.value as { readonly isFailure?: unknown; readonly result?: unknown } | null | undefined
  return typeof value === "object" && value !== null && value.isFailure === true ? { result: value.result } : undefined
}

/** A model response's parts and finish reason, when a span's success value is one (@effect/ai's response). */
export interface ResponseLike {
  readonly content: ReadonlyArray<{ readonly type?: unknown } & Record<string, unknown>>
  readonly finishReason?: unknown
}

/** The first success value among `spans` that is a model response. */
export const responseOf = (spans: ReadonlyArray<EndedSpan>): ResponseLike | undefined => {
  for (const span of spans) {
    if (span.exit._tag !== "Success") continue
    const value = span.exit.value as
      | {
        readonly content?: unknown
        readonly text?: unknown
        readonly toolCalls?: unknown
        readonly finishReason?: unknown
      }
      | null
      | undefined
    if (typeof value !== "object" || value === null) continue
    if (Array.isArray(value.content)) return value as ResponseLike
    // The agent runtime's own answer of a model call: its text and the tool calls it asked for.
    if (typeof value.text === "string" && Array.isArray(value.toolCalls)) {
      const calls = value.toolCalls as ReadonlyArray<Record<string, unknown>>
      return {
        content: [
          ...(value.text === "" ? [] : [{ type: "text", text: value.text }]),
          ...calls.map((call) => ({ type: "tool-call", id: call["id"], name: call["name"], params: call["params"] }))
        ],
        finishReason: value.finishReason
      }
    }
  }
  return undefined
}

/** A string, or the value of an `Option` of one (@effect/ai's decoded metadata). */
export const optionalString = (value: unknown): string | undefined =>
  Option.isOption(value) ? str(Option.getOrUndefined(value)) : str(value)

const finishReasons: Record<string, string> = {
  "stop": "stop",
  "length": "length",
  "content-filter": "content_filter",
  "tool-calls": "tool_call",
  "error": "error"
}

/** The conventions' finish reason of a response (`tool_call`, `content_filter`, …). */
export const finishReasonOf = (response: ResponseLike | undefined): string | undefined => {
  const reason = str(response?.finishReason)
  return reason === undefined ? undefined : finishReasons[reason] ?? reason
}

/** Parts kept per message. */
const maxParts = 32

const message = (role: string, parts: ReadonlyArray<unknown>, finishReason?: string) =>
  finishReason === undefined ? { role, parts } : { role, parts, finish_reason: finishReason }

/** `gen_ai.input.messages` of a run's input or a model call's step input (a text, or the tool results it reads). */
export const inputMessages = (value: unknown, text: (value: unknown) => string): string => {
  if (Array.isArray(value)) {
    const parts = value.slice(0, maxParts).map((item: unknown) => {
      const result = typeof item === "object" && item !== null && "result" in item ? item.result : item
      return { type: "tool_call_response", response: text(result) }
    })
    return JSON.stringify([message("tool", parts)])
  }
  return JSON.stringify([message("user", [{ type: "text", content: text(value) }])])
}

/** `gen_ai.output.messages` of a model response, else of a run's final text. */
export const outputMessages = (
  response: ResponseLike | undefined,
  fallback: unknown,
  text: (value: unknown) => string
): string | undefined => {
  if (response !== undefined) {
    const parts: Array<unknown> = []
    for (const part of response.content) {
      if (parts.length >= maxParts) break
      if (part.type === "text" || part.type === "reasoning") {
        parts.push({ type: part.type, content: text(part["text"]) })
      } else if (part.type === "tool-call") {
        const call = { id: str(part["id"]), name: str(part["name"]), arguments: text(part["params"]) }
        parts.push({ type: "tool_call", ...call })
      }
    }
    return JSON.stringify([message("assistant", parts, finishReasonOf(response) ?? "stop")])
  }
  if (fallback === undefined) return undefined
  return JSON.stringify([message("assistant", [{ type: "text", content: text(fallback) }], "stop")])
}
