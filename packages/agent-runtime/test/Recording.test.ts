import { describe, expect, it } from "@effect/vitest"
import { AgentRuntime, Demo } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { CurrentTrace, type ExecutionRecord, Recorder, TraceId } from "@sg/trace"
import { Effect, Layer, Option, TestClock } from "effect"
import { demoRuntime } from "./utils/scripted.js"

/** Runs `program` on the demo runtime under a recorder keeping every record, flushes, and returns what was saved. */
const recorded = <A, E>(
  program: Effect.Effect<A, E, AgentRuntime.AgentRuntime | CircuitBreaker.CircuitBreaker>,
  options?: Parameters<typeof demoRuntime>[0],
  runtime?: Parameters<typeof demoRuntime>[1]
) =>
  Effect.gen(function*() {
    const records: Array<ExecutionRecord.ExecutionRecord> = []
    const save = (record: ExecutionRecord.ExecutionRecord) => Effect.sync(() => void records.push(record))
    const recorder = Recorder.layer({ save, sampleSuccess: 1 })
    const exit = yield* Effect.gen(function*() {
      const exit = yield* Effect.exit(program)
      yield* Effect.flatMap(Recorder.Recorder, (r) => r.flush)
      return exit
    }).pipe(Effect.provide(Layer.merge(recorder, demoRuntime(options, runtime))))
    return { exit, records }
  })

const run = (input: string) => Effect.flatMap(AgentRuntime.AgentRuntime, (runtime) => runtime.run({ input }))

const assistantInstructions = Demo.assistant.instructions
const researcherInstructions = Demo.researcher.instructions

