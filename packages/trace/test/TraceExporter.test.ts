import { describe, expect, it } from "@effect/vitest"
import { ExecutionSpan, Recorder, Sampling, TraceExporter, TraceId } from "@sg/trace"
import { Effect, Layer, Option } from "effect"
import { inTrace, makeCapture } from "./utils/execRecording.js"

const idOf = (i: number): TraceId.TraceId =>
  Option.getOrThrow(TraceId.parse(`0190a1b2-c3d4-7e5f-8a6b-${(0xabc000000000 + i).toString(16).padStart(12, "0")}`))

/** A hook that keeps what it is offered. */
const makeHook = (sampleSuccess: number) => {
  const offered: Array<TraceExporter.EndedTrace> = []
  const service: TraceExporter.Service = { sampleSuccess, offer: (trace) => void offered.push(trace) }
  return { offered, layer: Layer.succeed(TraceExporter.TraceExporter, service) }
}

/** 200 traces (one in four failing), recorded at `recordRate` with a hook at `exportRate`. */
const run = (recordRate: number, exportRate: number) =>
  Effect.gen(function*() {
    const capture = makeCapture()
    const hook = makeHook(exportRate)
    yield* Effect.gen(function*() {
      for (let i = 0; i < 200; i++) {
        const work = i % 4 === 0 ? Effect.fail("broke") : Effect.succeed(i)
        yield* work.pipe(ExecutionSpan.tool("t"), ExecutionSpan.agentRun({ agentId: "a" }), inTrace(idOf(i)))
          .pipe(Effect.exit)
      }
      yield* (yield* Recorder.Recorder).flush
    }).pipe(
      Effect.provide(Recorder.layer({ save: capture.save, sampleSuccess: recordRate }).pipe(Layer.provide(hook.layer)))
    )
    return { records: capture.records, offered: hook.offered }
  })

describe("TraceExporter: the recorder's export hook", () => {
  it.effect("at the records' rate, a trace is offered exactly when its record is kept, with its status and spans", () =>
    Effect.gen(function*() {
      const { offered, records } = yield* run(0.3, 0.3)
      expect(offered.map((t) => t.traceId).sort()).toEqual(records.map((r) => r.trace_id).sort())
      const expected = Array.from({ length: 200 }, (_, i) => i).filter((i) =>
        Sampling.keep(idOf(i), i % 4 === 0 ? "error" : "success", 0.3)
      )
      expect(offered.length).toBe(expected.length)
      for (const trace of offered) {
        expect(trace.late).toBe(false)
        expect(trace.spans.map((s) => s.name).sort()).toEqual(["execute_tool t", "invoke_agent a"])
        expect(trace.status).toBe(records.find((r) => r.trace_id === trace.traceId)!.status)
      }
    }))

  it.effect("its own rate: every trace exported while records keep their share, and the reverse", () =>
    Effect.gen(function*() {
      const all = yield* run(0.3, 1)
      expect(all.offered).toHaveLength(200)
      expect(all.records.length).toBeLessThan(200)
      const none = yield* run(1, 0)
      expect(none.records).toHaveLength(200)
      expect(none.offered.map((t) => t.status)).toEqual(Array.from({ length: 50 }, () => "error"))
    }))

  it.effect("records: false builds and saves no record; the hook still gets its traces", () =>
    Effect.gen(function*() {
      const capture = makeCapture()
      const hook = makeHook(1)
      yield* Effect.gen(function*() {
        yield* Effect.succeed(1).pipe(ExecutionSpan.agentRun({ agentId: "a" }), inTrace(idOf(1)))
        yield* (yield* Recorder.Recorder).flush
      }).pipe(Effect.provide(Recorder.layer({ save: capture.save, records: false }).pipe(Layer.provide(hook.layer))))
      expect(capture.records).toEqual([])
      expect(hook.offered.map((t) => t.traceId)).toEqual([idOf(1)])
    }))
})
