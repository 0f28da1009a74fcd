/**
 * `ExportTraceServiceRequest` in the protobuf wire format, written with protobufjs' `Writer`, from the JSON-shaped
 * spans `@effect/opentelemetry`'s serialization takes. Field numbers are those of opentelemetry-proto
 * (`collector/trace/v1`, `trace/v1`, `resource/v1`, `common/v1`); tests decode the output with the official
 * definitions. Written here because `@effect/opentelemetry`'s own protobuf encoder allocates an array per field and
 * costs about 25 times what this does per span, which would make export cost more CPU than recording.
 */
import type { AnyValue, KeyValue, Resource } from "@effect/opentelemetry/OtlpResource"
import protobuf from "protobufjs/minimal.js"
import type { Event, OtlpSpan } from "../OtlpSpan.js"

type Writer = protobuf.Writer

/** What one export request holds. */
export interface TracesData {
  readonly resource: Resource
  readonly scope: { readonly name: string; readonly version?: string | undefined }
  readonly schemaUrl?: string | undefined
  readonly spans: ReadonlyArray<OtlpSpan>
}

const VARINT = 0
const FIXED64 = 1
const LENGTH = 2
const tag = (field: number, wire: number) => (field << 3) | wire

const mask32 = 0xffffffffn

/** A fixed64 from a decimal string of nanoseconds: two little-endian 32-bit halves, low first. */
const fixed64 = (w: Writer, field: number, decimal: string) => {
  const n = BigInt(decimal)
  w.uint32(tag(field, FIXED64)).fixed32(Number(n & mask32)).fixed32(Number((n >> 32n) & mask32))
}

const hexBytes = (w: Writer, field: number, hex: string) => {
  w.uint32(tag(field, LENGTH)).bytes(Buffer.from(hex, "hex"))
}

const string = (w: Writer, field: number, value: string | undefined | null) => {
  if (value !== undefined && value !== null && value !== "") w.uint32(tag(field, LENGTH)).string(value)
}

const uint = (w: Writer, field: number, value: number) => {
  if (value > 0) w.uint32(tag(field, VARINT)).uint32(value)
}

// AnyValue { string_value = 1; bool_value = 2; int_value = 3; double_value = 4; array_value = 5; kvlist_value = 6;
// bytes_value = 7 }
const anyValue = (w: Writer, value: AnyValue) => {
  if (value.stringValue !== undefined && value.stringValue !== null) {
    w.uint32(tag(1, LENGTH)).string(value.stringValue)
  } else if (value.boolValue !== undefined && value.boolValue !== null) {
    w.uint32(tag(2, VARINT)).bool(value.boolValue)
  } else if (value.intValue !== undefined && value.intValue !== null) {
    w.uint32(tag(3, VARINT)).int64(value.intValue)
  } else if (value.doubleValue !== undefined && value.doubleValue !== null) {
    w.uint32(tag(4, FIXED64)).double(value.doubleValue)
  } else if (value.arrayValue !== undefined) {
    w.uint32(tag(5, LENGTH)).fork()
    for (const item of value.arrayValue.values) {
      w.uint32(tag(1, LENGTH)).fork()
      anyValue(w, item)
      w.ldelim()
    }
    w.ldelim()
  } else if (value.kvlistValue !== undefined) {
    w.uint32(tag(6, LENGTH)).fork()
    for (const kv of value.kvlistValue.values) keyValue(w, 1, kv)
    w.ldelim()
  } else if (value.bytesValue !== undefined) {
    w.uint32(tag(7, LENGTH)).bytes(value.bytesValue)
  }
}

// KeyValue { key = 1; value = 2 }
const keyValue = (w: Writer, field: number, kv: KeyValue) => {
  w.uint32(tag(field, LENGTH)).fork()
  string(w, 1, kv.key)
  w.uint32(tag(2, LENGTH)).fork()
  anyValue(w, kv.value)
  w.ldelim()
  w.ldelim()
}

// Event { time_unix_nano = 1 (fixed64); name = 2; attributes = 3; dropped_attributes_count = 4 }
const event = (w: Writer, e: Event) => {
  w.uint32(tag(11, LENGTH)).fork()
  fixed64(w, 1, e.timeUnixNano)
  string(w, 2, e.name)
  for (const kv of e.attributes) keyValue(w, 3, kv)
  uint(w, 4, e.droppedAttributesCount)
  w.ldelim()
}

// Span { trace_id = 1; span_id = 2; trace_state = 3; parent_span_id = 4; name = 5; kind = 6;
// start_time_unix_nano = 7; end_time_unix_nano = 8; attributes = 9; dropped_attributes_count = 10; events = 11;
// dropped_events_count = 12; links = 13; dropped_links_count = 14; status = 15 (message = 2; code = 3); flags = 16 }
const span = (w: Writer, s: OtlpSpan) => {
  w.uint32(tag(2, LENGTH)).fork()
  hexBytes(w, 1, s.traceId)
  hexBytes(w, 2, s.spanId)
  if (s.parentSpanId !== undefined) hexBytes(w, 4, s.parentSpanId)
  string(w, 5, s.name)
  uint(w, 6, s.kind)
  fixed64(w, 7, s.startTimeUnixNano)
  fixed64(w, 8, s.endTimeUnixNano)
  for (const kv of s.attributes) keyValue(w, 9, kv)
  uint(w, 10, s.droppedAttributesCount)
  for (const e of s.events) event(w, e)
  uint(w, 12, s.droppedEventsCount)
  uint(w, 14, s.droppedLinksCount)
  w.uint32(tag(15, LENGTH)).fork()
  string(w, 2, s.status.message)
  uint(w, 3, s.status.code)
  w.ldelim()
  w.ldelim()
}

/**
 * The request: ExportTraceServiceRequest { resource_spans = 1 }, ResourceSpans { resource = 1 (Resource { attributes
 * = 1; dropped_attributes_count = 2 }); scope_spans = 2 }, ScopeSpans { scope = 1 (InstrumentationScope { name = 1;
 * version = 2 }); spans = 2; schema_url = 3 }.
 */
export const encodeTraces = (data: TracesData): Uint8Array => {
  const w = protobuf.Writer.create()
  w.uint32(tag(1, LENGTH)).fork()
  w.uint32(tag(1, LENGTH)).fork()
  for (const kv of data.resource.attributes) keyValue(w, 1, kv)
  uint(w, 2, data.resource.droppedAttributesCount)
  w.ldelim()
  w.uint32(tag(2, LENGTH)).fork()
  w.uint32(tag(1, LENGTH)).fork()
  string(w, 1, data.scope.name)
  string(w, 2, data.scope.version)
  w.ldelim()
  for (const s of data.spans) span(w, s)
  string(w, 3, data.schemaUrl)
  w.ldelim()
  w.ldelim()
  return w.finish()
}
