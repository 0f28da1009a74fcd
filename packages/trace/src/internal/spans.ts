/**
 * Reading the spans of a trace: what reduction needs of each (kind, attributes, outcome, times), and the small
 * helpers that turn them into record fields.
 */
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type { Status } from "../ExecutionRecord.js"
import { Attributes as A, Kinds } from "../ExecutionSpan.js"
import type { Redactor } from "../Redaction.js"
import { toMillis } from "./execTracer.js"
import { circuitOf, describeError, isTimeout } from "./truncate.js"

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

export type Kind = "run" | "tool" | "inference" | "other"

export const inferenceOperations = new Set(["chat", "text_completion", "generate_content"])

export const kindOf = (span: SpanData): Kind => {
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

export const str = (value: unknown): string | undefined =>
  typeof value === "string" && value !== "" ? value : typeof value === "number" ? String(value) : undefined

export const count = (value: unknown): number | undefined => {
  const n = typeof value === "number" ? value : typeof value === "string" ? Number(value) : NaN
  return Number.isFinite(n) && n >= 0 ? Math.round(n) : undefined
}

export const iso = (nanos: bigint): string => DateTime.formatIso(DateTime.unsafeMake(toMillis(nanos)))
export const durationMs = (start: bigint, end: bigint): number =>
  end > start ? Math.round(Number(end - start) / 1_000) / 1_000 : 0

export interface Outcome {
  readonly status: Status
  /** The raw failure, described and clipped only when it is kept. */
  readonly error?: unknown
  readonly interrupted?: true
  readonly failure?: unknown
}

export const outcomeOf = (exit: Exit.Exit<unknown, unknown>): Outcome => {
  if (exit._tag === "Success") return { status: "success" }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    return { status: isTimeout(failure.value) ? "timeout" : "error", error: failure.value, failure: failure.value }
  }
  const defect = Cause.dieOption(exit.cause)
  if (Option.isSome(defect)) return { status: "error", error: `defect: ${describeError(defect.value)}` }
  return { status: "error", error: "interrupted", interrupted: true }
}

export const severity: Record<Status, number> = { success: 0, error: 1, timeout: 2 }

export const circuitFromExit = (exit: Exit.Exit<unknown, unknown>): string | undefined =>
  exit._tag === "Failure"
    ? Option.getOrUndefined(Option.flatMapNullable(Cause.failureOption(exit.cause), circuitOf))
    : undefined

export const earliest = (spans: ReadonlyArray<SpanData>): bigint =>
  spans.reduce((m, s) => (s.startTime < m ? s.startTime : m), spans[0]!.startTime)
export const latest = (spans: ReadonlyArray<SpanData>): bigint =>
  spans.reduce((m, s) => (s.endTime > m ? s.endTime : m), spans[0]!.endTime)
export const byStart = (a: { readonly span: SpanData }, b: { readonly span: SpanData }) =>
  a.span.startTime < b.span.startTime ? -1 : a.span.startTime > b.span.startTime ? 1 : 0

export const isCancelled = (span: SpanData): boolean => span.attributes.get(A.cancelled) === true

export const cancelledOutcome: Outcome = { status: "error", error: "cancelled", interrupted: true }

export const rootOutcome = (root: SpanData): Outcome => {
  if (isCancelled(root)) return { status: "error", error: "cancelled" }
  const outcome = outcomeOf(root.exit)
  const httpStatus = count(root.attributes.get(A.httpStatus))
  if (outcome.status !== "success" || httpStatus === undefined || httpStatus < 500) return outcome
  return httpStatus === 504
    ? { status: "timeout", error: `HTTP ${httpStatus}` }
    : { status: "error", error: `HTTP ${httpStatus}` }
}

/** A Toolkit.handle result that is a failure (the tool's failure mode "return"). */
export const toolkitFailure = (span: SpanData): { readonly result: unknown } | undefined => {
  if (span.name !== "Toolkit.handle" || span.exit._tag !== "Success") return undefined
  const value = span.exit.value as { readonly isFailure?: unknown; readonly result?: unknown } | null | undefined
  return typeof value === "object" && value !== null && value.isFailure === true ? { result: value.result } : undefined
}

export const successValue = (span: SpanData): unknown => {
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

export const outputText = (span: SpanData, text: (value: unknown) => string): string | null => {
  const value = span.attributes.has(A.output) ? span.attributes.get(A.output) : successValue(span)
  return value === undefined ? null : text(value)
}

export const firstAttribute = (spans: ReadonlyArray<SpanData>, names: ReadonlyArray<string>): unknown => {
  for (const span of spans) {
    for (const name of names) {
      const value = span.attributes.get(name)
      if (value !== undefined && value !== null && value !== "") return value
    }
  }
  return undefined
}
