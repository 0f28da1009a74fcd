// absolute dates: hashes a Python writer made long ago, read back for their parsing; with no TTL and always past
// the orphan threshold, passing time cannot change what the tests see
/**
 * The TraceStore conformance suite: one set of scenarios every backend must pass, run against the memory twin and
 * against Redis, so the two cannot drift apart. Each scenario gets a fresh, isolated store from `layer`.
 */
import { expect, type Vitest } from "@effect/vitest"
import { Lease } from "@sg/leader"
import { Cause, Clock, DateTime, Duration, Effect, Exit, type Layer, Option, TestClock } from "effect"
import { SweepHooks } from "../../src/internal/sweepHooks.js"
import type * as TraceId from "../../src/TraceId.js"
import * as TraceRecord from "../../src/TraceRecord.js"
import * as TraceStore from "../../src/TraceStore.js"
import { nextTraceId } from "./ids.js"
import { withLogs } from "./logs.js"
import { StoreKit } from "./StoreKit.js"

const minutes = (n: number) => Duration.toMillis(Duration.minutes(n))
const pythonNow = 1_763_870_000_000

const recordOf = (id: TraceId.TraceId) =>
  Effect.flatMap(TraceStore.TraceStore, (store) => store.get(id)).pipe(Effect.map(Option.getOrThrow))

