/**
 * A span as OTLP carries it (`opentelemetry.proto.trace.v1.Span` in its JSON form: ids as lowercase hex, times as
 * decimal nanoseconds), the shape `@effect/opentelemetry`'s `OtlpSerialization` encodes to `http/json` or
 * `http/protobuf`.
 */
import type { KeyValue } from "@effect/opentelemetry/OtlpResource"

/** `SpanKind` of OTLP. */
export const SpanKind = {
  unspecified: 0,
  internal: 1,
  server: 2,
  client: 3,
  producer: 4,
  consumer: 5
} as const

/** `Status.StatusCode` of OTLP: `unset` for a span that did not fail, `error` for one that did. */
export const StatusCode = {
  unset: 0,
  ok: 1,
  error: 2
} as const

/** A span's status. */
export interface Status {
  readonly code: number
  readonly message?: string | undefined
}

/** A timed event of a span (an `exception`, for one that failed). */
export interface Event {
  readonly timeUnixNano: string
  readonly name: string
  readonly attributes: ReadonlyArray<KeyValue>
  readonly droppedAttributesCount: number
}

/** One span. */
export interface OtlpSpan {
  /** 32 lowercase hex digits. */
  readonly traceId: string
  /** 16 lowercase hex digits. */
  readonly spanId: string
  /** Absent for a root span. */
  readonly parentSpanId?: string | undefined
  readonly name: string
  /** A `SpanKind`. */
  readonly kind: number
  readonly startTimeUnixNano: string
  readonly endTimeUnixNano: string
  readonly attributes: ReadonlyArray<KeyValue>
  readonly droppedAttributesCount: number
  readonly events: ReadonlyArray<Event>
  readonly droppedEventsCount: number
  readonly links: ReadonlyArray<never>
  readonly droppedLinksCount: number
  readonly status: Status
}
