/**
 * How an execution record is kept so that the records of several requests of one trace merge, run by run, in one
 * atomic step: a flat hash of header fields and one field per run. Redis holds it at `sg:exec:<id>` and merges in a
 * Lua script (`execScripts.ts`); the memory store holds the same fields in a `Map` and merges with `merge` below, the
 * script's twin. Reading either back is `assemble`.
 *
 * Fields: `v` (2), `tenant` (the tenant of the first save, absent when it had none), `status` and `rank` (the worst status of the saves: success 0, timeout 1, error 2), `error` (the
 * error of the first save at that status), `conversation_id` (the first one given), `started_at`/`started_ms` (the
 * earliest), `ended_at`/`ended_ms` (the latest), `duration_ms` (a single save's own; after a merge that moved either
 * end, their difference), `runs`, `bytes` (the runs' JSON size), `seq` (the next run's position), `dropped_runs`,
 * `dropped_events`, `dropped_spans`, `dropped_payloads`, and per run `run:<run_id>|<agent>|<conversation>` =
 * `<position>:<the run's JSON>`. A run saved again (the recorder re-saves a trace a late span joined) replaces its
 * earlier version in place; runs past `maxRuns` or past `maxBytes` are left out and counted in `dropped_runs`. A
 * save of another tenant (or of none, into a tenant's record, or the reverse) changes nothing: a trace's record holds
 * the runs of one tenant only, so no key reads another tenant's runs through a trace id they share.
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { type ExecutionRecord, ExecutionRecord as RecordSchema, type Run, startMillis, Status } from "../ExecutionRecord.js"
import { ExecutionRecordCorrupt } from "../ExecutionStoreError.js"

/** The most runs one trace's record holds, whatever the number of its requests (1,000). */
export const defaultMaxRuns = 1000

/** The largest a trace's merged record may grow, counting its runs' JSON (256 KiB). */
export const defaultMaxBytes = 256 * 1024

/** What a save adds: the header values and each run's field and JSON, in the record's order. */
export interface Parts {
  readonly id: string
  /** The tenant of the save's request, if it had one. */
  readonly tenant: string | undefined
  readonly status: Status
  readonly rank: number
  readonly error: string | undefined
  readonly conversationId: string | undefined
  readonly startedAt: string
  readonly startedMs: number
  readonly endedAt: string
  readonly endedMs: number
  readonly durationMs: number
  readonly droppedRuns: number
  readonly droppedEvents: number
  readonly droppedSpans: number
  readonly droppedPayloads: boolean
  /** Field name and JSON per run. */
  readonly runs: ReadonlyArray<readonly [string, string]>
  /** The agents of its runs, for their indexes. */
  readonly agents: ReadonlyArray<string>
}

/** How bad a status is: the record of several saves has the worst. */
export const rankOf = (status: Status): number => (status === "error" ? 2 : status === "timeout" ? 1 : 0)

const statusOfRank: ReadonlyArray<Status> = ["success", "timeout", "error"]

/** The hash field of a run: its run id, agent and conversation, which together tell any two runs apart. */
export const runField = (run: Run): string => `run:${run.run_id}|${run.agent_id}|${run.conversation_id ?? ""}`

const encodeRecord = Schema.encodeEither(RecordSchema)
const decodeRecord = Schema.decodeUnknownEither(RecordSchema)
const format = ParseResult.TreeFormatter.formatErrorSync

/** Splits a record into what a save writes; a record that does not satisfy the schema is refused. */
export const toParts = (
  record: ExecutionRecord,
  agents: ReadonlyArray<string>
): Either.Either<Parts, ExecutionRecordCorrupt> =>
  Either.match(encodeRecord(record), {
    onLeft: (error) =>
      Either.left(
        new ExecutionRecordCorrupt({
          trace_id: String(record.trace_id),
          message: `execution record of ${record.trace_id} is not valid: ${format(error)}`,
          cause: error
        })
      ),
    onRight: (encoded) =>
      Either.right({
        id: record.trace_id,
        tenant: record.tenant,
        status: record.status,
        rank: rankOf(record.status),
        error: record.error,
        conversationId: record.conversation_id,
        startedAt: record.started_at,
        startedMs: startMillis(record),
        endedAt: record.ended_at,
        endedMs: Date.parse(record.ended_at),
        durationMs: record.duration_ms,
        droppedRuns: record.dropped?.runs ?? 0,
        droppedEvents: record.dropped?.events ?? 0,
        droppedSpans: record.dropped?.spans ?? 0,
        droppedPayloads: record.dropped?.payloads ?? false,
        runs: encoded.runs.map((run, i) => [runField(record.runs[i]!), JSON.stringify(run)] as const),
        agents
      })
  })

/** What a merge left out; `otherTenant` (the record's tenant, "" for none) when it refused a save of another. */
export interface Merged {
  readonly otherTenant?: string | undefined
  readonly droppedRuns: number
  /** The record's status after the merge. */
  readonly status: Status
  /** The record's start after the merge: the score of its index entries. */
  readonly startedMs: number
}

const num = (raw: string | undefined): number | undefined => (raw === undefined ? undefined : Number(raw))

