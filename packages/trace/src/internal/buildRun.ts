/**
 * Building a record's runs and calls from the drafts reduction grouped: timing, status, tokens, inputs and outputs
 * (redacted and cut), the per-run call cap.
 */
import type { ChildResult, InferenceCall, Run, Tokens, ToolCall } from "../ExecutionRecord.js"
import { Attributes as A } from "../ExecutionSpan.js"
import { keepEnds } from "./capSize.js"
import {
  byStart,
  circuitFromExit,
  count,
  durationMs,
  firstAttribute,
  iso,
  type Limits,
  type Outcome,
  outcomeOf,
  outputText,
  type SpanData,
  str,
  toolkitFailure
} from "./spans.js"
import { describeError } from "./truncate.js"

export interface CallDraft {
  readonly kind: "tool" | "inference"
  readonly span: SpanData
  readonly folded: Array<SpanData>
  circuit: string | undefined
}

export interface RunDraft {
  readonly key: string
  readonly spans: Array<SpanData>
  readonly calls: Array<CallDraft>
  runId: string
  agentId: string
  parentRunId: string | undefined
  conversationId: string | undefined
}

export const tokensOf = (draft: CallDraft): Tokens => {
  const own = (span: SpanData) => ({
    input: count(span.attributes.get(A.inputTokens)),
    output: count(span.attributes.get(A.outputTokens))
  })
  const outer = own(draft.span)
  if (outer.input !== undefined || outer.output !== undefined) {
    return { input: outer.input ?? 0, output: outer.output ?? 0 }
  }
  let input = 0
  let output = 0
  for (const span of draft.folded) {
    const t = own(span)
    input += t.input ?? 0
    output += t.output ?? 0
  }
  return { input, output }
}

export const buildCall = (draft: CallDraft, text: (value: unknown) => string): ToolCall | InferenceCall => {
  const span = draft.span
  const all = [span, ...draft.folded]
  let outcome = outcomeOf(span.exit)
  if (outcome.status === "success") {
    const failed = all.map(toolkitFailure).find((f) => f !== undefined)
    if (failed !== undefined) outcome = { status: "error", error: `tool failed: ${describeError(failed.result)}` }
  }
  const callId = str(firstAttribute(all, [A.callId])) ?? span.spanId
  const inputValue = firstAttribute(all, [A.input, "parameters"])
  let output: string | null = null
  if (outcome.status === "success") {
    output = outputText(span, text)
    for (const inner of draft.folded) if (output === null) output = outputText(inner, text)
  }
  const circuit = str(span.attributes.get(A.circuit)) ?? circuitFromExit(span.exit) ?? draft.circuit
  const common = {
    call_id: callId,
    started_at: iso(span.startTime),
    duration_ms: durationMs(span.startTime, span.endTime),
    status: outcome.status,
    input: inputValue === undefined ? null : text(inputValue),
    output,
    ...(outcome.error !== undefined ? { error: text(describeError(outcome.error)) } : {}),
    ...(circuit !== undefined ? { circuit } : {}),
    ...(outcome.interrupted ? { interrupted: true as const } : {})
  }
  if (draft.kind === "tool") {
    return { ...common, tool: str(firstAttribute(all, [A.tool, "tool", A.toolName])) ?? span.name }
  }
  const provider = str(firstAttribute(all, [A.providerName, A.system]))
  const attempt = count(span.attributes.get(A.attempt))
  return {
    ...common,
    model: str(firstAttribute(all, [A.requestModel, A.responseModel])) ?? null,
    ...(provider !== undefined ? { provider } : {}),
    ...(attempt !== undefined && attempt > 0 ? { attempt } : {}),
    tokens: tokensOf(draft)
  }
}

export const buildRun = (
  run: RunDraft,
  outcome: Outcome,
  start: bigint,
  end: bigint,
  limits: Limits,
  text: (value: unknown) => string,
  events: Array<ChildResult>
): Run => {
  const drafts = run.calls.slice().sort(byStart)
  let steps = 0
  let input = 0
  let output = 0
  for (const draft of drafts) {
    if (draft.kind !== "inference") continue
    // A step is a model call: the later tries of a fallback chain are calls of the same step.
    const attempt = count(draft.span.attributes.get(A.attempt))
    if (attempt === undefined || attempt <= 1) steps++
    const tokens = tokensOf(draft)
    input += tokens.input
    output += tokens.output
  }
  const { dropped, kept } = keepEnds(drafts, limits.maxCallsPerRun)
  const toolCalls: Array<ToolCall> = []
  const inferenceCalls: Array<InferenceCall> = []
  for (const draft of kept) {
    const call = buildCall(draft, text)
    if (draft.kind === "tool") toolCalls.push(call as ToolCall)
    else inferenceCalls.push(call as InferenceCall)
  }
  return {
    run_id: run.runId,
    ...(run.parentRunId !== undefined ? { parent_run_id: run.parentRunId } : {}),
    agent_id: run.agentId,
    ...(run.conversationId !== undefined ? { conversation_id: run.conversationId } : {}),
    status: outcome.status,
    ...(outcome.error !== undefined ? { error: text(describeError(outcome.error)) } : {}),
    ...(outcome.interrupted ? { interrupted: true as const } : {}),
    started_at: iso(start),
    duration_ms: durationMs(start, end),
    steps,
    tokens: { input, output },
    tool_calls: toolCalls,
    inference_calls: inferenceCalls,
    events,
    ...(dropped > 0 ? { dropped_calls: dropped } : {})
  }
}
