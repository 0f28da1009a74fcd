/**
 * The TraceStore service over a backend: input validation, timestamps from `Clock`, record decoding and the sweep
 * loop, shared by the Redis store and its memory twin.
 */
import { Lease } from "@sg/leader"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { ExecutionStore } from "../ExecutionStore.js"
import type { TraceId } from "../TraceId.js"
import { FieldName, formatEpochSeconds, fromHash, isTerminal, Metadata, parseTimestamp, State } from "../TraceRecord.js"
import type { Options, Service, SweepOptions, SweepReport } from "../TraceStore.js"
import {
  InvalidTraceInput,
  InvalidTraceRecord,
  LeaseLost,
  TraceAlreadyTerminal,
  TraceNotFound
} from "../TraceStoreError.js"
import { type Backend, type Candidate, Decision, type Row, type SetStateResult } from "./backend.js"
import { SweepHooks } from "./sweepHooks.js"

const decodeState = Schema.decodeUnknownEither(State)
const decodeMetadata = Schema.decodeUnknownEither(Metadata, { errors: "first", onExcessProperty: "error" })
const decodeFieldName = Schema.decodeUnknownEither(FieldName)
const isMetadata = Schema.is(Metadata, { onExcessProperty: "error" })

const flatten = (fields: Readonly<Record<string, string>>): Array<string> => {
  const pairs: Array<string> = []
  for (const name of Object.keys(fields)) pairs.push(name, fields[name]!)
  return pairs
}

const validState = (state: unknown): Either.Either<string, InvalidTraceInput> =>
  Either.mapLeft(decodeState(state), (error) =>
    new InvalidTraceInput({ field: "state", message: ParseResult.TreeFormatter.formatErrorSync(error) }))

const noFields: ReadonlyArray<string> = []

/** Flattens validated fields into HSET's field/value pairs. */
const validFields = (
  what: "metadata" | "fields",
  input: unknown
): Either.Either<ReadonlyArray<string>, InvalidTraceInput> => {
  if (input === undefined) return Either.right(noFields)
  // The common case, a valid map, is checked without building a decoded copy; decoding only explains a refusal.
  if (isMetadata(input)) return Either.right(flatten(input))
  return Either.match(decodeMetadata(input), {
    onRight: (fields) => Either.right(flatten(fields)),
    onLeft: (error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const key = issue?.path[0]
      if (key === undefined) {
        return Either.left(
          new InvalidTraceInput({ field: what, message: `${what} must be a flat map of string fields`, cause: error })
        )
      }
      const field = String(key)
      const problem = issue?._tag === "Unexpected"
        ? Either.match(decodeFieldName(field), {
          onLeft: (e) => ParseResult.TreeFormatter.formatErrorSync(e),
          onRight: () => issue.message
        })
        : issue?.message
      return Either.left(
        new InvalidTraceInput({ field, message: `${what} field ${JSON.stringify(field)}: ${problem}`, cause: error })
      )
    }
  })
}

/** The HSET pairs of a new trace after its timestamps, or why the input is refused. */
const validCreate = (initialState: unknown, metadata: unknown) =>
  Either.flatMap(validState(initialState), (state) =>
    isTerminal(state)
      ? Either.left(
        new InvalidTraceInput({
          field: "state",
          message: `a trace cannot be created ${state}: create it in flight, then finish it`
        })
      )
      : Either.map(validFields("metadata", metadata), (fields) => ({ state, fields })))

const ttlSeconds = (ttl: Duration.DurationInput): number =>
  Math.max(1, Math.ceil(Duration.toSeconds(Duration.decode(ttl))))

const refusal = (
  id: string,
  state: string,
  result: SetStateResult
): Effect.Effect<void, TraceNotFound | TraceAlreadyTerminal> => {
  switch (result._tag) {
    case "ok":
      return Effect.void
    case "missing":
      return Effect.fail(
        new TraceNotFound({ trace_id: id, message: `trace ${id} does not exist (never created, or expired)` })
      )
    case "terminal":
      return Effect.fail(
        new TraceAlreadyTerminal({
          trace_id: id,
          state: result.state,
          message: `trace ${id} is already ${result.state}: it cannot move to ${state}`
        })
      )
  }
}

interface Plan {
  readonly candidates: ReadonlyArray<Candidate>
  readonly unreadable: number
}

/** Picks from a batch read the ids to act on: gone, or in flight with a readable `created_at` past the threshold. */
const plan = (rows: ReadonlyArray<Row>, now: number, thresholdMillis: number): Plan => {
  const candidates: Array<Candidate> = []
  let unreadable = 0
  for (const row of rows) {
    if (row.state === null && row.createdAt === null) {
      candidates.push({ id: row.id, seen: "", ageMillis: 0 })
      continue
    }
    if (row.state !== null && isTerminal(row.state)) continue
    const created = row.createdAt === null ? undefined : parseTimestamp(row.createdAt)
    if (created === undefined) {
      unreadable++
      continue
    }
    const age = now - created
    if (age > thresholdMillis) candidates.push({ id: row.id, seen: row.createdAt!, ageMillis: age })
  }
  return { candidates, unreadable }
}