/** Merges a save into a record's fields, as the Lua script does in Redis. */
export const merge = (
  fields: Map<string, string>,
  parts: Parts,
  limits: { readonly maxRuns: number; readonly maxBytes: number }
): Merged => {
  const first = !fields.has("v")
  const tenant = fields.get("tenant") ?? ""
  if (!first && tenant !== (parts.tenant ?? "")) {
    return {
      droppedRuns: 0,
      status: statusOfRank[Number(fields.get("rank"))]!,
      startedMs: Number(fields.get("started_ms")),
      otherTenant: tenant
    }
  }
  if (first && parts.tenant !== undefined) fields.set("tenant", parts.tenant)
  const rank = num(fields.get("rank")) ?? -1
  if (parts.rank > rank) {
    fields.set("status", parts.status).set("rank", String(parts.rank))
    if (parts.error !== undefined) fields.set("error", parts.error)
    else fields.delete("error")
  } else if (parts.rank === rank && !fields.has("error") && parts.error !== undefined) {
    fields.set("error", parts.error)
  }
  if (!fields.has("conversation_id") && parts.conversationId !== undefined) {
    fields.set("conversation_id", parts.conversationId)
  }
  let moved = false
  const started = num(fields.get("started_ms"))
  if (started === undefined || parts.startedMs < started) {
    fields.set("started_ms", String(parts.startedMs)).set("started_at", parts.startedAt)
    moved = true
  }
  const ended = num(fields.get("ended_ms"))
  if (ended === undefined || parts.endedMs > ended) {
    fields.set("ended_ms", String(parts.endedMs)).set("ended_at", parts.endedAt)
    moved = true
  }
  if (first) fields.set("duration_ms", String(parts.durationMs))
  else if (moved) fields.set("duration_ms", String(Number(fields.get("ended_ms")) - Number(fields.get("started_ms"))))
  let runs = num(fields.get("runs")) ?? 0
  let bytes = num(fields.get("bytes")) ?? 0
  let seq = num(fields.get("seq")) ?? 0
  let droppedRuns = 0
  for (const [field, json] of parts.runs) {
    const old = fields.get(field)
    const oldSize = old === undefined ? 0 : Buffer.byteLength(old)
    const position = old === undefined ? seq : Number(old.slice(0, old.indexOf(":")))
    const value = `${position}:${json}`
    const size = Buffer.byteLength(value)
    if ((old === undefined && runs >= limits.maxRuns) || bytes - oldSize + size > limits.maxBytes) {
      droppedRuns++
      continue
    }
    fields.set(field, value)
    bytes += size - oldSize
    if (old === undefined) {
      runs++
      seq++
    }
  }
  fields.set("runs", String(runs)).set("bytes", String(bytes)).set("seq", String(seq)).set("v", "2")
  const add = (name: string, n: number) => fields.set(name, String((num(fields.get(name)) ?? 0) + n))
  add("dropped_runs", parts.droppedRuns + droppedRuns)
  add("dropped_events", parts.droppedEvents)
  add("dropped_spans", parts.droppedSpans)
  if (parts.droppedPayloads) fields.set("dropped_payloads", "1")
  return {
    droppedRuns,
    status: statusOfRank[Number(fields.get("rank"))]!,
    startedMs: Number(fields.get("started_ms"))
  }
}

const corrupt = (traceId: string, message: string, cause?: unknown) =>
  new ExecutionRecordCorrupt({ trace_id: traceId, message: `stored execution record of ${traceId} is unreadable: ${message}`, cause })

/** Reads a record's fields back as the record; anything that is not one is `ExecutionRecordCorrupt`. */
export const assemble = (
  traceId: string,
  fields: Readonly<Record<string, string>>
): Either.Either<ExecutionRecord, ExecutionRecordCorrupt> => {
  const runs: Array<{ readonly position: number; readonly run: unknown }> = []
  for (const name in fields) {
    if (!name.startsWith("run:")) continue
    const value = fields[name]!
    const colon = value.indexOf(":")
    try {
      runs.push({ position: Number(value.slice(0, colon)), run: JSON.parse(value.slice(colon + 1)) })
    } catch (cause) {
      return Either.left(corrupt(traceId, `run ${name.slice(4)} is not JSON`, cause))
    }
  }
  runs.sort((a, b) => a.position - b.position)
  const int = (name: string) => Number(fields[name] ?? 0)
  const ranRuns = runs.map((r) => r.run as { readonly dropped_calls?: number })
  const calls = ranRuns.reduce((n, run) => n + (typeof run.dropped_calls === "number" ? run.dropped_calls : 0), 0)
  const dropped = {
    calls,
    runs: int("dropped_runs"),
    events: int("dropped_events"),
    spans: int("dropped_spans"),
    payloads: fields["dropped_payloads"] === "1"
  }
  const candidate = {
    trace_id: traceId,
    ...(fields["tenant"] !== undefined ? { tenant: fields["tenant"] } : {}),
    ...(fields["conversation_id"] !== undefined ? { conversation_id: fields["conversation_id"] } : {}),
    status: fields["status"],
    started_at: fields["started_at"],
    ended_at: fields["ended_at"],
    duration_ms: Number(fields["duration_ms"]),
    ...(fields["error"] !== undefined ? { error: fields["error"] } : {}),
    runs: ranRuns,
    ...(dropped.calls + dropped.runs + dropped.events + dropped.spans > 0 || dropped.payloads ? { dropped } : {})
  }
  return Either.mapLeft(decodeRecord(candidate), (error) => corrupt(traceId, format(error), error))
}
