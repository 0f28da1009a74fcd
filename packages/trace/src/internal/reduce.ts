/**
 * Reduction: the ended spans of one trace become one execution record. Pure; the recorder calls it off the request
 * path. Spans group into runs by their nearest enclosing agent-run span; tool and model spans become calls of that
 * run; a call span nested in a call span of the same kind is folded into it (a runtime's span around @effect/ai's).
 */
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type {
  ChildResult,
  Dropped,
  ExecutionRecord,
  InferenceCall,
  Run,
  Status,
  Tokens,
  ToolCall
} from "../ExecutionRecord.js"
import { UNATTRIBUTED } from "../ExecutionRecord.js"
import { Attributes as A, Kinds } from "../ExecutionSpan.js"
import type { Redactor } from "../Redaction.js"
import type { TraceId } from "../TraceId.js"
import { circuitOf, clip, describeError, isTimeout } from "./truncate.js"

/** One ended span, as reduction needs it. */
export interface SpanData {
  readonly spanId: string
  /** The parent's span id; undefined for a span without a parent. */
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly attributes: ReadonlyMap<string, unknown>
  /** Start and end, in nanoseconds since the Unix epoch (Effect's `Clock`). */
  readonly startTime: bigint
  readonly endTime: bigint
  readonly exit: Exit.Exit<unknown, unknown>
  /** Whether the span is a root of the trace in this process (its parent is remote or absent). */
  readonly root: boolean
}

/** What a record may hold. */
export interface Limits {
  /** Characters kept of each input, output and error text (`SG_TRUNCATE`, 500). */
  readonly truncate: number
  /** Calls kept per run (1,000): the first half and the last half. */
  readonly maxCallsPerRun: number
  /** Size cap of the record's JSON in bytes (256 KiB). */
  readonly maxRecordBytes: number
  readonly redact: Redactor
}

/** The identity of a run when runs are buffered or grouped. */
export interface RunIdentity {
  readonly conversationId: string | undefined
  readonly agentId: string
  readonly runId: string
}

/** How runs are keyed: (conversation_id, agent_id, run_id), so concurrent siblings of one agent never merge. */
export const runKey = (run: RunIdentity): string => `${run.conversationId ?? ""}\u0000${run.agentId}\u0000${run.runId}`

type Kind = "run" | "tool" | "inference" | "other"

const inferenceOperations = new Set(["chat", "text_completion", "generate_content"])

const kindOf = (span: SpanData): Kind => {
  const attributes = span.attributes
  const kind = attributes.get(A.kind)
  if (kind === Kinds.agentRun) return "run"
  if (kind === Kinds.tool) return "tool"
  if (kind === Kinds.inference) return "inference"
  if (attributes.has(A.runId)) return "run"
  if (span.name === "Toolkit.handle") return "tool"
  const operation = attributes.get(A.operation)
  if (operation === "execute_tool") return "tool"
  if (span.name.startsWith("LanguageModel.") || (typeof operation === "string" && inferenceOperations.has(operation))) {
    return "inference"
  }
  return "other"
}

const str = (value: unknown): string | undefined =>
  typeof value === "string" && value !== "" ? value : typeof value === "number" ? String(value) : undefined

const count = (value: unknown): number | undefined => {
  const n = typeof value === "number" ? value : typeof value === "string" ? Number(value) : NaN
  return Number.isFinite(n) && n >= 0 ? Math.round(n) : undefined
}

const toMillis = (nanos: bigint): number => Number((nanos + 500_000n) / 1_000_000n)
const iso = (nanos: bigint): string => DateTime.formatIso(DateTime.unsafeMake(toMillis(nanos)))
const durationMs = (start: bigint, end: bigint): number =>
  end > start ? Math.round(Number(end - start) / 1_000) / 1_000 : 0

interface Outcome {
  readonly status: Status
  /** The raw failure, described and clipped only when it is kept. */
  readonly error?: unknown
  readonly interrupted?: true
  readonly failure?: unknown
}

const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (exit._tag === "Success") return { status: "success" }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    return { status: isTimeout(failure.value) ? "timeout" : "error", error: failure.value, failure: failure.value }
  }
  const defect = Cause.dieOption(exit.cause)
  if (Option.isSome(defect)) return { status: "error", error: `defect: ${describeError(defect.value)}` }
  return { status: "error", error: "interrupted", interrupted: true }
}

const severity: Record<Status, number> = { success: 0, error: 1, timeout: 2 }

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

