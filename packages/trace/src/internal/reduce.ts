/**
 * Reduction: the ended spans of one trace become one execution record. Pure; the recorder calls it off the request
 * path. Spans group into runs by their nearest enclosing agent-run span; tool and model spans become calls of that
 * run; a call span nested in a call span of the same kind is folded into it (a runtime's span around @effect/ai's).
 */
import * as Option from "effect/Option"
import type { ChildResult, ExecutionRecord, Run, Status } from "../ExecutionRecord.js"
import { UNATTRIBUTED } from "../ExecutionRecord.js"
import { Attributes as A } from "../ExecutionSpan.js"
import type { TraceId } from "../TraceId.js"
import { clip, describeError } from "./truncate.js"
import { buildRun, type CallDraft, type RunDraft } from "./buildRun.js"
import { capSize } from "./capSize.js"
import {
  cancelledOutcome,
  circuitFromExit,
  count,
  durationMs,
  earliest,
  firstAttribute,
  isCancelled,
  iso,
  type Kind,
  kindOf,
  latest,
  type Limits,
  type Outcome,
  outcomeOf,
  outputText,
  rootOutcome,
  runKey,
  type RunIdentity,
  severity,
  type SpanData,
  str
} from "./spans.js"

export { keepEnds } from "./capSize.js"
export type { Limits, RunIdentity, SpanData } from "./spans.js"
export { runKey } from "./spans.js"

/**
 * Whether a trace is surely a success without reducing it: no span failed and no root answered HTTP 5xx. The recorder
 * samples such traces by id first, so the nine in ten it drops cost no reduction.
 */
export const surelySuccess = (spans: ReadonlyArray<SpanData>): boolean => {
  for (const span of spans) {
    if (span.exit._tag !== "Success") return false
    if (span.root) {
      const status = count(span.attributes.get(A.httpStatus))
      if (status !== undefined && status >= 500) return false
    }
  }
  return true
}

/** The ended spans of one trace, and how many were never buffered. */
export interface Input {
  readonly traceId: TraceId
  readonly spans: ReadonlyArray<SpanData>
  readonly droppedSpans?: number | undefined
}

/** The record's status alone, computed cheaply, so sampling can skip building records it will not keep. */
export interface Reduced {
  readonly status: Status
  /** Builds the record (redaction, truncation and caps happen here). */
  readonly build: (limits: Limits) => ExecutionRecord
}

/**
 * Groups a trace's spans into runs and calls. `None` when the trace holds no agent run and no call (an HTTP request
 * that never reached an agent): such traces are not execution records. `key` is how runs are told apart.
 */
