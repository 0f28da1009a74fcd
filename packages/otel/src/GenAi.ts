/**
 * sg's spans as OpenTelemetry GenAI spans: the mapping from the spans the recorder buffered (`ExecutionSpan`'s
 * conventions, @effect/ai's own spans, the gateway's server span) to OTLP spans.
 *
 * Conventions followed: OpenTelemetry semantic conventions **v1.41.0** (`docs/gen-ai/`, status Development), the last
 * release that held the GenAI conventions before they moved to `open-telemetry/semantic-conventions-genai`; exported
 * with that `schemaUrl`. Every name below lives in this module, so following another version means changing it here
 * (or passing your own mapping as `Otel.Options.toSpans`).
 *
 * - An agent run is `invoke_agent <agent>` (INTERNAL): `gen_ai.operation.name`, `gen_ai.agent.name`, `gen_ai.agent.id`
 *   (the run id), `gen_ai.conversation.id`, `gen_ai.provider.name` (of its first model call), `sg.parent_run_id`.
 * - A model call is `chat <model>` (CLIENT): `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
 *   `gen_ai.response.model`, `gen_ai.response.id`, `gen_ai.response.finish_reasons`, `gen_ai.usage.input_tokens` /
 *   `output_tokens`, `gen_ai.conversation.id` (of its run). @effect/ai's `LanguageModel.*` span inside it is folded
 *   into it (its attributes fill the gaps, its children move up), so one call is one span and is never counted twice.
 * - A tool call is `execute_tool <tool>` (INTERNAL): `gen_ai.tool.name`, `gen_ai.tool.call.id`,
 *   `gen_ai.tool.type`; @effect/ai's `Toolkit.handle` inside it is folded the same way, so a sub-agent a tool spawns
 *   is that tool span's child.
 * - A failed span: status ERROR with the error's description, `error.type` (`timeout`, `circuit_open`, `cancelled`
 *   for an interruption, `tool_error` for a tool's returned failure, the error's `_tag` otherwise, or the HTTP status
 *   of a 5xx server answer) and an `exception` event. A call a breaker rejected has `sg.breaker.name` and
 *   `sg.breaker.state` = `open`.
 * - The root (the gateway's server span, `<method> <route>`): `sg.sampling.reason` (`error`, `timeout`, or `sampled`
 *   for a success the hash kept), `sg.sampling.rate`, `sg.trace.status`. When the trace id was minted at ingress its
 *   parent is the gateway's placeholder (the id's low 64 bits), which is no span: the root then has no parent. An
 *   adopted `traceparent`'s span stays its parent.
 * - Contents only with `content`: `gen_ai.input.messages` / `gen_ai.output.messages` (JSON strings in the conventions'
 *   message schema) on runs and model calls, `gen_ai.tool.call.arguments` / `result` on tool calls, every text
 *   redacted and cut to `truncate` like records. Without it, no input, output, argument or result leaves the process.
 * - Every other attribute is kept (sg's own under `sg.*`, `sg.kind` and the raw inputs and outputs excepted), strings
 *   redacted and cut to `truncate` (the names, ids and enums sg sets itself are only cut), at most `maxAttributes` per
 *   span.
 */
import * as ExecutionSpan from "@sg/trace/ExecutionSpan"
import type * as Redaction from "@sg/trace/Redaction"
import * as RecordText from "@sg/trace/RecordText"
import * as TraceId from "@sg/trace/TraceId"
import type { EndedSpan, EndedTrace } from "@sg/trace/TraceExporter"
import * as Cause from "effect/Cause"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"
import { AttributeList, count, first, str } from "./internal/attributes.js"
import {
  finishReasonOf,
  inputMessages,
  optionalString,
  outputMessages,
  responseOf,
  toolkitFailure
} from "./internal/response.js"
import { type Event, type OtlpSpan, SpanKind, StatusCode } from "./OtlpSpan.js"

/** The semantic conventions version the mapping follows. */
export const semconvVersion = "1.41.0"

/** The schema URL exported spans carry. */
export const schemaUrl = `https://opentelemetry.io/schemas/${semconvVersion}`

/** How spans are mapped. */
export interface Options {
  /** Whether message contents, tool arguments and results are exported (`SG_OTEL_CONTENT`, off). */
  readonly content: boolean
  /** Characters kept of each text (`SG_TRUNCATE`, 500). */
  readonly truncate: number
  /** Runs over every exported text before it is cut. */
  readonly redact: Redaction.Redactor
  /** The success rate the trace was sampled at, reported on its root. */
  readonly sampleSuccess: number
  /** Attributes kept per span (128). */
  readonly maxAttributes?: number | undefined
}

const A = ExecutionSpan.Attributes