interface CallDraft {
  readonly kind: "tool" | "inference"
  readonly span: SpanData
  readonly folded: Array<SpanData>
  circuit: string | undefined
}

interface RunDraft {
  readonly key: string
  readonly spans: Array<SpanData>
  readonly calls: Array<CallDraft>
  runId: string
  agentId: string
  parentRunId: string | undefined
  conversationId: string | undefined
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
    const record: ExecutionRecord = {
      trace_id: input.traceId,
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

const circuitFromExit = (exit: Exit.Exit<unknown, unknown>): string | undefined =>
  exit._tag === "Failure"
    ? Option.getOrUndefined(Option.flatMapNullable(Cause.failureOption(exit.cause), circuitOf))
    : undefined

const earliest = (spans: ReadonlyArray<SpanData>): bigint =>
  spans.reduce((m, s) => (s.startTime < m ? s.startTime : m), spans[0]!.startTime)
const latest = (spans: ReadonlyArray<SpanData>): bigint =>
  spans.reduce((m, s) => (s.endTime > m ? s.endTime : m), spans[0]!.endTime)
const byStart = (a: { readonly span: SpanData }, b: { readonly span: SpanData }) =>
  a.span.startTime < b.span.startTime ? -1 : a.span.startTime > b.span.startTime ? 1 : 0

const isCancelled = (span: SpanData): boolean => span.attributes.get(A.cancelled) === true

const cancelledOutcome: Outcome = { status: "error", error: "cancelled", interrupted: true }

const rootOutcome = (root: SpanData): Outcome => {
  if (isCancelled(root)) return { status: "error", error: "cancelled" }
  const outcome = outcomeOf(root.exit)
  const httpStatus = count(root.attributes.get(A.httpStatus))
  if (outcome.status !== "success" || httpStatus === undefined || httpStatus < 500) return outcome
  return httpStatus === 504
    ? { status: "timeout", error: `HTTP ${httpStatus}` }
    : { status: "error", error: `HTTP ${httpStatus}` }
}

/** A Toolkit.handle result that is a failure (the tool's failure mode "return"). */
const toolkitFailure = (span: SpanData): { readonly result: unknown } | undefined => {
  if (span.name !== "Toolkit.handle" || span.exit._tag !== "Success") return undefined
  const value = span.exit.value as { readonly isFailure?: unknown; readonly result?: unknown } | null | undefined
  return typeof value === "object" && value !== null && value.isFailure === true ? { result: value.result } : undefined
}

const successValue = (span: SpanData): unknown => {
  if (span.exit._tag !== "Success") return undefined
  const value = span.exit.value as
    | { readonly encodedResult?: unknown; readonly result?: unknown; readonly text?: unknown }
    | undefined
  if (span.name === "Toolkit.handle" && typeof value === "object" && value !== null) {
    return value.encodedResult ?? value.result
  }
  if (span.name.startsWith("LanguageModel.") && typeof value === "object" && value !== null) {
    return typeof value.text === "string" ? value.text : undefined
  }
  return value
}

const outputText = (span: SpanData, text: (value: unknown) => string): string | null => {
  const value = span.attributes.has(A.output) ? span.attributes.get(A.output) : successValue(span)
  return value === undefined ? null : text(value)
}

const firstAttribute = (spans: ReadonlyArray<SpanData>, names: ReadonlyArray<string>): unknown => {
  for (const span of spans) {
    for (const name of names) {
      const value = span.attributes.get(name)
      if (value !== undefined && value !== null && value !== "") return value
    }
  }
  return undefined
}

const tokensOf = (draft: CallDraft): Tokens => {
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

const buildCall = (draft: CallDraft, text: (value: unknown) => string): ToolCall | InferenceCall => {
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
  return {
    ...common,
    model: str(firstAttribute(all, [A.requestModel, A.responseModel])) ?? null,
    tokens: tokensOf(draft)
  }
}

const buildRun = (
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
    steps++
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

/** The first ⌈max/2⌉ and the last ⌊max/2⌋ items, and how many were left out between them. */
export const keepEnds = <A>(
  items: ReadonlyArray<A>,
  max: number
): { readonly kept: Array<A>; readonly dropped: number } => {
  if (items.length <= max) return { kept: items.slice(), dropped: 0 }
  const head = Math.ceil(max / 2)
  const tail = max - head
  return { kept: [...items.slice(0, head), ...items.slice(items.length - tail)], dropped: items.length - max }
}

const byteLength = (record: ExecutionRecord): number => Buffer.byteLength(JSON.stringify(record), "utf8")

/**
 * An upper bound of the record's JSON size, without serializing it: every text at its longest (cut texts plus their
 * marker) and every character escaped to 6 bytes, names and ids at 200 bytes, the rest at a generous 600 per item.
 */
const sizeBound = (record: ExecutionRecord, truncate: number): number => {
  const text = 6 * (truncate + 40)
  let bound = 600 + text
  for (const run of record.runs) {
    bound += 1000 + text + run.events.length * (600 + 2 * text)
    bound += (run.tool_calls.length + run.inference_calls.length) * (800 + 3 * text)
  }
  return bound
}

/**
 * Keeps the record under `maxRecordBytes`: first fewer calls per run (halving, down to 16, ends kept), then no call
 * inputs and outputs, then fewer runs (sub-agents last started first), then fewer calls and child results in what is
 * left. It says what it dropped.
 */
const capSize = (record: ExecutionRecord, droppedSpans: number, limits: Limits): ExecutionRecord => {
  const dropped: { calls: number; runs: number; events: number; spans: number; payloads: boolean } = {
    calls: record.runs.reduce((n, r) => n + (r.dropped_calls ?? 0), 0),
    runs: 0,
    events: 0,
    spans: droppedSpans,
    payloads: false
  }
  const finish = (r: ExecutionRecord): ExecutionRecord =>
    dropped.calls + dropped.runs + dropped.events + dropped.spans > 0 || dropped.payloads
      ? { ...r, dropped: { ...dropped } satisfies Dropped }
      : r
  let current = finish(record)
  if (sizeBound(current, limits.truncate) <= limits.maxRecordBytes || byteLength(current) <= limits.maxRecordBytes) {
    return current
  }

  let runs = record.runs
  let max = Math.max(...runs.map((r) => r.tool_calls.length + r.inference_calls.length))
  while (max > 16) {
    max = Math.max(16, Math.floor(max / 2))
    runs = runs.map((run) => shrinkRun(run, max))
    dropped.calls = runs.reduce((n, r) => n + (r.dropped_calls ?? 0), 0)
    current = finish({ ...record, runs })
    if (byteLength(current) <= limits.maxRecordBytes) return current
  }
  dropped.payloads = true
  runs = runs.map((run) => ({
    ...run,
    tool_calls: run.tool_calls.map((c) => ({ ...c, input: null, output: null })),
    inference_calls: run.inference_calls.map((c) => ({ ...c, input: null, output: null })),
    events: run.events.map((e) => ({ ...e, output: null }))
  }))
  current = finish({ ...record, runs })
  while (byteLength(current) > limits.maxRecordBytes && runs.length > 1) {
    const victim = runs.reduce((worst, run, i) =>
      run.parent_run_id !== undefined && (worst < 0 || run.started_at >= runs[worst]!.started_at) ? i : worst, -1)
    const index = victim < 0 ? runs.length - 1 : victim
    runs = runs.filter((_, i) => i !== index)
    dropped.runs++
    current = finish({ ...record, runs })
  }
  // Last resort: fewer calls and child results in what is left, down to none.
  while (byteLength(current) > limits.maxRecordBytes) {
    const most = Math.max(...runs.map((r) => Math.max(r.tool_calls.length + r.inference_calls.length, r.events.length)))
    if (most === 0) break
    const keep = Math.floor(most / 2)
    runs = runs.map((run) => {
      const shrunk = shrinkRun(run, keep)
      const events = keepEnds(run.events, keep)
      dropped.events += events.dropped
      return { ...shrunk, events: events.kept }
    })
    dropped.calls = runs.reduce((n, r) => n + (r.dropped_calls ?? 0), 0)
    current = finish({ ...record, runs })
  }
  return current
}

const shrinkRun = (run: Run, max: number): Run => {
  const calls: Array<{ readonly tool?: ToolCall; readonly inference?: InferenceCall; readonly at: string }> = [
    ...run.tool_calls.map((tool) => ({ tool, at: tool.started_at })),
    ...run.inference_calls.map((inference) => ({ inference, at: inference.started_at }))
  ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
  const { dropped, kept } = keepEnds(calls, max)
  if (dropped === 0) return run
  return {
    ...run,
    tool_calls: kept.flatMap((c) => (c.tool !== undefined ? [c.tool] : [])),
    inference_calls: kept.flatMap((c) => (c.inference !== undefined ? [c.inference] : [])),
    dropped_calls: (run.dropped_calls ?? 0) + dropped
  }
}
