import { describe, expect, it } from "@effect/vitest"
import { ExecutionSpan, Recorder } from "@sg/trace"
import { Clock, Deferred, Effect, Exit, Fiber, Metric, TestClock } from "effect"
import { inTrace, makeCapture, traceIdOf } from "./utils/execRecording.js"

const droppedCount = (reason: Recorder.DropReason) =>
  Effect.map(Metric.value(Metric.tagged(Recorder.recordsDropped, "reason", reason)), (state) => state.count)

const settle = Effect.repeatN(Effect.yieldNow(), 20)

/** A small run: one agent run with `tools` tool calls. */
const run = (n: number, tools = 2) =>
  Effect.forEach(
    Array.from({ length: tools }, (_, i) => i),
    (i) => Effect.void.pipe(ExecutionSpan.tool("t", { callId: `c${i}` })),
    { discard: true }
  ).pipe(ExecutionSpan.agentRun({ agentId: "a" }), inTrace(traceIdOf(n)))

describe("Recorder bounds", () => {
  it.effect("past maxBufferedSpans in all, new traces are not recorded and buffered ones count further spans dropped", () =>
    Effect.gen(function*() {
      const before = yield* droppedCount("too_many_spans")
      const gate = yield* Deferred.make<void>()
      const capture = makeCapture()
      yield* Effect.gen(function*() {
        const recorder = yield* Recorder.Recorder
        const first = yield* Effect.fork(
          Effect.forEach(
            Array.from({ length: 15 }, (_, i) => i),
            (i) => Effect.void.pipe(ExecutionSpan.tool("t", { callId: `c${i}` })),
            { discard: true }
          ).pipe(Effect.zipRight(Deferred.await(gate)), ExecutionSpan.agentRun({ agentId: "a" }), inTrace(traceIdOf(1)))
        )
        yield* settle
        expect(yield* recorder.stats).toMatchObject({ openTraces: 1, bufferedSpans: 10 })
        yield* run(2)
        expect((yield* droppedCount("too_many_spans")) - before).toBe(1)
        expect((yield* recorder.stats).openTraces).toBe(1)
        yield* Deferred.succeed(gate, void 0)
        yield* Fiber.join(first)
        yield* recorder.flush
        expect(yield* recorder.stats).toMatchObject({ openTraces: 0, queued: 0, bufferedSpans: 0 })
        yield* run(3)
        yield* recorder.flush
        expect((yield* recorder.stats).bufferedSpans).toBe(0)
      }).pipe(
        Effect.provide(Recorder.layer({ save: capture.save, sampleSuccess: 1, grace: "0 millis", maxBufferedSpans: 10 }))
      )
      expect(capture.records.map((r) => r.trace_id)).toEqual([traceIdOf(1), traceIdOf(3)])
      expect(capture.records[0]!.runs[0]!.tool_calls.map((c) => c.call_id)).toEqual(
        Array.from({ length: 10 }, (_, i) => `c${i}`)
      )
      expect(capture.records[0]!.dropped).toMatchObject({ spans: 5 })
      expect(capture.records[1]!.runs[0]!.tool_calls).toHaveLength(2)
      expect(capture.records[1]!.dropped).toBeUndefined()
      expect((yield* droppedCount("too_many_spans")) - before).toBe(1)
    }))

  it.effect("a trace whose root never ends is dropped maxOpenAge after it opened, as later traces open, counted", () =>
    Effect.gen(function*() {
      const before = yield* droppedCount("open_too_long")
      const capture = makeCapture()
      yield* Effect.gen(function*() {
        const recorder = yield* Recorder.Recorder
        // A root span started and never ended (a leak), with one child that did end.
        const leaked = yield* inTrace(traceIdOf(1))(Effect.makeSpan("leaked"))
        yield* Effect.void.pipe(ExecutionSpan.tool("t"), Effect.withParentSpan(leaked))
        expect(yield* recorder.stats).toMatchObject({ openTraces: 1, bufferedSpans: 1 })

        yield* TestClock.adjust("29 minutes")
        yield* run(2)
        yield* recorder.flush
        expect(yield* recorder.stats).toMatchObject({ openTraces: 1, bufferedSpans: 1 })

        yield* TestClock.adjust("1 minute")
        yield* run(3)
        yield* recorder.flush
        expect(yield* recorder.stats).toMatchObject({ openTraces: 0, bufferedSpans: 0 })
        expect((yield* droppedCount("open_too_long")) - before).toBe(1)

        // Its late end changes nothing: the trace was given up on.
        leaked.end(yield* Clock.currentTimeNanos, Exit.void)
        yield* recorder.flush
        expect(yield* recorder.stats).toMatchObject({ openTraces: 0, queued: 0, bufferedSpans: 0 })
      }).pipe(Effect.provide(Recorder.layer({ save: capture.save, sampleSuccess: 1, grace: "0 millis" })))
      expect(capture.records.map((r) => r.trace_id)).toEqual([traceIdOf(2), traceIdOf(3)])
      expect((yield* droppedCount("open_too_long")) - before).toBe(1)
    }))

  it.effect("maxOpenAge is an option; a trace that ends in time is recorded as ever", () =>
    Effect.gen(function*() {
      const before = yield* droppedCount("open_too_long")
      const gate = yield* Deferred.make<void>()
      const capture = makeCapture()
      yield* Effect.gen(function*() {
        const recorder = yield* Recorder.Recorder
        const slow = yield* Effect.fork(
          Deferred.await(gate).pipe(ExecutionSpan.tool("wait"), ExecutionSpan.agentRun({ agentId: "a" }), inTrace(traceIdOf(1)))
        )
        yield* settle
        yield* TestClock.adjust("59 seconds")
        yield* run(2)
        yield* Deferred.succeed(gate, void 0)
        yield* Fiber.join(slow)
        yield* recorder.flush
        const leaked = yield* inTrace(traceIdOf(3))(Effect.makeSpan("leaked"))
        yield* TestClock.adjust("1 minute")
        yield* run(4)
        yield* recorder.flush
        expect(yield* recorder.stats).toMatchObject({ openTraces: 0, bufferedSpans: 0 })
        leaked.end(yield* Clock.currentTimeNanos, Exit.void)
      }).pipe(
        Effect.provide(Recorder.layer({ save: capture.save, sampleSuccess: 1, grace: "0 millis", maxOpenAge: "1 minute" }))
      )
      expect(capture.records.map((r) => r.trace_id).sort()).toEqual([traceIdOf(1), traceIdOf(2), traceIdOf(4)].sort())
      expect((yield* droppedCount("open_too_long")) - before).toBe(1)
    }))
})