export const reduce = (input: Input, key: (run: RunIdentity) => string = runKey): Option.Option<Reduced> => {
  const byId = new Map<string, SpanData>()
  for (const span of input.spans) byId.set(span.spanId, span)
  const kinds = new Map<SpanData, Kind>()
  for (const span of input.spans) kinds.set(span, kindOf(span))
  const parentOf = (span: SpanData) => span.parentSpanId === undefined ? undefined : byId.get(span.parentSpanId)

  // The nearest strict ancestor that is a run or a call: where a span's work belongs.
  const holder = new Map<SpanData, SpanData | undefined>()
  const holderOf = (span: SpanData): SpanData | undefined => {
    if (holder.has(span)) return holder.get(span)
    const path: Array<SpanData> = []
    let current = parentOf(span)
    let found: SpanData | undefined
    while (current !== undefined) {
      if (kinds.get(current) !== "other") {
        found = current
        break
      }
      if (holder.has(current)) {
        found = holder.get(current)
        break
      }
      path.push(current)
      current = parentOf(current)
    }
    holder.set(span, found)
    for (const p of path) holder.set(p, found)
    return found
  }
  // The nearest strict ancestor that is a run.
  const runOf = (span: SpanData): SpanData | undefined => {
    let current = holderOf(span)
    while (current !== undefined && kinds.get(current) !== "run") current = holderOf(current)
    return current
  }

  // Calls, folding a call into the nearest enclosing call of the same kind.
  const calls = new Map<SpanData, CallDraft>()
  const callOf = (span: SpanData): CallDraft => {
    const existing = calls.get(span)
    if (existing !== undefined) return existing
    const kind = kinds.get(span) as "tool" | "inference"
    const outer = holderOf(span)
    if (outer !== undefined && kinds.get(outer) === kind) {
      const owner = callOf(outer)
      owner.folded.push(span)
      calls.set(span, owner)
      return owner
    }
    const draft: CallDraft = { kind, span, folded: [], circuit: undefined }
    calls.set(span, draft)
    return draft
  }
  for (const span of input.spans) {
    const kind = kinds.get(span)
    if (kind === "tool" || kind === "inference") callOf(span)
  }
  // A failed span marked with `sg.circuit` names the breaker on the call it is part of.
  for (const span of input.spans) {
    if (span.exit._tag === "Success") continue
    const circuit = str(span.attributes.get(A.circuit)) ?? circuitFromExit(span.exit)
    if (circuit === undefined) continue
    let target: SpanData | undefined = span
    while (target !== undefined && kinds.get(target) === "other") target = holderOf(target)
    if (target === undefined || kinds.get(target) === "run") continue
    const draft = calls.get(target)!
    if (draft.circuit === undefined) draft.circuit = circuit
  }

  // Runs, keyed by (conversation_id, agent_id, run_id).
  const runs = new Map<string, RunDraft>()
  const runBySpan = new Map<SpanData, RunDraft>()
  const rootConversation = input.spans.find((s) => s.root && str(s.attributes.get(A.conversationId)) !== undefined)
  const draftOf = (span: SpanData): RunDraft => {
    const existing = runBySpan.get(span)
    if (existing !== undefined) return existing
    const enclosing = runOf(span)
    const parent = enclosing === undefined ? undefined : draftOf(enclosing)
    const attributes = span.attributes
    const identity: RunIdentity = {
      runId: str(attributes.get(A.runId)) ?? span.spanId,
      agentId: str(attributes.get(A.agentId)) ?? "unknown",
      conversationId: str(attributes.get(A.conversationId)) ?? parent?.conversationId ??
        str(rootConversation?.attributes.get(A.conversationId))
    }
    const k = key(identity)
    let draft = runs.get(k)
    if (draft === undefined) {
      draft = {
        key: k,
        spans: [],
        calls: [],
        ...identity,
        parentRunId: str(attributes.get(A.parentRunId)) ?? parent?.runId
      }
      runs.set(k, draft)
    }
    draft.spans.push(span)
    runBySpan.set(span, draft)
    return draft
  }
  for (const span of input.spans) if (kinds.get(span) === "run") draftOf(span)

  let unattributed: RunDraft | undefined
  const seen = new Set<CallDraft>()
  for (const draft of calls.values()) {
    if (seen.has(draft)) continue
    seen.add(draft)
    const enclosing = runOf(draft.span)
    if (enclosing !== undefined) {
      runBySpan.get(enclosing)!.calls.push(draft)
      continue
    }
    unattributed ??= {
      key: "",
      spans: [],
      calls: [],
      runId: input.traceId,
      agentId: UNATTRIBUTED,
      parentRunId: undefined,
      conversationId: str(rootConversation?.attributes.get(A.conversationId))
    }
    unattributed.calls.push(draft)
  }
  let roots = input.spans.filter((s) => s.root)
  if (roots.length === 0) roots = input.spans.filter((s) => parentOf(s) === undefined)
  // A request cancelled before any agent ran is still a record: its lifecycle says it failed.
  const cancelled = roots.some(isCancelled)
  if (runs.size === 0 && unattributed === undefined && !cancelled) return Option.none()
  const runIds = new Set(Array.from(runs.values(), (r) => r.runId))

  // The record's status: the worst of its roots (an HTTP 5xx answer counts) and of its top-level runs.
  let status: Status = "success"
  let statusError: unknown
  const consider = (outcome: Outcome) => {
    if (severity[outcome.status] > severity[status]) {
      status = outcome.status
      statusError = outcome.error
    }
  }
  // First, so that a cancelled request says `cancelled` whatever else was interrupted with it.
  if (cancelled) consider(cancelledOutcome)
  for (const root of roots) consider(rootOutcome(root))
  const runOutcomes = new Map<RunDraft, Outcome>()
  for (const run of runs.values()) {
    const last = run.spans.reduce((a, b) => (b.endTime > a.endTime ? b : a))
    const ended = outcomeOf(last.exit)
    // Interrupted because the client went away: the run says why (its interrupted call still says `interrupted`).
    const outcome = cancelled && ended.interrupted ? cancelledOutcome : ended
    runOutcomes.set(run, outcome)
    if (run.parentRunId === undefined || !runIds.has(run.parentRunId)) consider(outcome)
  }

  const build = (limits: Limits): ExecutionRecord => {
    const text = (value: unknown) => clip(value, limits.truncate, limits.redact)
    const built: Array<{ readonly run: Run; readonly top: boolean; readonly start: bigint }> = []
    const eventsOf = new Map<string, Array<ChildResult>>()
    const ordered = Array.from(runs.values())
    for (const run of ordered) {
      const outcome = runOutcomes.get(run)!
      const start = earliest(run.spans)
      const end = latest(run.spans)
      const events: Array<ChildResult> = []
      built.push({
        run: buildRun(run, outcome, start, end, limits, text, events),
        top: run.parentRunId === undefined || !runIds.has(run.parentRunId),
        start
      })
      eventsOf.set(run.runId, events)
    }
    // A child's result is delivered to its parent: record it there, at the time the child ended.
    for (const run of ordered) {
      if (run.parentRunId === undefined) continue
      const parent = eventsOf.get(run.parentRunId)
      if (parent === undefined) continue
      const outcome = runOutcomes.get(run)!
      const last = run.spans.reduce((a, b) => (b.endTime > a.endTime ? b : a))
      const event: ChildResult = {
        type: "child_result",
        at: iso(last.endTime),
        child_run_id: run.runId,
        agent_id: run.agentId,
        status: outcome.status,
        output: outcome.status === "success" ? outputText(last, text) : null,
        ...(outcome.error !== undefined ? { error: text(describeError(outcome.error)) } : {})
      }
      parent.push(event)
    }
    for (const events of eventsOf.values()) events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
    built.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
    const runsOut = built.map((b) => b.run)
    if (unattributed !== undefined) {
      const spans = unattributed.calls.map((c) => c.span)
      runsOut.push(buildRun(unattributed, { status: "success" }, earliest(spans), latest(spans), limits, text, []))
    }

    const start = earliest(roots)
    const end = latest(roots)
    const conversationId = built.find((b) => b.top && b.run.conversation_id !== undefined)?.run.conversation_id ??
      str(rootConversation?.attributes.get(A.conversationId))
    const tenant = str(firstAttribute(roots, [A.tenant]))
    const record: ExecutionRecord = {
      trace_id: input.traceId,
      ...(tenant !== undefined ? { tenant } : {}),
      ...(conversationId !== undefined ? { conversation_id: conversationId } : {}),
      status,
      started_at: iso(start),
      ended_at: iso(end),
      duration_ms: durationMs(start, end),
      ...(statusError !== undefined ? { error: text(describeError(statusError)) } : {}),
      runs: runsOut
    }
    return capSize(record, input.droppedSpans ?? 0, limits)
  }
  return Option.some({ status, build })
}
