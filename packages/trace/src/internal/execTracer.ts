/**
 * The recording tracer: wraps the installed tracer (native or OpenTelemetry), so every span is still that tracer's,
 * and buffers each ended span under its trace. What runs on the request path is only this: one wrapper object per
 * span, a map lookup per root span, a snapshot pushed per ended span, and a push onto the ready list when a root ends.
 */
import type * as Context from "effect/Context"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { Attributes } from "../ExecutionSpan.js"
import type { EndedSpan } from "../TraceExporter.js"

const runIdAttribute = Attributes.runId

/** The spans of one trace seen in this process. */
export interface TraceBuffer {
  /** The spans' trace id as they carry it: 32 hex digits for a trace id (`TraceId.fromHex`). */
  readonly key: string
  readonly spans: Array<EndedSpan>
  droppedSpans: number
  /** Spans pushed that still count towards the recorder's total (`SpanBudget`); 0 once released. */
  counted: number
  /** How many of `spans` were handed to the `TraceExporter` (they are never handed over twice). */
  exported: number
  /** Root spans started and not yet ended: the trace is reduced once this is back at 0. */
  openRoots: number
  /** `open` while roots run; `queued` on the ready list; `done` once reduced (a late span queues it again). */
  state: "open" | "queued" | "done" | "dropped"
  /** When the writer may reduce it (Unix ms): the root's end plus the grace period. */
  dueAt: number
}

/** The spans buffered across every trace, and the most there may be. */
export interface SpanBudget {
  buffered: number
  readonly max: number
}

/** What the tracer asks of the recorder. */
export interface Hooks {
  /** The buffer a new root span of `traceId` joins (it starts at `startTime`); undefined when not recorded. */
  readonly rootBuffer: (traceId: string, startTime: bigint) => TraceBuffer | undefined
  /** A trace's last root ended (or a span ended after that): put it on the ready list. */
  readonly schedule: (buffer: TraceBuffer, endTime: bigint) => void
  readonly maxSpansPerTrace: number
  readonly budget: SpanBudget
}

/** A span of the inner tracer, observed: buffered under its trace when it ends. */
export class RecordingSpan implements Tracer.Span {
  readonly _tag = "Span"

  constructor(
    readonly inner: Tracer.Span,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly buffer: TraceBuffer | undefined,
    readonly root: boolean,
    readonly startTime: bigint,
    readonly hooks: Hooks
  ) {}

  get name(): string {
    return this.inner.name
  }
  get spanId(): string {
    return this.inner.spanId
  }
  get traceId(): string {
    return this.inner.traceId
  }
  get context(): Context.Context<never> {
    return this.inner.context
  }
  get status(): Tracer.SpanStatus {
    return this.inner.status
  }
  get links(): ReadonlyArray<Tracer.SpanLink> {
    return this.inner.links
  }
  get sampled(): boolean {
    return this.inner.sampled
  }
  get kind(): Tracer.SpanKind {
    return this.inner.kind
  }
  /** The inner span's attributes: every `Tracer.Span` keeps them, so they are not copied. */
  get attributes(): ReadonlyMap<string, unknown> {
    return this.inner.attributes
  }
  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    this.inner.end(endTime, exit)
    const buffer = this.buffer
    if (buffer === undefined || buffer.state === "dropped") return
    // A snapshot, not the span: once the trace has run, its spans (and the inner tracer's) can be collected.
    // Past the caps (per trace, and in total), roots and agent runs are still kept: the record's structure hangs on them.
    const budget = this.hooks.budget
    if (
      (buffer.spans.length < this.hooks.maxSpansPerTrace && budget.buffered < budget.max) || this.root ||
      this.inner.attributes.has(runIdAttribute)
    ) {
      budget.buffered++
      buffer.counted++
      buffer.spans.push({
        spanId: this.inner.spanId,
        parentSpanId: this.parent._tag === "Some" ? this.parent.value.spanId : undefined,
        name: this.inner.name,
        kind: this.inner.kind,
        attributes: this.inner.attributes,
        startTime: this.startTime,
        endTime,
        exit,
        root: this.root
      })
    } else {
      buffer.droppedSpans++
    }
    if (this.root) {
      if (--buffer.openRoots === 0) this.hooks.schedule(buffer, endTime)
    } else if (buffer.state === "done" && buffer.openRoots === 0) {
      this.hooks.schedule(buffer, endTime)
    }
  }

  attribute(key: string, value: unknown): void {
    this.inner.attribute(key, value)
  }

  event(name: string, startTime: bigint, attributes?: Record<string, unknown>): void {
    this.inner.event(name, startTime, attributes)
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    this.inner.addLinks(links)
  }
}

/** A tracer that delegates every span to `inner` and records it through `hooks`. */
export const make = (inner: Tracer.Tracer, hooks: Hooks): Tracer.Tracer =>
  Tracer.make({
    span(name, parent, context, links, startTime, kind, options) {
      const parentSpan = parent._tag === "Some" ? parent.value : undefined
      const innerOptions = options?.parent instanceof RecordingSpan
        ? { ...options, parent: options.parent.inner }
        : options
      const span = inner.span(
        name,
        parentSpan instanceof RecordingSpan ? Option.some(parentSpan.inner) : parent,
        context,
        links,
        startTime,
        kind,
        innerOptions
      )
      if (parentSpan instanceof RecordingSpan) {
        return new RecordingSpan(span, parent, parentSpan.buffer, false, startTime, hooks)
      }
      const buffer = hooks.rootBuffer(span.traceId, startTime)
      if (buffer !== undefined) buffer.openRoots++
      return new RecordingSpan(span, parent, buffer, true, startTime, hooks)
    },
    context(f, fiber) {
      return inner.context(f, fiber)
    }
  })

/** A new buffer for the trace whose spans carry `key` (its id is checked off the request path, when reduced). */
export const makeBuffer = (key: string): TraceBuffer => ({
  key,
  spans: [],
  droppedSpans: 0,
  counted: 0,
  exported: 0,
  openRoots: 0,
  state: "open",
  dueAt: 0
})

/** Unix milliseconds of a span timestamp. */
export const toMillis = (nanos: bigint): number => Number((nanos + 500_000n) / 1_000_000n)

/** Takes a buffer's spans off the total (once it is reduced or dropped); a late span counts again until the next. */
export const release = (buffer: TraceBuffer, budget: SpanBudget): void => {
  budget.buffered -= buffer.counted
  buffer.counted = 0
}