describe("execution records of demo runs", () => {
  it.effect("fan_out of 3: four runs, the children naming their parent, tools, model calls and tokens", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2025, 10, 23, 3, 53, 20))
      const { exit, records } = yield* recorded(
        run("research circuit breakers with 3 researchers")
      )
      expect(exit._tag).toBe("Success")
      if (exit._tag !== "Success") return
      const result = exit.value
      expect(records).toHaveLength(1)
      const record = records[0]!
      expect(record).toMatchObject({ trace_id: result.trace_id, status: "success" })
      expect(record.runs).toHaveLength(4)
      const [root, ...children] = record.runs
      expect(root).toMatchObject({ run_id: result.run_id, agent_id: "assistant", status: "success", steps: 2 })
      expect(root!.parent_run_id).toBeUndefined()

      // The root's calls: two model calls (the fan_out request, then the summary) and one tool call.
      const callText = JSON.stringify([{ name: "fan_out", params: { topic: "circuit breakers", count: 3 } }])
      const firstRead = `${assistantInstructions}\nresearch circuit breakers with 3 researchers`
      expect(root!.inference_calls).toHaveLength(2)
      expect(root!.inference_calls[0]).toMatchObject({
        model: "demo",
        status: "success",
        input: "research circuit breakers with 3 researchers",
        tokens: { input: Demo.estimateTokens(firstRead), output: Demo.estimateTokens(callText) }
      })
      expect(root!.inference_calls[1]).toMatchObject({ model: "demo", status: "success", output: result.output })
      expect(root!.tool_calls).toEqual([expect.objectContaining({
        tool: "fan_out",
        status: "success",
        input: JSON.stringify({ topic: "circuit breakers", count: 3 })
      })])
      const toolCallId = root!.tool_calls[0]!.call_id
      expect(toolCallId).toMatch(/^id_/)
      expect(root!.tokens).toEqual({
        input: root!.inference_calls[0]!.tokens.input + root!.inference_calls[1]!.tokens.input,
        output: root!.inference_calls[0]!.tokens.output + root!.inference_calls[1]!.tokens.output
      })

      // Three researchers, each its own run naming the root, one model call each.
      const childIds = children.map((c) => c.run_id)
      expect(new Set([...childIds, root!.run_id]).size).toBe(4)
      children.forEach((child, i) => {
        const input = Demo.researchInput("circuit breakers", i + 1, 3)
        expect(child).toMatchObject({
          agent_id: "researcher",
          parent_run_id: root!.run_id,
          status: "success",
          steps: 1,
          tool_calls: [],
          tokens: { input: Demo.estimateTokens(`${researcherInstructions}\n${input}`) }
        })
        expect(child.inference_calls).toHaveLength(1)
      })

      // Their results are delivered to the root as events naming each child run.
      expect(root!.events.map((e) => e.child_run_id).sort()).toEqual([...childIds].sort())
      for (const event of root!.events) {
        expect(event).toMatchObject({ type: "child_result", agent_id: "researcher", status: "success" })
        expect(result.output).toContain(event.output!)
      }
    }))

  it.effect("a run under the request's trace (CurrentTrace) is recorded under that trace id", () =>
    Effect.gen(function*() {
      const id = Option.getOrThrow(TraceId.parse("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"))
      const { exit, records } = yield* recorded(run("hello").pipe(CurrentTrace.withTraceId(id)))
      expect(exit).toMatchObject({ _tag: "Success", value: { trace_id: id } })
      expect(records.map((r) => [r.trace_id, r.runs.length])).toEqual([[id, 1]])
    }))

  it.effect("a tool failure and a rejected tool are recorded on their calls; the run is a success", () =>
    Effect.gen(function*() {
      const { records } = yield* recorded(Effect.gen(function*() {
        yield* run("what is 1/0?")
        const breakers = yield* CircuitBreaker.CircuitBreaker
        yield* breakers.isolate("tool:clock")
        yield* run("what time is it?")
      }))
      expect(records).toHaveLength(2)
      const [division, rejected] = records
      expect(division!.status).toBe("success")
      expect(division!.runs[0]!.tool_calls).toEqual([expect.objectContaining({
        tool: "calculator",
        status: "error",
        input: JSON.stringify({ expression: "1/0" }),
        error: "tool failed: {\"error\":\"division by zero\"}"
      })])
      expect(rejected!.status).toBe("success")
      expect(rejected!.runs[0]!.tool_calls).toEqual([expect.objectContaining({
        tool: "clock",
        status: "error",
        circuit: "tool:clock"
      })])
    }))

  it.effect("a failing model and an open model breaker are errors of the run and the record", () =>
    Effect.gen(function*() {
      const { records } = yield* recorded(Effect.gen(function*() {
        for (let i = 0; i < 4; i++) yield* Effect.exit(run("fail: please"))
      }))
      expect(records).toHaveLength(4)
      expect(records[0]).toMatchObject({
        status: "error",
        error: "UpstreamError: model provider \"demo\" failed: DemoModel.generateText: the demo provider is " +
          "unavailable (the input asked it to fail)"
      })
      expect(records[0]!.runs[0]!.inference_calls[0]).toMatchObject({
        status: "error",
        provider: "demo",
        attempt: 1,
        error: "UpstreamError: model provider \"demo\" failed: DemoModel.generateText: the demo provider is " +
          "unavailable (the input asked it to fail)"
      })
      expect(records[3]).toMatchObject({ status: "error" })
      expect(records[3]!.error).toMatch(/^CircuitOpenError: /)
      expect(records[3]!.runs[0]!.inference_calls[0]).toMatchObject({ status: "error", circuit: "model:demo" })
    }))

  it.effect("a run tree past its time budget is recorded with its partial runs", () =>
    Effect.gen(function*() {
      const { exit, records } = yield* recorded(
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(run("research timeouts with 2 researchers"))
          yield* Effect.yieldNow()
          yield* TestClock.adjust("20 seconds")
          return yield* fiber
        }),
        { latency: "9 seconds" },
        { budgets: { runTimeout: "20 seconds" } }
      )
      expect(exit._tag).toBe("Failure")
      expect(records).toHaveLength(1)
      expect(records[0]!.status).toBe("error")
      expect(records[0]!.runs.map((r) => [r.agent_id, r.status])).toEqual([
        ["assistant", "error"],
        ["researcher", "success"],
        ["researcher", "success"]
      ])
      expect(records[0]!.runs[0]!.error).toBe(
        "BudgetExceeded: run budget exceeded: run_timeout (SG_RUN_TIMEOUT=20s): the run tree did not finish within 20s"
      )
      // The first model call answered at 9 s, the researchers at 18 s; the summary was cut off at 20 s.
      expect(records[0]!.runs[0]!.inference_calls.map((c) => [c.status, c.interrupted])).toEqual([
        ["success", undefined],
        ["error", true]
      ])
    }))
})