/** The gateway's placeholder parent of a trace minted at ingress: the trace id's low 64 bits, never all zero. */
export const placeholderSpanId = (traceHex: string): string => {
  const low = traceHex.slice(16)
  return low === "0000000000000000" ? "0000000000000001" : low
}

type Kind = "run" | "tool" | "inference" | "other"

const inferenceOperations = new Set(["chat", "text_completion", "generate_content"])

const kindOf = (span: EndedSpan): Kind => {
  const attributes = span.attributes
  const kind = attributes.get(A.kind)
  if (kind === ExecutionSpan.Kinds.agentRun || attributes.has(A.runId)) return "run"
  if (kind === ExecutionSpan.Kinds.tool || span.name === "Toolkit.handle") return "tool"
  if (kind === ExecutionSpan.Kinds.inference) return "inference"
  const operation = attributes.get(A.operation)
  if (operation === "execute_tool") return "tool"
  if (span.name.startsWith("LanguageModel.") || (typeof operation === "string" && inferenceOperations.has(operation))) {
    return "inference"
  }
  return "other"
}

const spanKinds: Record<Tracer.SpanKind, number> = {
  internal: SpanKind.internal,
  server: SpanKind.server,
  client: SpanKind.client,
  producer: SpanKind.producer,
  consumer: SpanKind.consumer
}

interface Outcome {
  readonly type: string
  readonly message: string
  readonly exceptionType: string
  readonly circuit: string | undefined
}

const tagOf = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  const tag = (error as { readonly _tag?: unknown })._tag
  if (typeof tag === "string" && tag !== "") return tag
  const name = (error as { readonly name?: unknown }).name
  return error instanceof Error && typeof name === "string" ? name : undefined
}

const errorTypeOf = (error: unknown): string =>
  RecordText.isTimeout(error)
    ? "timeout"
    : RecordText.circuitOf(error) !== undefined
    ? "circuit_open"
    : tagOf(error) ?? "_OTHER"

/** The attributes that hold contents: exported only with `content`, whoever set them. */
export const contentAttributes: ReadonlySet<string> = new Set([
  "gen_ai.input.messages",
  "gen_ai.output.messages",
  "gen_ai.system_instructions",
  "gen_ai.tool.definitions",
  "gen_ai.tool.call.arguments",
  "gen_ai.tool.call.result"
])

/**
 * The OTLP spans of one ended trace. Pure: the exporter calls it off the request path, once per trace it keeps.
 */
