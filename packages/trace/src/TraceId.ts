/**
 * The trace id: a UUID in canonical lowercase form (ours are UUIDv7, time-sortable), which is also
 * the 16-byte W3C Trace Context trace-id, so a `traceparent` carries it unchanged.
 */
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

const canonical = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const nil = "00000000-0000-0000-0000-000000000000"

/**
 * A trace id: 8-4-4-4-12 lowercase hex, not the nil UUID. Any RFC 9562 UUID is accepted, and so is any
 * other non-zero 128-bit value in that form, because an adopted W3C trace-id need not carry UUID version bits.
 */
export const TraceId = Schema.String.pipe(
  Schema.filter((s) =>
    canonical.test(s)
      ? s !== nil || "a trace id must not be all zeros"
      : "a trace id is a UUID in canonical lowercase form (8-4-4-4-12 hex digits)"
  ),
  Schema.brand("@sg/trace/TraceId"),
  Schema.annotations({ identifier: "TraceId", description: "a UUID in canonical lowercase form (UUIDv7 when minted by sg)" })
)

/** A trace id. */
export type TraceId = typeof TraceId.Type

/** Whether a value is a trace id. */
export const is: (u: unknown) => u is TraceId = Schema.is(TraceId)

/** Parses a trace id; `None` for anything else. */
export const parse = (s: string): Option.Option<TraceId> => is(s) ? Option.some(s) : Option.none()

/** The UUID version (the 13th hex digit); 7 for ids sg mints. */
export const versionOf = (id: TraceId): number => parseInt(id[14]!, 16)

/** The Unix time in milliseconds a UUIDv7 was minted at; `None` for other versions. */
export const timestampOf = (id: TraceId): Option.Option<number> =>
  versionOf(id) === 7 ? Option.some(parseInt(id.slice(0, 8) + id.slice(9, 13), 16)) : Option.none()

/** The 32 lowercase hex digits W3C Trace Context uses for the same 16 bytes. */
export const toHex = (id: TraceId): string =>
  id.slice(0, 8) + id.slice(9, 13) + id.slice(14, 18) + id.slice(19, 23) + id.slice(24)

/** The trace id whose 16 bytes are these 32 lowercase hex digits; `None` when they are not that, or all zero. */
export const fromHex = (hex: string): Option.Option<TraceId> =>
  /^[0-9a-f]{32}$/.test(hex)
    ? parse(`${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`)
    : Option.none()

/** A parsed W3C `traceparent` header. */
export interface Traceparent {
  readonly traceId: TraceId
  /** The caller's span id: 16 lowercase hex digits, not all zero. */
  readonly parentId: string
  /** The trace-flags byte (bit 0: sampled). */
  readonly flags: number
}

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const zeroSpan = "0000000000000000"

/**
 * Parses a `traceparent` as W3C Trace Context level 1 has it: version `00`, exactly four fields, lowercase hex,
 * trace-id and parent-id not all zero. Anything else (version `ff` or another, upper case, extra fields) is `None`.
 */
export const fromTraceparent = (header: string): Option.Option<Traceparent> => {
  const match = traceparentPattern.exec(header.trim())
  if (match === null || match[2] === zeroSpan) return Option.none()
  return Option.map(fromHex(match[1]!), (traceId) => ({ traceId, parentId: match[2]!, flags: parseInt(match[3]!, 16) }))
}

/**
 * The `traceparent` for a span of this trace. Flags default to sampled (`01`); the "random" flag (`02`) is never
 * set, since a UUIDv7's low bytes hold counter bits.
 */
export const toTraceparent = (id: TraceId, spanId: string, flags = 1): string =>
  `00-${toHex(id)}-${spanId}-${(flags & 0xfd).toString(16).padStart(2, "0")}`