/** Builds the service over a backend. */
export const makeService = (backend: Backend, options: Options, executions: ExecutionStore): Service => {
  const failsafeTtl = ttlSeconds(options.failsafeTtl)
  const terminalTtl = ttlSeconds(options.terminalTtl)
  const now = Effect.map(Clock.currentTimeMillis, formatEpochSeconds)

  // The hot path of every request: validated synchronously, then one step reading the clock and one MULTI.
  const create: Service["create"] = (id, initialState, metadata) => {
    const valid = validCreate(initialState, metadata)
    if (Either.isLeft(valid)) return Effect.fail(valid.left)
    const { fields, state } = valid.right
    return Effect.clockWith((clock) => {
      const at = formatEpochSeconds(clock.unsafeCurrentTimeMillis())
      return backend.create(id, ["state", state, "created_at", at, "updated_at", at, ...fields], failsafeTtl)
    })
  }

  const setState = (id: TraceId, state: string, fields: ReadonlyArray<string>) =>
    Effect.flatMap(now, (at) => backend.setState(id, state, at, fields, isTerminal(state) ? terminalTtl : undefined))
      .pipe(Effect.flatMap((result) => refusal(id, state, result)))

  const transition = Effect.fnUntraced(function*(id: TraceId, state: string) {
    yield* setState(id, yield* validState(state), [])
  })

  const finish = Effect.fnUntraced(
    function*(id: TraceId, state: string, fields?: Readonly<Record<string, string>>) {
      if (!isTerminal(state)) {
        return yield* new InvalidTraceInput({
          field: "state",
          message: `finish takes COMPLETED or ERRORED, not ${JSON.stringify(state)}`
        })
      }
      yield* setState(id, state, yield* validFields("fields", fields))
    }
  )

  const get = Effect.fnUntraced(function*(id: TraceId) {
    const hash = yield* backend.read(id)
    if (hash === undefined) return Option.none()
    return yield* Either.match(fromHash(id, hash), {
      onLeft: ({ field, message }) =>
        Effect.fail(new InvalidTraceRecord({ trace_id: id, field, message: `trace ${id}: ${field}: ${message}` })),
      onRight: (record) => Effect.succeed(Option.some(record))
    })
  })

  const sweepOrphans = Effect.fn("TraceStore.sweepOrphans")(function*(sweep?: SweepOptions) {
    const batchSize = sweep?.batchSize ?? options.sweepBatchSize
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      return yield* new InvalidTraceInput({
        field: "batchSize",
        message: `a sweep's batchSize must be a positive integer, not ${batchSize}`
      })
    }
    const threshold = Duration.toMillis(Duration.decode(sweep?.threshold ?? options.orphanThreshold))
    const fence = sweep?.fence ?? Option.getOrUndefined(yield* Effect.serviceOption(Lease.Lease))
    const hooks = yield* Effect.serviceOption(SweepHooks)
    const started = yield* Clock.currentTimeMillis
    const report = { scanned: 0, removed_missing: 0, orphaned: 0, skipped_unreadable: 0 }

    const decide = (candidates: ReadonlyArray<Candidate>) =>
      Effect.gen(function*() {
        if (candidates.length === 0) return
        const result = yield* backend.decide(candidates, yield* now, terminalTtl, fence)
        if (result._tag === "lease_lost") {
          return yield* new LeaseLost({
            lease: fence!.name,
            epoch: fence!.epoch,
            message: `lease ${fence!.name} is no longer held by this sweep at epoch ${fence!.epoch} (holder: ${
              result.holder ?? "none"
            }, epoch: ${result.epoch ?? "none"}): the sweep stopped and wrote nothing more`
          })
        }
        for (let i = 0; i < candidates.length; i++) {
          const decision = result.decisions[i]
          if (decision === Decision.removedMissing) report.removed_missing++
          else if (decision === Decision.unreadable) report.skipped_unreadable++
          else if (decision === Decision.orphaned) {
            report.orphaned++
            yield* Effect.logWarning("trace_orphaned").pipe(
              Effect.annotateLogs({ trace_id: candidates[i]!.id, age_seconds: candidates[i]!.ageMillis / 1000 })
            )
          }
        }
      })

    const next = yield* backend.walk(batchSize)
    let rows = yield* next
    while (rows !== undefined) {
      report.scanned += rows.length
      const { candidates, unreadable } = plan(rows, yield* Clock.currentTimeMillis, threshold)
      report.skipped_unreadable += unreadable
      if (Option.isSome(hooks) && rows.length > 0) yield* hooks.value.afterRead(rows.map((row) => row.id))
      // The next batch is read while this one is decided: Redis runs one command at a time either way, and the
      // round trips and this side's work overlap. Every decision re-reads what it acts on, so this is safe.
      rows = (yield* Effect.zip(decide(candidates), next, { concurrent: true }))[1]
    }
    const ended = yield* Clock.currentTimeMillis
    return { ...report, duration_ms: ended - started } satisfies SweepReport
  }, Effect.annotateLogs({ package: "@sg/trace", operation: "sweepOrphans" }))

  return {
    backend: backend.kind,
    create,
    transition,
    finish,
    get,
    ttl: (id) => Effect.map(backend.ttlMillis(id), (ms) => Option.map(Option.fromNullable(ms), Duration.millis)),
    isActive: (id) => backend.isActive(id),
    activeCount: backend.activeCount,
    ping: backend.ping,
    sweepOrphans,
    saveExecution: executions.save,
    getExecution: executions.get,
    listExecutions: executions.list
  }
}
