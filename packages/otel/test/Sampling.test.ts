import { describe, expect, it } from "@effect/vitest"
import * as OtlpTestReceiver from "@sg/otel/OtlpTestReceiver"
import { ExecutionSpan, Sampling, TraceId } from "@sg/trace"
import { Cause, Effect, Option } from "effect"
import { asRequest, exportedTo } from "./utils/exported.js"

const total = 1000

const idOf = (i: number): TraceId.TraceId =>
  Option.getOrThrow(TraceId.parse(`0190a1b2-c3d4-7e5f-8a6b-${(0x5eed00000000 + i).toString(16).padStart(12, "0")}`))

/** Trace i: an agent run with a tool call, under a request; every fifth fails, every seventh times out. */
const traceOf = (i: number) => {
  const work = i % 5 === 0
    ? Effect.fail({ _tag: "ToolBroke", message: `trace ${i} broke` })
    : i % 7 === 0
    ? Effect.failCause(Cause.fail(new Cause.TimeoutException(`trace ${i} took too long`)))
    : Effect.succeed(i)
  return work.pipe(
    ExecutionSpan.tool("lookup", { input: i }),
    ExecutionSpan.agentRun({ agentId: "sampler" }),
    asRequest(idOf(i)),
    Effect.exit
  )
}

const statusOf = (i: number) => (i % 5 === 0 ? "error" : i % 7 === 0 ? "timeout" : "success")

const run = (recordRate: number, exportRate: number) =>
  Effect.gen(function*() {
    const receiver = yield* OtlpTestReceiver.make
    const program = Effect.forEach(Array.from({ length: total }, (_, i) => i), traceOf, { discard: true })
    const { errors, records, spans } = yield* exportedTo(receiver, program, {
      recorder: { sampleSuccess: recordRate },
      otel: { sampleSuccess: exportRate, maxQueueSize: 100_000 }
    })
    expect(errors).toEqual([])
    const exported = new Set(spans.map((span) => span.traceId))
    const kept = new Set(records.map((record) => TraceId.toHex(record.trace_id)))
    return { exported, kept, spans, records }
  })

describe("export sampling is the records' sampling", () => {
  it.scopedLive(`over ${total} traces, a trace is exported exactly when its record is kept`, () =>
    Effect.gen(function*() {
      const { exported, kept, records, spans } = yield* run(0.3, 0.3)
      expect([...exported].sort()).toEqual([...kept].sort())
      // Every error and timeout, and a share of the successes near the rate, decided by the id's hash alone.
      const expected = Array.from({ length: total }, (_, i) => i).filter((i) =>
        Sampling.keep(idOf(i), statusOf(i), 0.3)
      )
      expect(records.length).toBe(expected.length)
      const failures = Array.from({ length: total }, (_, i) => i).filter((i) => statusOf(i) !== "success").length
      const successes = expected.length - failures
      expect(successes / (total - failures)).toBeGreaterThan(0.2)
      expect(successes / (total - failures)).toBeLessThan(0.4)
      // Each exported trace arrives whole (server span, run, tool call), its root saying why it was kept.
      expect(spans.length).toBe(3 * expected.length)
      const reasons = spans.filter((s) => s.parentSpanId === undefined).map((s) => s.attributes["sg.sampling.reason"])
      expect(new Set(reasons)).toEqual(new Set(["sampled", "error", "timeout"]))
    }), { timeout: 120_000 })

  it.scopedLive("SG_OTEL_SAMPLE_SUCCESS overrides the rate for export alone", () =>
    Effect.gen(function*() {
      const all = yield* run(0.3, 1)
      expect(all.exported.size).toBe(total)
      expect(all.kept.size).toBeLessThan(total)
      for (const id of all.kept) expect(all.exported.has(id)).toBe(true)

      const none = yield* run(1, 0)
      expect(none.kept.size).toBe(total)
      const failures = Array.from({ length: total }, (_, i) => i).filter((i) => statusOf(i) !== "success")
      expect([...none.exported].sort()).toEqual(failures.map((i) => TraceId.toHex(idOf(i))).sort())
    }), { timeout: 120_000 })
})
