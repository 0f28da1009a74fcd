/**
 * A trace's lifecycle record as the Redis hash `sg:trace:<id>` holds it: its state, when it was created and last
 * updated, and the caller's flat string fields. Also the timestamp format that hash shares with the Python service.
 */
import * as DateTime from "effect/DateTime"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { TraceId } from "./TraceId.js"

/** The lifecycle states sg writes. A trace's state may be any other non-empty string too; it is kept as written. */
export const States = {
  RECEIVED: "RECEIVED",
  INFERRING: "INFERRING",
  EGRESS: "EGRESS",
  COMPLETED: "COMPLETED",
  ERRORED: "ERRORED"
} as const

/** A lifecycle state: a known one or any other non-empty string. */
export const State = Schema.String.pipe(
  Schema.minLength(1, { message: () => "a trace state must be a non-empty string" }),
  Schema.annotations({
    identifier: "TraceState",
    description: "RECEIVED, INFERRING, EGRESS, COMPLETED, ERRORED or any other non-empty string"
  })
)

/** A lifecycle state. */
export type State = typeof State.Type

/** The states nothing moves a trace out of. */
export const TerminalState = Schema.Literal(States.COMPLETED, States.ERRORED)

/** `COMPLETED` or `ERRORED`. */
export type TerminalState = typeof TerminalState.Type

/** Whether a state is terminal. */
export const isTerminal = (state: string): state is TerminalState =>
  state === States.COMPLETED || state === States.ERRORED

/** The hash fields the store owns; caller metadata may not use these names. */
export const reservedFields: ReadonlySet<string> = new Set(["state", "created_at", "updated_at"])

/** A caller field name: non-empty, and not one of the store's own fields. */
export const FieldName = Schema.String.pipe(
  Schema.filter((name) =>
    name.length === 0
      ? "a field name must be non-empty"
      : reservedFields.has(name)
      ? `"${name}" is reserved for the trace store (${Array.from(reservedFields).join(", ")})`
      : true
  ),
  Schema.annotations({ identifier: "TraceFieldName" })
)

/** Caller metadata (or finishing fields): a flat map of string fields stored beside the state in the trace hash. */
export const Metadata = Schema.Record({ key: FieldName, value: Schema.String }).pipe(
  Schema.annotations({ identifier: "TraceMetadata", description: "a flat string-to-string map; no reserved names" })
)

/** Caller metadata. */
export type Metadata = typeof Metadata.Type

/** Formats Unix epoch milliseconds as epoch seconds with 3 decimals: `1763870000123` is `"1763870000.123"`. */
export const formatEpochSeconds = (epochMillis: number): string => {
  const millis = Math.floor(epochMillis)
  const seconds = Math.floor(millis / 1000)
  return `${seconds}.${String(millis - seconds * 1000).padStart(3, "0")}`
}

const epochSecondsPattern = /^(\d{1,12})(?:\.(\d+))?$/
const isoPattern =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$/

const parseIso = (match: RegExpExecArray): number | undefined => {
  const [, year, month, day, hour = "00", minute = "00", second = "00", fraction, zone] = match
  const midnight = Date.UTC(Number(year), Number(month) - 1, Number(day))
  // Date.parse rolls "02-30" over into March: check the calendar day exists.
  if (new Date(midnight).getUTCDate() !== Number(day) || Number(month) < 1 || Number(month) > 12) return undefined
  const offset = zone === undefined || zone === "Z" || zone === "z"
    ? "Z"
    : zone.length === 3
    ? `${zone}:00`
    : `${zone.slice(0, 3)}:${zone.slice(-2)}`
  const millis = Date.parse(
    `${year}-${month}-${day}T${hour}:${minute}:${second}.${(fraction ?? "").padEnd(3, "0").slice(0, 3)}${offset}`
  )
  return Number.isNaN(millis) ? undefined : millis
}

const maxEpochMillis = 8.64e15

/**
 * Reads a stored timestamp as Unix epoch milliseconds: epoch seconds as Python's `time.time()` writes them
 * (`"1763870000.123"`, any number of decimals, kept to the millisecond) or as an integer, or ISO-8601
 * (`2025-11-23T10:40:00.123Z`; a time with no zone is UTC). `undefined` for anything else.
 */
export const parseTimestamp = (input: string): number | undefined => {
  const epoch = epochSecondsPattern.exec(input)
  if (epoch !== null) {
    const millis = Number(epoch[1]) * 1000 + Number((epoch[2] ?? "").padEnd(3, "0").slice(0, 3))
    return millis <= maxEpochMillis ? millis : undefined
  }
  const iso = isoPattern.exec(input)
  return iso === null ? undefined : parseIso(iso)
}

/** A timestamp field of the trace hash: decodes every form `parseTimestamp` reads, encodes as `"<seconds>.<ms>"`. */
export const Timestamp = Schema.transformOrFail(Schema.String, Schema.DateTimeUtcFromSelf, {
  strict: true,
  decode: (input, _, ast) => {
    const millis = parseTimestamp(input)
    return millis === undefined
      ? ParseResult.fail(
        new ParseResult.Type(
          ast,
          input,
          `expected epoch seconds ("1763870000.123") or ISO-8601, got ${JSON.stringify(input)}`
        )
      )
      : ParseResult.succeed(DateTime.unsafeMake(millis))
  },
  encode: (dateTime) => ParseResult.succeed(formatEpochSeconds(DateTime.toEpochMillis(dateTime)))
}).pipe(Schema.annotations({ identifier: "TraceTimestamp" }))

/** A trace's lifecycle record. Its JSON form has ISO-8601 timestamps. */
export class TraceRecord extends Schema.Class<TraceRecord>("@sg/trace/TraceRecord")({
  trace_id: TraceId,
  state: State,
  created_at: Schema.DateTimeUtc,
  /** Absent in hashes only a writer that does not keep it (the Python service's `create_trace`) has touched. */
  updated_at: Schema.optionalWith(Schema.DateTimeUtc, { as: "Option" }),
  /** Every other hash field: the caller's metadata, and `error` once a trace has failed. */
  fields: Schema.Record({ key: Schema.String, value: Schema.String })
}) {}

/** Why a stored hash is not a readable record: the field at fault and what is wrong with it. */
export interface HashProblem {
  readonly field: string
  readonly message: string
}

const decodeTimestamp = Schema.decodeEither(Timestamp)

/** Reads a trace hash (as HGETALL returns it) as a record. */
export const fromHash = (
  id: TraceId,
  hash: Readonly<Record<string, string>>
): Either.Either<TraceRecord, HashProblem> => {
  const { created_at, state, updated_at, ...fields } = hash
  if (state === undefined || state.length === 0) {
    return Either.left({ field: "state", message: "the hash has no state" })
  }
  if (created_at === undefined) return Either.left({ field: "created_at", message: "the hash has no created_at" })
  const created = decodeTimestamp(created_at)
  if (Either.isLeft(created)) {
    return Either.left({ field: "created_at", message: ParseResult.TreeFormatter.formatErrorSync(created.left) })
  }
  const updated = updated_at === undefined ? Either.right(undefined) : decodeTimestamp(updated_at)
  if (Either.isLeft(updated)) {
    return Either.left({ field: "updated_at", message: ParseResult.TreeFormatter.formatErrorSync(updated.left) })
  }
  return Either.right(
    new TraceRecord({
      trace_id: id,
      state,
      created_at: created.right,
      updated_at: Option.fromNullable(updated.right),
      fields
    })
  )
}