/** Registers the conformance scenarios with `it`, each run against a fresh store built from `layer`. */
export const conformance = <E, R>(
  it: Vitest.MethodsNonLive<R, boolean>,
  layer: Layer.Layer<TraceStore.TraceStore | StoreKit, E, R>
): void => {
  const test = <A, E2>(name: string, body: () => Effect.Effect<A, E2, TraceStore.TraceStore | StoreKit>) =>
    it.effect(name, () => Effect.provide(Effect.suspend(body), layer))

  test("create, then get: state, timestamps from Clock, metadata; in the active set", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      yield* TestClock.setTime(1_763_870_000_123)
      const id = nextTraceId()
      yield* store.create(id, "RECEIVED", { platform: "telegram", channel: "c-1", empty: "" })
      const record = yield* recordOf(id)
      expect(record.trace_id).toBe(id)
      expect(record.state).toBe("RECEIVED")
      expect(DateTime.toEpochMillis(record.created_at)).toBe(1_763_870_000_123)
      expect(Option.map(record.updated_at, DateTime.toEpochMillis)).toEqual(Option.some(1_763_870_000_123))
      expect(record.fields).toEqual({ platform: "telegram", channel: "c-1", empty: "" })
      expect(yield* store.isActive(id)).toBe(true)
      expect(yield* store.activeCount).toBe(1)
      expect(yield* store.get(nextTraceId())).toEqual(Option.none())
    }))

  test("timestamps are written as epoch seconds with three decimals", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const kit = yield* StoreKit
      const id = nextTraceId()
      yield* TestClock.setTime(1_763_870_000_007)
      yield* store.create(id, "RECEIVED")
      expect(yield* kit.readRaw(id)).toEqual({
        state: "RECEIVED",
        created_at: "1763870000.007",
        updated_at: "1763870000.007",
        requests: "1",
        in_flight: "1",
        opening: "1",
        errors: "0"
      })
      yield* TestClock.setTime(1_763_870_001_000)
      yield* store.transition(id, "INFERRING")
      expect((yield* kit.readRaw(id))?.["updated_at"]).toBe("1763870001.000")
      expect((yield* kit.readRaw(id))?.["created_at"]).toBe("1763870000.007")
    }))

  test("a new trace gets the failsafe TTL (24 hours)", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "RECEIVED")
      const ttl = Duration.toMillis(Option.getOrThrow(yield* store.ttl(id)))
      expect(ttl).toBeLessThanOrEqual(86_400_000)
      expect(ttl).toBeGreaterThan(86_395_000)
      expect(yield* store.ttl(nextTraceId())).toEqual(Option.none())
    }))

  test("transition moves the state and updated_at, and keeps created_at and metadata", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      const t0 = yield* Clock.currentTimeMillis
      yield* store.create(id, "RECEIVED", { platform: "web" })
      yield* TestClock.adjust("5 seconds")
      yield* store.transition(id, "INFERRING")
      yield* store.transition(id, "WAITING_ON_TOOL")
      const record = yield* recordOf(id)
      expect(record.state).toBe("WAITING_ON_TOOL")
      expect(DateTime.toEpochMillis(record.created_at)).toBe(t0)
      expect(Option.map(record.updated_at, DateTime.toEpochMillis)).toEqual(Option.some(t0 + 5000))
      expect(record.fields).toEqual({ platform: "web" })
      expect(yield* store.isActive(id)).toBe(true)
    }))

  test("annotate: caller fields join an existing hash, never over the store's own; a gone trace is TraceNotFound", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const kit = yield* StoreKit
      const id = nextTraceId()
      yield* store.create(id, "RECEIVED", { platform: "web" })
      const before = yield* kit.readRaw(id)
      yield* TestClock.adjust("3 seconds")
      yield* store.annotate(id, { customer: "acme", platform: "api", empty: "" })
      expect(yield* kit.readRaw(id)).toEqual({ ...before, customer: "acme", platform: "api", empty: "" })
      yield* store.annotate(id, {})
      for (const name of TraceRecord.reservedFields) {
        const error = yield* Effect.flip(store.annotate(id, { ok: "no", [name]: "overwritten" }))
        expect(error, name).toMatchObject({ _tag: "InvalidTraceInput", field: name })
        expect(error.message).toContain(name)
      }
      expect(yield* kit.readRaw(id)).toEqual({ ...before, customer: "acme", platform: "api", empty: "" })
      expect((yield* Effect.flip(store.annotate(id, { bad: 1 } as never)))._tag).toBe("InvalidTraceInput")

      yield* store.finish(id, "COMPLETED")
      yield* store.annotate(id, { late: "yes" })
      const finished = yield* recordOf(id)
      expect(finished.state).toBe("COMPLETED")
      expect(finished.fields["late"]).toBe("yes")
      expect(yield* store.isActive(id)).toBe(false)

      const gone = nextTraceId()
      const missing = yield* Effect.flip(store.annotate(gone, { customer: "acme" }))
      expect(missing).toMatchObject({ _tag: "TraceNotFound", trace_id: gone })
      expect(yield* kit.readRaw(gone)).toBeUndefined()
      expect(yield* store.isActive(gone)).toBe(false)
    }))

  test("transition or finish of an unknown trace is TraceNotFound naming it", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      const error = yield* Effect.flip(store.transition(id, "INFERRING"))
      expect(error._tag).toBe("TraceNotFound")
      expect(error).toMatchObject({ trace_id: id })
      expect(error.message).toContain(id)
      expect((yield* Effect.flip(store.finish(id, "COMPLETED")))._tag).toBe("TraceNotFound")
      expect(yield* store.get(id)).toEqual(Option.none())
    }))

  test("finish: terminal state, fields, terminal TTL (1 hour), out of the active set", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      const t0 = yield* Clock.currentTimeMillis
      yield* store.create(id, "INFERRING", { platform: "web" })
      yield* TestClock.adjust("2 seconds")
      yield* store.finish(id, "ERRORED", { error: "model timed out" })
      const record = yield* recordOf(id)
      expect(record.state).toBe("ERRORED")
      expect(record.fields).toEqual({ platform: "web", error: "model timed out" })
      expect(Option.map(record.updated_at, DateTime.toEpochMillis)).toEqual(Option.some(t0 + 2000))
      const ttl = Duration.toMillis(Option.getOrThrow(yield* store.ttl(id)))
      expect(ttl).toBeLessThanOrEqual(3_600_000)
      expect(ttl).toBeGreaterThan(3_595_000)
      expect(yield* store.isActive(id)).toBe(false)
      expect(yield* store.activeCount).toBe(0)
    }))

  test("nothing moves a trace out of a terminal state", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "RECEIVED")
      yield* store.finish(id, "COMPLETED")
      const moved = yield* Effect.flip(store.transition(id, "INFERRING"))
      expect(moved._tag).toBe("TraceAlreadyTerminal")
      expect(moved).toMatchObject({ trace_id: id, state: "COMPLETED" })
      expect(moved.message).toContain(id)
      expect(moved.message).toContain("COMPLETED")
      const again = yield* Effect.flip(store.finish(id, "ERRORED", { error: "late" }))
      expect(again).toMatchObject({ _tag: "TraceAlreadyTerminal", state: "COMPLETED" })
      const record = yield* recordOf(id)
      expect(record.state).toBe("COMPLETED")
      expect(record.fields).toEqual({})
    }))

  test("transition to a terminal state is a finish: terminal TTL and out of the active set", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "EGRESS")
      yield* store.transition(id, "COMPLETED")
      expect((yield* recordOf(id)).state).toBe("COMPLETED")
      expect(yield* store.isActive(id)).toBe(false)
      expect(Duration.toMillis(Option.getOrThrow(yield* store.ttl(id)))).toBeLessThanOrEqual(3_600_000)
    }))

  test("metadata: reserved or empty names, non-string values are refused, naming the field; nothing is written", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      for (const field of ["state", "created_at", "updated_at"]) {
        const error = yield* Effect.flip(store.create(id, "RECEIVED", { ok: "1", [field]: "x" }))
        expect(error).toMatchObject({ _tag: "InvalidTraceInput", field })
        expect(error.message).toContain(field)
        expect(error.message).toContain("reserved")
      }
      const empty = yield* Effect.flip(store.create(id, "RECEIVED", { "": "x" }))
      expect(empty).toMatchObject({ _tag: "InvalidTraceInput", field: "" })
      expect(empty.message).toContain("non-empty")
      const notString = yield* Effect.flip(
        store.create(id, "RECEIVED", { count: 3 } as unknown as Record<string, string>)
      )
      expect(notString).toMatchObject({ _tag: "InvalidTraceInput", field: "count" })
      const notAMap = yield* Effect.flip(store.create(id, "RECEIVED", "x" as unknown as Record<string, string>))
      expect(notAMap).toMatchObject({ _tag: "InvalidTraceInput", field: "metadata" })
      expect(yield* store.get(id)).toEqual(Option.none())
      expect(yield* store.isActive(id)).toBe(false)
      yield* store.create(id, "RECEIVED")
      const finishing = yield* Effect.flip(store.finish(id, "COMPLETED", { updated_at: "0" }))
      expect(finishing).toMatchObject({ _tag: "InvalidTraceInput", field: "updated_at" })
      expect((yield* recordOf(id)).state).toBe("RECEIVED")
    }))

  test("states: any non-empty string is kept; empty and terminal initial states are refused", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      expect(yield* Effect.flip(store.create(id, ""))).toMatchObject({ _tag: "InvalidTraceInput", field: "state" })
      const terminal = yield* Effect.flip(store.create(id, "COMPLETED"))
      expect(terminal).toMatchObject({ _tag: "InvalidTraceInput", field: "state" })
      yield* store.create(id, "queued by Python")
      expect((yield* recordOf(id)).state).toBe("queued by Python")
      expect(yield* Effect.flip(store.transition(id, ""))).toMatchObject({ field: "state" })
      const notTerminal = yield* Effect.flip(store.finish(id, "EGRESS" as "COMPLETED"))
      expect(notTerminal).toMatchObject({ _tag: "InvalidTraceInput", field: "state" })
      expect((yield* recordOf(id)).state).toBe("queued by Python")
    }))

  test("reads a hash the Python service wrote: time.time() created_at, no updated_at, extra fields", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const kit = yield* StoreKit
      const [python, integer, iso, naiveIso] = [nextTraceId(), nextTraceId(), nextTraceId(), nextTraceId()]
      yield* kit.writeRaw(python, { state: "INFERRING", created_at: "1763870000.1234567", platform: "telegram" })
      yield* kit.writeRaw(integer, { state: "RECEIVED", created_at: "1763870000" })
      yield* kit.writeRaw(iso, { state: "EGRESS", created_at: "2025-11-23T04:33:20.250+00:00" })
      yield* kit.writeRaw(naiveIso, { state: "EGRESS", created_at: "2025-11-23 04:33:20.5" })
      const record = yield* recordOf(python)
      expect(record.state).toBe("INFERRING")
      expect(DateTime.toEpochMillis(record.created_at)).toBe(1_763_870_000_123)
      expect(record.updated_at).toEqual(Option.none())
      expect(record.fields).toEqual({ platform: "telegram" })
      expect(DateTime.toEpochMillis((yield* recordOf(integer)).created_at)).toBe(1_763_870_000_000)
      expect(DateTime.toEpochMillis((yield* recordOf(iso)).created_at)).toBe(1_763_872_400_250)
      expect(DateTime.toEpochMillis((yield* recordOf(naiveIso)).created_at)).toBe(1_763_872_400_500)
      yield* store.transition(python, "EGRESS")
      yield* store.finish(python, "COMPLETED")
      const finished = yield* recordOf(python)
      expect(finished.state).toBe("COMPLETED")
      expect(Option.isSome(finished.updated_at)).toBe(true)
      expect(finished.fields).toEqual({ platform: "telegram" })
      expect(yield* store.isActive(python)).toBe(false)
    }))

  test("get of a hash whose created_at is unreadable is InvalidTraceRecord naming the field", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const kit = yield* StoreKit
      const id = nextTraceId()
      yield* kit.writeRaw(id, { state: "INFERRING", created_at: "yesterday" })
      const error = yield* Effect.flip(store.get(id))
      expect(error).toMatchObject({ _tag: "InvalidTraceRecord", trace_id: id, field: "created_at" })
      expect(error.message).toContain("yesterday")
      const noState = nextTraceId()
      yield* kit.writeRaw(noState, { created_at: "1763870000" })
      expect(yield* Effect.flip(store.get(noState))).toMatchObject({ field: "state" })
    }))

  test("100 concurrent transitions and one finish: the trace ends terminal, and stays so", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "RECEIVED")
      const transitions = Array.from({ length: 100 }, (_, i) => Effect.exit(store.transition(id, `STEP_${i}`)))
      const finish = Effect.exit(Effect.asVoid(store.finish(id, "COMPLETED")))
      const exits = yield* Effect.all([...transitions.slice(0, 50), finish, ...transitions.slice(50)], {
        concurrency: "unbounded"
      })
      expect(Exit.isSuccess(exits[50]!)).toBe(true)
      for (const exit of exits) {
        if (Exit.isFailure(exit)) {
          const tag = Option.map(Cause.failureOption(exit.cause), (e) => e._tag)
          expect(tag).toEqual(Option.some("TraceAlreadyTerminal"))
        }
      }
      expect((yield* recordOf(id)).state).toBe("COMPLETED")
      expect(yield* store.isActive(id)).toBe(false)
    }))

  test("one trace, requests one after another: each is counted; a request after the end reopens it afresh", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      const t0 = yield* Clock.currentTimeMillis
      expect(yield* store.create(id, "RECEIVED", { platform: "web" })).toEqual({ opening: 1, kind: "new", in_flight: 1 })
      expect(yield* store.finish(id, "ERRORED", { error: "bad_request" }, { opening: 1 })).toEqual({
        ended: true,
        state: "ERRORED",
        in_flight: 0,
        duplicate: false
      })
      yield* TestClock.adjust("5 seconds")
      const second = yield* store.create(id, "RECEIVED")
      expect(second).toEqual({ opening: 2, kind: "reopened", in_flight: 1 })
      const reopened = yield* recordOf(id)
      expect(reopened.state).toBe("RECEIVED")
      expect(DateTime.toEpochMillis(reopened.created_at)).toBe(t0 + 5000)
      expect(reopened.fields).toEqual({ platform: "web" })
      expect({ requests: reopened.requests, in_flight: reopened.in_flight, opening: reopened.opening }).toEqual({
        requests: 2,
        in_flight: 1,
        opening: 2
      })
      expect(yield* store.isActive(id)).toBe(true)
      expect(Duration.toMillis(Option.getOrThrow(yield* store.ttl(id)))).toBeGreaterThan(86_395_000)
      yield* store.transition(id, "INFERRING", { opening: 2 })
      expect((yield* store.finish(id, "COMPLETED", undefined, { opening: 2 })).state).toBe("COMPLETED")
      const done = yield* recordOf(id)
      expect(done.state).toBe("COMPLETED")
      expect(done.requests).toBe(2)
      expect(yield* store.isActive(id)).toBe(false)
    }))

  test("one trace, requests at once: in flight until the last ends, ERRORED if any of them errored", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      const a = yield* store.create(id, "RECEIVED")
      const b = yield* store.create(id, "RECEIVED")
      expect(b).toEqual({ opening: 1, kind: "joined", in_flight: 2 })
      yield* store.transition(id, "INFERRING", a)
      expect(yield* store.finish(id, "ERRORED", { error: "upstream_error" }, a)).toEqual({
        ended: false,
        state: undefined,
        in_flight: 1,
        duplicate: false
      })
      const meanwhile = yield* recordOf(id)
      expect(meanwhile.state).toBe("INFERRING")
      expect(meanwhile.in_flight).toBe(1)
      expect(yield* store.isActive(id)).toBe(true)
      expect(Duration.toMillis(Option.getOrThrow(yield* store.ttl(id)))).toBeGreaterThan(86_395_000)
      yield* store.transition(id, "EGRESS", b)
      expect(yield* store.finish(id, "COMPLETED", undefined, b)).toMatchObject({ ended: true, state: "ERRORED" })
      const done = yield* recordOf(id)
      expect(done.state).toBe("ERRORED")
      expect(done.fields).toEqual({ error: "upstream_error" })
      expect(done.requests).toBe(2)
      expect(yield* store.isActive(id)).toBe(false)
      expect(Duration.toMillis(Option.getOrThrow(yield* store.ttl(id)))).toBeLessThanOrEqual(3_600_000)

      const clean = nextTraceId()
      const c1 = yield* store.create(clean, "RECEIVED")
      const c2 = yield* store.create(clean, "RECEIVED")
      expect((yield* store.finish(clean, "COMPLETED", undefined, c2)).ended).toBe(false)
      expect(yield* store.finish(clean, "COMPLETED", undefined, c1)).toMatchObject({ ended: true, state: "COMPLETED" })
    }))

  test("a request's token makes create and finish count once, however often they are sent", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const kit = yield* StoreKit
      const id = nextTraceId()
      const a = yield* store.create(id, "RECEIVED", undefined, { request: "req-a" })
      // Sent again, as a replay after a reply lost to a timeout: nothing more.
      expect(yield* store.create(id, "RECEIVED", undefined, { request: "req-a" })).toEqual({
        opening: 1,
        kind: "duplicate",
        in_flight: 1
      })
      const b = yield* store.create(id, "RECEIVED", undefined, { request: "req-b" })
      expect(b).toMatchObject({ kind: "joined", in_flight: 2 })
      expect((yield* recordOf(id)).requests).toBe(2)
      expect(Object.keys((yield* recordOf(id)).fields)).toEqual([])
      expect((yield* store.finish(id, "COMPLETED", undefined, { ...a, request: "req-a" })).in_flight).toBe(1)
      expect(yield* store.finish(id, "COMPLETED", undefined, { ...a, request: "req-a" })).toMatchObject({
        duplicate: true,
        ended: false
      })
      expect((yield* recordOf(id)).in_flight).toBe(1)
      expect(yield* store.finish(id, "COMPLETED", undefined, { ...b, request: "req-b" })).toMatchObject({ ended: true })
      const raw = yield* kit.readRaw(id)
      const tokens = Object.entries(raw ?? {}).filter(([field]) => field.startsWith("req:"))
      expect(tokens.map(([, value]) => value)).toEqual(["done", "done"])
      // The late copy of a create whose request has finished (resent after a reconnect, say) does not reopen it.
      expect(yield* store.create(id, "RECEIVED", undefined, { request: "req-a" })).toMatchObject({ kind: "duplicate" })
      expect(yield* recordOf(id)).toMatchObject({ state: "COMPLETED", requests: 2, in_flight: 0 })
      expect(yield* store.isActive(id)).toBe(false)
      // A new request after the end reopens it, and forgets the finished ones.
      expect(yield* store.create(id, "RECEIVED", undefined, { request: "req-c" })).toMatchObject({ kind: "reopened" })
      const reopened = Object.keys((yield* kit.readRaw(id)) ?? {}).filter((field) => field.startsWith("req:"))
      expect(reopened).toEqual(["req:req-c"])
      // A finish whose create never landed writes nothing either.
      const other = nextTraceId()
      yield* store.create(other, "RECEIVED", undefined, { request: "kept" })
      expect(yield* store.finish(other, "COMPLETED", undefined, { request: "never-created" })).toMatchObject({
        duplicate: true
      })
      expect(yield* store.isActive(other)).toBe(true)
      const bad = yield* Effect.flip(store.create(other, "RECEIVED", undefined, { request: "no spaces" }))
      expect(bad).toMatchObject({ _tag: "InvalidTraceInput", field: "request" })
      const reserved = yield* Effect.flip(store.create(other, "RECEIVED", { "req:x": "1" }))
      expect(reserved).toMatchObject({ _tag: "InvalidTraceInput", field: "req:x" })
    }))

  test("an orphaned trace forgets its requests in flight: a late finish of one of them writes nothing", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const kit = yield* StoreKit
      const id = nextTraceId()
      const opening = yield* store.create(id, "RECEIVED", undefined, { request: "dead-worker" })
      yield* TestClock.adjust("31 minutes")
      expect((yield* store.sweepOrphans()).orphaned).toBe(1)
      expect(Object.keys((yield* kit.readRaw(id)) ?? {}).filter((f) => f.startsWith("req:"))).toEqual([])
      const late = yield* Effect.flip(store.finish(id, "COMPLETED", undefined, { ...opening, request: "dead-worker" }))
      expect(late._tag).toBe("TraceAlreadyTerminal")
      expect((yield* recordOf(id)).state).toBe("ERRORED")
    }))

  test("a late write of an earlier opening is refused, and changes nothing", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      const first = yield* store.create(id, "RECEIVED")
      yield* store.finish(id, "COMPLETED", undefined, first)
      const second = yield* store.create(id, "RECEIVED", { attempt: "2" })
      const before = yield* recordOf(id)
      const moved = yield* Effect.flip(store.transition(id, "EGRESS", first))
      expect(moved).toMatchObject({ _tag: "StaleTraceWrite", trace_id: id, opening: 1, current: "2" })
      expect(moved.message).toContain(id)
      const ended = yield* Effect.flip(store.finish(id, "ERRORED", { error: "late" }, first))
      expect(ended).toMatchObject({ _tag: "StaleTraceWrite", opening: 1 })
      expect(yield* recordOf(id)).toEqual(before)
      expect(yield* store.isActive(id)).toBe(true)
      expect((yield* store.finish(id, "COMPLETED", undefined, second)).state).toBe("COMPLETED")
      const bad = yield* Effect.flip(store.transition(id, "EGRESS", { opening: 0 }))
      expect(bad).toMatchObject({ _tag: "InvalidTraceInput", field: "opening" })
    }))

  test("50 requests of one trace at once: it ends exactly once, terminal, with every request counted", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 50 }, (_, i) => i),
        (i) =>
          Effect.flatMap(store.create(id, "RECEIVED"), (opening) =>
            Effect.zipRight(
              store.transition(id, "INFERRING", opening),
              store.finish(id, i === 17 ? "ERRORED" : "COMPLETED", undefined, opening)
            )),
        { concurrency: "unbounded" }
      )
      const ended = outcomes.filter((outcome) => outcome.ended)
      const record = yield* recordOf(id)
      // Interleavings may end the trace early (all in flight finished) and reopen it; every opening ends once.
      expect(ended.length).toBe(record.opening)
      expect(record.requests).toBe(50)
      expect(["COMPLETED", "ERRORED"]).toContain(record.state)
      expect(record.in_flight).toBe(0)
      expect(yield* store.isActive(id)).toBe(false)
    }))

  test("a trace the Python service created: a request of sg joins it; the Python worker's COMPLETED still ends it", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const kit = yield* StoreKit
      const id = nextTraceId()
      yield* kit.writeRaw(id, { state: "INFERRING", created_at: "1763870000.5" })
      const joined = yield* store.create(id, "RECEIVED")
      expect(joined).toEqual({ opening: 1, kind: "joined", in_flight: 2 })
      expect((yield* store.finish(id, "COMPLETED", undefined, joined)).ended).toBe(false)
      expect(yield* store.isActive(id)).toBe(true)
      // What the Python worker does when its request ends: HSET state.
      yield* kit.writeRaw(id, { state: "COMPLETED" })
      expect((yield* recordOf(id)).state).toBe("COMPLETED")
      const report = yield* store.sweepOrphans()
      expect(report.removed_terminal).toBe(1)
      expect(yield* store.isActive(id)).toBe(false)
    }))

  test("sweep: a trace whose last write is recent is not an orphan, whenever it was created", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "RECEIVED")
      yield* TestClock.adjust("25 minutes")
      yield* store.create(id, "RECEIVED")
      yield* TestClock.adjust("10 minutes")
      expect((yield* store.sweepOrphans()).orphaned).toBe(0)
      yield* TestClock.adjust("21 minutes")
      expect((yield* store.sweepOrphans()).orphaned).toBe(1)
      expect((yield* recordOf(id)).in_flight).toBe(0)
    }))

  test("sweep: removes ids whose hash is gone, retires orphans, leaves the young, the done and the unreadable", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const kit = yield* StoreKit
      yield* TestClock.setTime(pythonNow)
      const young = nextTraceId()
      const orphan = nextTraceId()
      const done = nextTraceId()
      const gone = nextTraceId()
      const unreadable = nextTraceId()
      const pythonOrphan = nextTraceId()
      const terminalButListed = nextTraceId()
      yield* store.create(orphan, "INFERRING", { platform: "web" })
      yield* store.create(done, "INFERRING")
      yield* store.create(gone, "RECEIVED")
      yield* kit.dropHash(gone)
      yield* kit.writeRaw(unreadable, { state: "INFERRING", created_at: "not a time" })
      yield* kit.writeRaw(pythonOrphan, { state: "EGRESS", created_at: "1763869999.9876543" })
      yield* kit.writeRaw(terminalButListed, { state: "COMPLETED", created_at: "1763869000.000" })
      yield* TestClock.adjust("20 minutes")
      yield* store.create(young, "RECEIVED")
      yield* store.finish(done, "COMPLETED")
      yield* TestClock.adjust("11 minutes")

      const [report, logs] = yield* withLogs(store.sweepOrphans())
      expect(report).toEqual({
        scanned: 6,
        removed_missing: 1,
        removed_terminal: 1,
        orphaned: 2,
        skipped_unreadable: 1,
        duration_ms: 0
      })
      const swept = yield* recordOf(orphan)
      expect(swept.state).toBe("ERRORED")
      expect(swept.fields).toEqual({ platform: "web", error: "orphaned" })
      expect(Option.map(swept.updated_at, DateTime.toEpochMillis)).toEqual(Option.some(pythonNow + minutes(31)))
      expect(Duration.toMillis(Option.getOrThrow(yield* store.ttl(orphan)))).toBeLessThanOrEqual(3_600_000)
      expect(Duration.toMillis(Option.getOrThrow(yield* store.ttl(orphan)))).toBeGreaterThan(3_595_000)
      expect((yield* recordOf(pythonOrphan)).fields).toEqual({ error: "orphaned" })
      expect(yield* store.isActive(orphan)).toBe(false)
      expect(yield* store.isActive(pythonOrphan)).toBe(false)
      expect(yield* store.isActive(gone)).toBe(false)
      expect((yield* recordOf(young)).state).toBe("RECEIVED")
      expect(yield* store.isActive(young)).toBe(true)
      expect((yield* recordOf(done)).state).toBe("COMPLETED")
      expect(yield* kit.readRaw(unreadable)).toEqual({ state: "INFERRING", created_at: "not a time" })
      expect(yield* store.isActive(unreadable)).toBe(true)
      expect(yield* store.isActive(terminalButListed)).toBe(false)
      expect(yield* kit.readRaw(terminalButListed)).toEqual({ state: "COMPLETED", created_at: "1763869000.000" })
      expect(yield* store.activeCount).toBe(2)

      const warnings = logs.filter((line) => line.message === "trace_orphaned")
      expect(warnings.map((line) => line.level)).toEqual(["WARN", "WARN"])
      expect(warnings.map((line) => line.annotations["trace_id"]).sort()).toEqual([orphan, pythonOrphan].sort())
      const ages = Object.fromEntries(warnings.map((l) => [l.annotations["trace_id"], l.annotations["age_seconds"]]))
      expect(ages[orphan]).toBe(31 * 60)
      expect(ages[pythonOrphan]).toBeCloseTo(31 * 60 + 0.013, 3)

      const again = yield* store.sweepOrphans()
      expect(again).toMatchObject({
        scanned: 2,
        removed_missing: 0,
        removed_terminal: 0,
        orphaned: 0,
        skipped_unreadable: 1
      })
    }))

  test("sweep: the threshold is exclusive, and can be set per sweep", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "INFERRING")
      yield* TestClock.adjust("30 minutes")
      expect((yield* store.sweepOrphans()).orphaned).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect((yield* store.sweepOrphans({ threshold: "1 hour" })).orphaned).toBe(0)
      expect((yield* store.sweepOrphans()).orphaned).toBe(1)
    }))

  test("sweep: walks a large active set in batches", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const ids = Array.from({ length: 1200 }, () => nextTraceId())
      yield* Effect.forEach(ids, (id) => store.create(id, "INFERRING"), { concurrency: 32, discard: true })
      yield* TestClock.adjust("31 minutes")
      const report = yield* store.sweepOrphans({ batchSize: 100 })
      expect(report.orphaned).toBe(1200)
      expect(report.scanned).toBeGreaterThanOrEqual(1200)
      expect(yield* store.activeCount).toBe(0)
    }))

  test("sweep: a trace that completes between the batch read and the decision stays COMPLETED", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const racer = nextTraceId()
      const other = nextTraceId()
      yield* store.create(racer, "EGRESS")
      yield* store.create(other, "EGRESS")
      yield* TestClock.adjust("31 minutes")
      // On a cluster the two may sit in different shards, read in different batches: the racer finishes after the
      // read of its own.
      let raced = 0
      const hooks = SweepHooks.of({
        afterRead: (ids) =>
          ids.includes(racer)
            ? Effect.orDie(Effect.zipRight(Effect.sync(() => raced++), store.finish(racer, "COMPLETED", { output: "done" })))
            : Effect.void
      })
      const report = yield* store.sweepOrphans().pipe(Effect.provideService(SweepHooks, hooks))
      expect(raced).toBe(1)
      expect(report).toMatchObject({ scanned: 2, orphaned: 1, removed_missing: 0 })
      const record = yield* recordOf(racer)
      expect(record.state).toBe("COMPLETED")
      expect(record.fields).toEqual({ output: "done" })
      expect((yield* recordOf(other)).state).toBe("ERRORED")
    }))

  test("sweep: a trace re-created between the read and the decision is left alone", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const id = nextTraceId()
      yield* store.create(id, "EGRESS")
      yield* TestClock.adjust("31 minutes")
      const hooks = SweepHooks.of({ afterRead: () => Effect.orDie(store.create(id, "RECEIVED")) })
      const report = yield* store.sweepOrphans().pipe(Effect.provideService(SweepHooks, hooks))
      expect(report.orphaned).toBe(0)
      expect((yield* recordOf(id)).state).toBe("RECEIVED")
    }))

  test("sweep: duration_ms is measured with Clock", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      yield* store.create(nextTraceId(), "RECEIVED")
      const hooks = SweepHooks.of({ afterRead: () => TestClock.adjust("1500 millis") })
      const report = yield* store.sweepOrphans().pipe(Effect.provideService(SweepHooks, hooks))
      expect(report.duration_ms).toBe(1500)
    }))

  test("sweep: fenced by a held lease it writes; with the lease lost it writes nothing and fails with LeaseLost", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      const kit = yield* StoreKit
      const first = nextTraceId()
      const second = nextTraceId()
      yield* store.create(first, "INFERRING")
      yield* TestClock.adjust("31 minutes")
      const { lease, revoke } = yield* kit.grantLease("trace-watchdog")
      expect((yield* store.sweepOrphans({ fence: lease })).orphaned).toBe(1)

      yield* store.create(second, "INFERRING")
      yield* TestClock.adjust("31 minutes")
      yield* revoke
      const error = yield* Effect.flip(store.sweepOrphans({ fence: lease }))
      expect(error).toMatchObject({ _tag: "LeaseLost", lease: "trace-watchdog", epoch: lease.epoch })
      expect(error.message).toContain("trace-watchdog")
      expect((yield* recordOf(second)).state).toBe("INFERRING")
      expect(yield* store.isActive(second)).toBe(true)

      const fromContext = yield* Effect.flip(store.sweepOrphans().pipe(Effect.provideService(Lease.Lease, lease)))
      expect(fromContext._tag).toBe("LeaseLost")
      expect((yield* recordOf(second)).state).toBe("INFERRING")
      expect((yield* store.sweepOrphans()).orphaned).toBe(1)
    }))

  test("sweep: a bad batch size is refused, naming the option", () =>
    Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      for (const batchSize of [0, -1, 1.5]) {
        expect(yield* Effect.flip(store.sweepOrphans({ batchSize }))).toMatchObject({
          _tag: "InvalidTraceInput",
          field: "batchSize"
        })
      }
    }))
}