export const toOtlpSpans = (trace: EndedTrace, options: Options): Array<OtlpSpan> => {
  const hex = TraceId.toHex(trace.traceId)
  const placeholder = placeholderSpanId(hex)
  const text = (value: unknown) => RecordText.clip(value, options.truncate, options.redact)
  const plain = (value: string) => (value.length <= options.truncate ? value : RecordText.cut(value, options.truncate))
  const maxAttributes = options.maxAttributes ?? 128
  const spans = trace.spans

  const byId = new Map<string, EndedSpan>()
  const kinds = new Map<EndedSpan, Kind>()
  for (const span of spans) {
    byId.set(span.spanId, span)
    kinds.set(span, kindOf(span))
  }
  const parentOf = (span: EndedSpan) => span.parentSpanId === undefined ? undefined : byId.get(span.parentSpanId)

  // The span each span is exported as: itself, or the call of the same kind it is folded into.
  const owners = new Map<EndedSpan, EndedSpan>()
  const ownerOf = (span: EndedSpan): EndedSpan => {
    const known = owners.get(span)
    if (known !== undefined) return known
    let owner = span
    const kind = kinds.get(span)
    if (kind === "tool" || kind === "inference") {
      const parent = parentOf(span)
      if (parent !== undefined && kinds.get(parent) === kind) owner = ownerOf(parent)
    }
    owners.set(span, owner)
    return owner
  }
  const folded = new Map<EndedSpan, Array<EndedSpan>>()
  for (const span of spans) {
    const owner = ownerOf(span)
    if (owner === span) continue
    const list = folded.get(owner)
    if (list === undefined) folded.set(owner, [span])
    else list.push(span)
  }

  // The nearest enclosing run of a span.
  const runs = new Map<EndedSpan, EndedSpan | undefined>()
  const runOf = (span: EndedSpan): EndedSpan | undefined => {
    if (runs.has(span)) return runs.get(span)
    const parent = parentOf(span)
    const run = parent === undefined ? undefined : kinds.get(parent) === "run" ? parent : runOf(parent)
    runs.set(span, run)
    return run
  }
  const conversationOf = (span: EndedSpan): unknown => {
    for (let run = runOf(span); run !== undefined; run = runOf(run)) {
      const id = run.attributes.get(A.conversationId)
      if (id !== undefined) return id
    }
    return undefined
  }
  const providerOf = (all: ReadonlyArray<EndedSpan>) => str(first(all, A.providerName, A.system))

  // A run's provider: that of its earliest model call.
  const runProviders = new Map<EndedSpan, { readonly provider: string; readonly start: bigint }>()
  for (const span of spans) {
    if (kinds.get(span) !== "inference" || ownerOf(span) !== span) continue
    const provider = providerOf([span, ...(folded.get(span) ?? [])])
    const run = runOf(span)
    if (provider === undefined || run === undefined) continue
    const known = runProviders.get(run)
    if (known === undefined || span.startTime < known.start) runProviders.set(run, { provider, start: span.startTime })
  }

  const outcomeOf = (span: EndedSpan, all: ReadonlyArray<EndedSpan>, kind: Kind): Outcome | undefined => {
    const circuit = str(first(all, A.circuit))
    const exit = span.exit
    if (exit._tag === "Failure") {
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) {
        const error = failure.value
        return {
          type: errorTypeOf(error),
          message: text(RecordText.describeError(error)),
          exceptionType: tagOf(error) ?? typeof error,
          circuit: circuit ?? RecordText.circuitOf(error)
        }
      }
      const defect = Cause.dieOption(exit.cause)
      if (Option.isSome(defect)) {
        const type = tagOf(defect.value) ?? "_OTHER"
        return {
          type,
          message: text(`defect: ${RecordText.describeError(defect.value)}`),
          exceptionType: type,
          circuit
        }
      }
      return { type: "cancelled", message: "interrupted", exceptionType: "cancelled", circuit }
    }
    if (kind === "tool") {
      for (const s of all) {
        const failed = toolkitFailure(s)
        if (failed !== undefined) {
          const message = text(`tool failed: ${RecordText.describeError(failed.result)}`)
          return { type: "tool_error", message, exceptionType: "tool_error", circuit }
        }
      }
    }
    if (span.root) {
      const status = count(span.attributes.get(A.httpStatus))
      if (status !== undefined && status >= 500) {
        return { type: String(status), message: `HTTP ${status}`, exceptionType: String(status), circuit }
      }
    }
    return undefined
  }

  const rename = (key: string, kind: Kind, span: EndedSpan): string | undefined => {
    if (!options.content && contentAttributes.has(key)) return undefined
    switch (key) {
      case A.kind:
      case A.input:
      case A.output:
      case A.system:
        return undefined
      case A.agentId:
        return "gen_ai.agent.name"
      case A.runId:
        return "gen_ai.agent.id"
      case A.conversationId:
        return "gen_ai.conversation.id"
      case A.tool:
        return "gen_ai.tool.name"
      case A.callId:
        return kind === "tool" ? "gen_ai.tool.call.id" : key
      case A.circuit:
        return "sg.breaker.name"
      case "parameters":
      case "tool":
        return span.name === "Toolkit.handle" ? undefined : key
      default:
        return key
    }
  }

  const convert = (span: EndedSpan): OtlpSpan => {
    const kind = kinds.get(span)!
    const inner = folded.get(span) ?? []
    const all = inner.length === 0 ? [span] : [span, ...inner]
    const attributes = new AttributeList(maxAttributes, text, plain)
    let name = span.name
    let spanKind = spanKinds[span.kind] ?? SpanKind.internal

    switch (kind) {
      case "run": {
        const agent = str(span.attributes.get(A.agentId))
        name = agent === undefined ? "invoke_agent" : `invoke_agent ${agent}`
        spanKind = SpanKind.internal
        attributes.set("gen_ai.operation.name", "invoke_agent")
        attributes.set("gen_ai.agent.name", agent)
        attributes.set("gen_ai.agent.id", span.attributes.get(A.runId))
        attributes.set("gen_ai.conversation.id", span.attributes.get(A.conversationId) ?? conversationOf(span))
        attributes.set("gen_ai.provider.name", runProviders.get(span)?.provider)
        if (options.content) {
          const input = span.attributes.get(A.input)
          if (input !== undefined) attributes.setJson("gen_ai.input.messages", inputMessages(input, text))
          if (span.exit._tag === "Success") {
            attributes.setJson("gen_ai.output.messages", outputMessages(undefined, span.attributes.get(A.output), text))
          }
        }
        break
      }
      case "inference": {
        const operation = str(first(all, A.operation)) ?? "chat"
        const model = str(first(all, A.requestModel))
        name = model === undefined ? operation : `${operation} ${model}`
        spanKind = SpanKind.client
        const response = responseOf(all)
        const metadata = response?.content.find((part) => part.type === "response-metadata")
        attributes.set("gen_ai.operation.name", operation)
        attributes.set("gen_ai.provider.name", providerOf(all))
        attributes.set("gen_ai.request.model", model)
        attributes.set("gen_ai.response.model", first(all, A.responseModel) ?? optionalString(metadata?.["modelId"]))
        attributes.set("gen_ai.response.id", first(all, "gen_ai.response.id") ?? optionalString(metadata?.["id"]))
        const reason = finishReasonOf(response)
        attributes.set(
          "gen_ai.response.finish_reasons",
          first(all, "gen_ai.response.finish_reasons") ?? (reason === undefined ? undefined : [reason])
        )
        const own = count(span.attributes.get(A.inputTokens)) !== undefined ||
          count(span.attributes.get(A.outputTokens)) !== undefined
        let input = 0
        let output = 0
        for (const s of own ? [span] : inner) {
          input += count(s.attributes.get(A.inputTokens)) ?? 0
          output += count(s.attributes.get(A.outputTokens)) ?? 0
        }
        if (own || inner.some((s) => s.attributes.has(A.inputTokens) || s.attributes.has(A.outputTokens))) {
          attributes.set("gen_ai.usage.input_tokens", input)
          attributes.set("gen_ai.usage.output_tokens", output)
        }
        attributes.set("gen_ai.conversation.id", conversationOf(span))
        if (options.content) {
          const stepInput = first(all, A.input)
          if (stepInput !== undefined) attributes.setJson("gen_ai.input.messages", inputMessages(stepInput, text))
          if (span.exit._tag === "Success") {
            attributes.setJson("gen_ai.output.messages", outputMessages(response, first(all, A.output), text))
          }
        }
        break
      }
      case "tool": {
        const tool = str(first(all, A.tool, "tool", A.toolName))
        name = tool === undefined ? "execute_tool" : `execute_tool ${tool}`
        spanKind = SpanKind.internal
        attributes.set("gen_ai.operation.name", "execute_tool")
        attributes.set("gen_ai.tool.name", tool)
        attributes.set("gen_ai.tool.call.id", first(all, A.callId))
        attributes.set("gen_ai.tool.type", "function")
        break
      }
      case "other": {
        const method = str(span.attributes.get("http.request.method"))
        if (span.root && span.kind === "server" && method !== undefined) {
          const route = str(span.attributes.get("http.route"))
          name = route === undefined ? method : `${method} ${route}`
        }
      }
    }

    const outcome = outcomeOf(span, all, kind)
    if (kind === "tool" && options.content) {
      attributes.set("gen_ai.tool.call.arguments", first(all, A.input, "parameters"))
      if (outcome === undefined) {
        const handled = all.find((s) => s.name === "Toolkit.handle")
        const value = handled?.exit._tag === "Success"
          ? (handled.exit.value as { readonly encodedResult?: unknown } | null)?.encodedResult
          : undefined
        attributes.set("gen_ai.tool.call.result", first(all, A.output) ?? value)
      }
    }
    if (outcome !== undefined) {
      attributes.set("error.type", outcome.type)
      if (outcome.circuit !== undefined) {
        attributes.set("sg.breaker.name", outcome.circuit)
        attributes.set("sg.breaker.state", "open")
      }
    }
    if (span.root) {
      attributes.set("sg.sampling.reason", trace.status === "success" ? "sampled" : trace.status)
      attributes.set("sg.sampling.rate", options.sampleSuccess)
      attributes.set("sg.trace.status", trace.status)
      if (trace.droppedSpans > 0) attributes.set("sg.spans.dropped", trace.droppedSpans)
    }
    for (const [key, value] of span.attributes) {
      const mapped = rename(key, kind, span)
      if (mapped !== undefined) attributes.set(mapped, value)
    }
    for (const s of inner) {
      for (const [key, value] of s.attributes) {
        if (key.startsWith("gen_ai.") && key !== A.system && (options.content || !contentAttributes.has(key))) {
          attributes.set(key, value)
        }
      }
    }

    const parent = parentOf(span)
    let parentSpanId = parent !== undefined ? ownerOf(parent).spanId : span.parentSpanId
    if (span.root && parentSpanId === placeholder) parentSpanId = undefined
    const events: Array<Event> = outcome === undefined ? [] : [{
      timeUnixNano: String(span.endTime),
      name: "exception",
      attributes: [
        { key: "exception.type", value: { stringValue: outcome.exceptionType } },
        { key: "exception.message", value: { stringValue: outcome.message } }
      ],
      droppedAttributesCount: 0
    }]
    return {
      traceId: hex,
      spanId: span.spanId,
      parentSpanId,
      name,
      kind: spanKind,
      startTimeUnixNano: String(span.startTime),
      endTimeUnixNano: String(span.endTime),
      attributes: attributes.list,
      droppedAttributesCount: attributes.dropped,
      events,
      droppedEventsCount: 0,
      links: [],
      droppedLinksCount: 0,
      status: outcome === undefined ? { code: StatusCode.unset } : { code: StatusCode.error, message: outcome.message }
    }
  }

  const out: Array<OtlpSpan> = []
  for (const span of spans) if (ownerOf(span) === span) out.push(convert(span))
  return out
}
