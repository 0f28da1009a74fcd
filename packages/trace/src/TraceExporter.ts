/**
 * The recorder's export hook. When a `TraceExporter` is in the context the `Recorder` is built in, the recorder hands
 * it the spans of each trace it samples for export, at the moment it decides about the trace's record: when the
 * trace ends (its last root span ended, plus the grace period), off the request path, by the records' rule (every
 * error and timeout; successes when `Sampling.roll` of the id is below the exporter's own `sampleSuccess`). With the
 * same rate as the records, a trace is exported exactly when its record is kept. `@sg/otel` provides one that sends
 * the spans over OTLP.
 *
 * A span that ends after its trace was handed over comes later, alone (`late`), when the recorder reconsiders the
 * trace; spans are never handed over twice.
 */
import * as Context from "effect/Context"
import type * as Exit from "effect/Exit"
import type * as Tracer from "effect/Tracer"
import type { Status } from "./ExecutionRecord.js"
import type { TraceId } from "./TraceId.js"

/** One ended span, as the recorder buffered it. */
export interface EndedSpan {
  readonly spanId: string
  /** The parent's span id; for a root, the remote parent's (`Tracer.externalSpan`), if any. */
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly kind: Tracer.SpanKind
  readonly attributes: ReadonlyMap<string, unknown>
  /** Start and end, in nanoseconds since the Unix epoch (Effect's `Clock`). */
  readonly startTime: bigint
  readonly endTime: bigint
  readonly exit: Exit.Exit<unknown, unknown>
  /** Whether the span is a root of the trace in this process (its parent is remote or absent). */
  readonly root: boolean
}

/** A trace the recorder sampled for export. */
export interface EndedTrace {
  readonly traceId: TraceId
  /** The spans not handed over before, in the order they ended. */
  readonly spans: ReadonlyArray<EndedSpan>
  /** The status its record has (or would have): the sampling decision was made on it. */
  readonly status: Status
  /** Spans of the trace the recorder could not buffer (past its `maxSpansPerTrace`). */
  readonly droppedSpans: number
  /** Whether other spans of this trace were handed over before these. */
  readonly late: boolean
}

/** Where sampled traces go. */
export interface Service {
  /** Share of successful traces exported, 0 to 1; errors and timeouts always are. */
  readonly sampleSuccess: number
  /** Takes a trace. Called from the recorder's writer: it must return at once and never throw. */
  readonly offer: (trace: EndedTrace) => void
}

/** The exporter the recorder hands sampled traces to, when one is provided where the recorder is built. */
export class TraceExporter extends Context.Tag("@sg/trace/TraceExporter")<TraceExporter, Service>() {}
