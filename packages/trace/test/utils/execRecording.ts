/**
 * Helpers for recorder tests: run a program under a recorder whose sink keeps what it is given, or under the bare
 * recording tracer to get the spans reduction sees.
 */
import { ExecutionRecord, Recorder, TraceId } from "@sg/trace"
import { Effect, Option, Tracer } from "effect"
import * as ExecTracer from "../../src/internal/execTracer.js"
import type { SpanData } from "../../src/internal/reduce.js"

/** A sink that keeps every record it is given, in order. */
export const makeCapture = () => {
  const records: Array<ExecutionRecord.ExecutionRecord> = []
  return {
    records,
    save: (record: ExecutionRecord.ExecutionRecord) => Effect.sync(() => void records.push(record))
  }
}

/** Runs `program` under a recorder (every success kept unless said otherwise), flushes, and returns the records. */
export const recordOf = <A, E>(
  program: Effect.Effect<A, E>,
  options?: Partial<Recorder.Options>
): Effect.Effect<ReadonlyArray<ExecutionRecord.ExecutionRecord>> => {
  const capture = makeCapture()
  return Effect.gen(function*() {
    yield* Effect.exit(program)
    yield* Effect.flatMap(Recorder.Recorder, (recorder) => recorder.flush)
    return capture.records
  }).pipe(Effect.provide(Recorder.layer({ save: capture.save, sampleSuccess: 1, ...options })))
}

/** Runs `effect` as part of the trace `traceId` (its parent is a remote span of that trace, as after a traceparent). */
export const inTrace = (traceId: TraceId.TraceId) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.withParentSpan(effect, Tracer.externalSpan({ traceId: TraceId.toHex(traceId), spanId: "00f067aa0ba902b7" }))

/** Runs `program` under the recording tracer alone and returns the ended spans of its trace(s). */
export const spansOf = <A, E>(program: Effect.Effect<A, E>): Effect.Effect<ReadonlyArray<SpanData>> =>
  Effect.gen(function*() {
    const buffers = new Map<string, ExecTracer.TraceBuffer>()
    const inner = yield* Effect.tracer
    const tracer = ExecTracer.make(inner, {
      maxSpansPerTrace: 100_000,
      budget: { buffered: 0, max: Infinity },
      rootBuffer: (traceId) => {
        let buffer = buffers.get(traceId)
        if (buffer === undefined) {
          buffer = ExecTracer.makeBuffer(traceId)
          buffers.set(traceId, buffer)
        }
        return buffer
      },
      schedule: () => undefined
    })
    yield* Effect.exit(Effect.withTracer(program, tracer))
    return Array.from(buffers.values()).flatMap((buffer) => buffer.spans)
  })

/** The trace id every recording test uses unless it needs several. */
export const traceId = Option.getOrThrow(TraceId.parse("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"))

/** The n-th of a series of distinct trace ids. */
export const traceIdOf = (n: number): TraceId.TraceId =>
  Option.getOrThrow(TraceId.parse(`0190a1b2-c3d4-7e5f-8a6b-${n.toString(16).padStart(12, "0")}`))
