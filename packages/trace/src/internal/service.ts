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
import type { TraceId } from "../TraceId.js"
import {
  FieldName,
  formatEpochSeconds,
  fromHash,
  isTerminal,
  Metadata,
  parseTimestamp,
  reservedFields,
  State,
  type TerminalState
} from "../TraceRecord.js"
import type {
  CreateOptions,
  Finished,
  Options,
  Service,
  SweepOptions,
  SweepReport,
  WriteOptions
} from "../TraceStore.js"
import {
  InvalidTraceInput,
  InvalidTraceRecord,
  LeaseLost,
  StaleTraceWrite,
  TraceAlreadyTerminal,
  TraceNotFound
} from "../TraceStoreError.js"
import { type Backend, type Candidate, Decision, type Refused, type Row } from "./backend.js"
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
  opening: number | undefined,
  result: Refused
): Effect.Effect<never, TraceNotFound | TraceAlreadyTerminal | StaleTraceWrite> => {
  switch (result._tag) {
    case "missing":
      return Effect.fail(
        new TraceNotFound({ trace_id: id, message: `trace ${id} does not exist (never created, or expired)` })
      )
    case "stale":
      return Effect.fail(
        new StaleTraceWrite({
          trace_id: id,
          opening: opening ?? 0,
          current: result.opening,
          message: `trace ${id} has been reopened (opening ${result.opening}): a write of opening ${opening} ` +
            `cannot move it to ${state}`
        })
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

const validOpening = (options: WriteOptions | undefined): Either.Either<number | undefined, InvalidTraceInput> => {
  const opening = options?.opening
  return opening === undefined || (Number.isSafeInteger(opening) && opening >= 1)
    ? Either.right(opening)
    : Either.left(new InvalidTraceInput({ field: "opening", message: `opening must be a positive integer` }))
}

const tokenPattern = /^[A-Za-z0-9_-]{1,64}$/

const validRequest = (options: CreateOptions | undefined): Either.Either<string | undefined, InvalidTraceInput> => {
  const request = options?.request
  return request === undefined || tokenPattern.test(request)
    ? Either.right(request)
    : Either.left(
      new InvalidTraceInput({ field: "request", message: "a request token is 1 to 64 of A-Z, a-z, 0-9, _ and -" })
    )
}

interface Plan {
  readonly candidates: ReadonlyArray<Candidate>
  readonly unreadable: number
}

/**
 * Picks from a batch read the ids to act on: gone, terminal but still listed, or in flight with no write (its
 * readable `updated_at`, else `created_at`) for longer than the threshold.
 */
const plan = (rows: ReadonlyArray<Row>, now: number, thresholdMillis: number): Plan => {
  const candidates: Array<Candidate> = []
  let unreadable = 0
  for (const row of rows) {
    if (row.state === null && row.createdAt === null) {
      candidates.push({ id: row.id, kind: "gone", seen: "", ageMillis: 0 })
      continue
    }
    if (row.state !== null && isTerminal(row.state)) {
      candidates.push({ id: row.id, kind: "terminal", seen: "", ageMillis: 0 })
      continue
    }
    const seen = row.updatedAt ?? row.createdAt
    const active = seen === null ? undefined : parseTimestamp(seen)
    if (active === undefined) {
      unreadable++
      continue
    }
    const age = now - active
    if (age > thresholdMillis) candidates.push({ id: row.id, kind: "idle", seen: seen!, ageMillis: age })
  }
  return { candidates, unreadable }
}

/** Builds the service over a backend. */
export const makeService = (backend: Backend, options: Options): Service => {
  const failsafeTtl = ttlSeconds(options.failsafeTtl)
  const terminalTtl = ttlSeconds(options.terminalTtl)
  const now = Effect.map(Clock.currentTimeMillis, formatEpochSeconds)

  // The hot path of every request: validated synchronously, then one script reading the clock once.
  const create: Service["create"] = (id, initialState, metadata, options) => {
    const valid = validCreate(initialState, metadata)
    if (Either.isLeft(valid)) return Effect.fail(valid.left)
    const request = validRequest(options)
    if (Either.isLeft(request)) return Effect.fail(request.left)
    const { fields, state } = valid.right
    const at = (clock: Clock.Clock) => formatEpochSeconds(clock.unsafeCurrentTimeMillis())
    return Effect.clockWith((clock) =>
      Effect.map(
        backend.create(id, state, at(clock), fields, failsafeTtl, request.right),
        (result) => ({ opening: result.opening, kind: result.kind, in_flight: result.inFlight })
      )
    )
  }

  const end = (
    id: TraceId,
    state: TerminalState,
    fields: ReadonlyArray<string>,
    opening: number | undefined,
    request: string | undefined
  ) =>
    Effect.flatMap(now, (at) => backend.finish(id, state, at, opening, fields, terminalTtl, request)).pipe(
      Effect.flatMap((result): Effect.Effect<Finished, TraceNotFound | TraceAlreadyTerminal | StaleTraceWrite> => {
        switch (result._tag) {
          case "ended":
            return Effect.succeed({ ended: true, state: result.state, in_flight: 0, duplicate: false })
          case "pending":
            return Effect.succeed({ ended: false, state: undefined, in_flight: result.inFlight, duplicate: false })
          case "duplicate":
            return Effect.succeed({ ended: false, state: undefined, in_flight: 0, duplicate: true })
          default:
            return refusal(id, state, opening, result)
        }
      })
    )

  const transition = Effect.fnUntraced(function*(id: TraceId, state: string, options?: WriteOptions) {
    const valid = yield* validState(state)
    const opening = yield* validOpening(options)
    if (isTerminal(valid)) return void (yield* end(id, valid, noFields, opening, yield* validRequest(options)))
    const result = yield* backend.transition(id, valid, yield* now, opening)
    if (result._tag !== "ok") return yield* refusal(id, valid, opening, result)
  })

  const finish = Effect.fnUntraced(
    function*(id: TraceId, state: string, fields?: Readonly<Record<string, string>>, options?: WriteOptions) {
      if (!isTerminal(state)) {
        return yield* new InvalidTraceInput({
          field: "state",
          message: `finish takes COMPLETED or ERRORED, not ${JSON.stringify(state)}`
        })
      }
      const valid = yield* validFields("fields", fields)
      return yield* end(id, state, valid, yield* validOpening(options), yield* validRequest(options))
    }
  )

  // Passed to the script as well: the atomic step itself never writes a reserved name, whatever got past validation.
  const reserved = Array.from(reservedFields)
  const annotate: Service["annotate"] = (id, fields) => {
    const valid = validFields("metadata", fields)
    if (Either.isLeft(valid)) return Effect.fail(valid.left)
    if (valid.right.length === 0) return Effect.void
    return Effect.flatMap(backend.annotate(id, valid.right, reserved), (found) =>
      found
        ? Effect.void
        : Effect.fail(
          new TraceNotFound({ trace_id: id, message: `trace ${id} does not exist (never created, or expired)` })
        ))
  }

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
    const report = { scanned: 0, removed_missing: 0, removed_terminal: 0, orphaned: 0, skipped_unreadable: 0 }

    const leaseLost = (holder: string | null, epoch: string | null) =>
      new LeaseLost({
        lease: fence!.name,
        epoch: fence!.epoch,
        message: `lease ${fence!.name} is no longer held by this sweep at epoch ${fence!.epoch} (holder: ${
          holder ?? "none"
        }, epoch: ${epoch ?? "none"}): the sweep stopped and wrote nothing more`
      })

    const decide = (shard: number, candidates: ReadonlyArray<Candidate>) =>
      Effect.gen(function*() {
        if (candidates.length === 0) return
        const result = yield* backend.decide(shard, candidates, yield* now, terminalTtl, fence)
        if (result._tag === "lease_lost") return yield* leaseLost(result.holder, result.epoch)
        for (let i = 0; i < candidates.length; i++) {
          const decision = result.decisions[i]
          if (decision === Decision.removedMissing) report.removed_missing++
          else if (decision === Decision.removedTerminal) report.removed_terminal++
          else if (decision === Decision.unreadable) report.skipped_unreadable++
          else if (decision === Decision.orphaned) {
            report.orphaned++
            yield* Effect.logWarning("trace_orphaned").pipe(
              Effect.annotateLogs({ trace_id: candidates[i]!.id, age_seconds: candidates[i]!.ageMillis / 1000 })
            )
          }
        }
      })

    // Shard by shard (one standalone). On a cluster, every shard's fence is raised to this epoch before any shard is
    // walked (the lease lives in another slot, so no script can check it with a shard's keys): from then on an older
    // leader's sweep writes nothing in any shard, and a fence above this epoch (a newer leader's) stops this sweep.
    if (fence !== undefined) {
      const shards = Array.from({ length: backend.shards }, (_, shard) => shard)
      const raised = yield* Effect.forEach(shards, (shard) => backend.raiseFence(shard, fence), {
        concurrency: "unbounded"
      })
      const lost = raised.find((r) => r._tag === "lease_lost")
      if (lost !== undefined && lost._tag === "lease_lost") return yield* leaseLost(null, lost.epoch)
    }
    for (let shard = 0; shard < backend.shards; shard++) {
      if (fence !== undefined && shard > 0 && !(yield* fence.stillHeld)) return yield* leaseLost(null, null)
      const next = yield* backend.walk(shard, batchSize)
      let rows = yield* next
      while (rows !== undefined) {
        report.scanned += rows.length
        const { candidates, unreadable } = plan(rows, yield* Clock.currentTimeMillis, threshold)
        report.skipped_unreadable += unreadable
        if (Option.isSome(hooks) && rows.length > 0) yield* hooks.value.afterRead(rows.map((row) => row.id))
        // The next batch is read while this one is decided: Redis runs one command at a time either way, and the
        // round trips and this side's work overlap. Every decision re-reads what it acts on, so this is safe.
        rows = (yield* Effect.zip(decide(shard, candidates), next, { concurrent: true }))[1]
      }
    }
    const ended = yield* Clock.currentTimeMillis
    return { ...report, duration_ms: ended - started } satisfies SweepReport
  }, Effect.annotateLogs({ package: "@sg/trace", operation: "sweepOrphans" }))

  return {
    backend: backend.kind,
    address: backend.address,
    create,
    transition,
    finish,
    annotate,
    get,
    ttl: (id) => Effect.map(backend.ttlMillis(id), (ms) => Option.map(Option.fromNullable(ms), Duration.millis)),
    isActive: (id) => backend.isActive(id),
    activeCount: backend.activeCount,
    ping: backend.ping,
    sweepOrphans
  }
}
