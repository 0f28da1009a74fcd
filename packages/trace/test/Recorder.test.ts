import { describe, expect, it } from "@effect/vitest"
import { ExecutionRecord, ExecutionSpan, Recorder, type TraceId, TraceStoreUnavailable } from "@sg/trace"
import {
  Cause,
  ConfigProvider,
  Data,
  Deferred,
  Effect,
  Exit,
  Layer,
  Metric,
  Option,
  Ref,
  Schema,
  TestClock,
  Tracer
} from "effect"
import { collectLogs, type LogLine } from "./utils/logs.js"
import { inTrace, makeCapture, recordOf, traceId, traceIdOf } from "./utils/execRecording.js"

class ToolBroke extends Data.TaggedError("ToolBroke")<{ readonly message: string }> {}
class CircuitOpenError extends Data.TaggedError("CircuitOpenError")<{
  readonly name: string
  readonly message: string
}> {}

const start = 1_763_870_000_000
const at = (ms: number) => new Date(start + ms).toISOString()
const runId = "0190a1b2-c3d4-7e5f-8a6b-000000000001"

/** Work that takes `ms` of (test) time. */
const work = (ms: number) => TestClock.adjust(`${ms} millis`)

const twoToolsTwoModelsIn = (trace: TraceId.TraceId) => Effect.gen(function*() {
  yield* work(2)
  yield* Effect.gen(function*() {
    yield* ExecutionSpan.usage({ input: 120, output: 30 })
    yield* work(40)
    return "call search"
  }).pipe(ExecutionSpan.inference("demo-model", { callId: "m1", input: "what is sg?" }))
  yield* work(15).pipe(Effect.as({ hits: 3 }), ExecutionSpan.tool("search", { callId: "t1", input: { q: "sg" } }))
  yield* work(5).pipe(
    Effect.zipRight(new ToolBroke({ message: "disk full" })),
    ExecutionSpan.tool("write", { callId: "t2", input: "notes.txt" }),
    Effect.ignore
  )
  yield* Effect.gen(function*() {
    yield* ExecutionSpan.usage({ input: 200, output: 50 })
    yield* work(30)
    return "sg is a set of traced services"
  }).pipe(ExecutionSpan.inference("demo-model", { callId: "m2" }))
  return "sg is a set of traced services"
}).pipe(
  ExecutionSpan.agentRun({ agentId: "planner", runId, conversationId: "conv-1", input: "what is sg?" }),
  Effect.withSpan("POST /v1/runs"),
  inTrace(trace)
)

const twoToolsTwoModels = twoToolsTwoModelsIn(traceId)

const droppedCount = (reason: Recorder.DropReason) =>
  Effect.map(Metric.value(Metric.tagged(Recorder.recordsDropped, "reason", reason)), (state) => state.count)

const settle = Effect.repeatN(Effect.yieldNow(), 20)

describe("Recorder", () => {
  it.effect("a run with two tools and two model calls reduces to the expected record", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(start)
      const records = yield* recordOf(twoToolsTwoModels)
      expect(records).toEqual([{
        trace_id: traceId,
        conversation_id: "conv-1",
        status: "success",
        started_at: at(0),
        ended_at: at(92),
        duration_ms: 92,
        runs: [{
          run_id: runId,
          agent_id: "planner",
          conversation_id: "conv-1",
          status: "success",
          started_at: at(0),
          duration_ms: 92,
          steps: 2,
          tokens: { input: 320, output: 80 },
          tool_calls: [
            {
              call_id: "t1",
              tool: "search",
              started_at: at(42),
              duration_ms: 15,
              status: "success",
              input: "{\"q\":\"sg\"}",
              output: "{\"hits\":3}"
            },
            {
              call_id: "t2",
              tool: "write",
              started_at: at(57),
              duration_ms: 5,
              status: "error",
              input: "notes.txt",
              output: null,
              error: "ToolBroke: disk full"
            }
          ],
          inference_calls: [
            {
              call_id: "m1",
              model: "demo-model",
              started_at: at(2),
              duration_ms: 40,
              status: "success",
              input: "what is sg?",
              output: "call search",
              tokens: { input: 120, output: 30 }
            },
            {
              call_id: "m2",
              model: "demo-model",
              started_at: at(62),
              duration_ms: 30,
              status: "success",
              input: null,
              output: "sg is a set of traced services",
              tokens: { input: 200, output: 50 }
            }
          ],
          events: []
        }]
      }])
      expect(Schema.is(ExecutionRecord.ExecutionRecord)(records[0])).toBe(true)
    }))

  it.effect("three concurrent sibling sub-agents of one agent stay three runs, with their own steps and tokens", () =>
    Effect.gen(function*() {
      const worker = (n: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < n; i++) {
            yield* ExecutionSpan.usage({ input: 10 * n, output: n }).pipe(
              Effect.zipRight(Effect.yieldNow()),
              ExecutionSpan.inference("demo-model")
            )
          }
          return `worker ${n} done`
        }).pipe(ExecutionSpan.agentRun({ agentId: "worker" }))
      const program = Effect.gen(function*() {
        yield* Effect.all([worker(1), worker(2), worker(3)], { concurrency: "unbounded" })
        const run = yield* ExecutionSpan.currentRun
        return Option.getOrThrow(run).runId
      }).pipe(ExecutionSpan.agentRun({ agentId: "planner", conversationId: "conv-7" }), inTrace(traceId))
      const parentRunId = yield* Ref.make("")
      const records = yield* recordOf(Effect.flatMap(program, (id) => Ref.set(parentRunId, id)))
      const parent = yield* Ref.get(parentRunId)
      expect(records).toHaveLength(1)
      const runs = records[0]!.runs
      const workers = runs.filter((r) => r.agent_id === "worker")
      expect(workers).toHaveLength(3)
      expect(new Set(workers.map((r) => r.run_id)).size).toBe(3)
      expect(workers.map((r) => [r.steps, r.tokens]).sort()).toEqual([
        [1, { input: 10, output: 1 }],
        [2, { input: 40, output: 4 }],
        [3, { input: 90, output: 9 }]
      ])
      for (const w of workers) {
        expect(w.parent_run_id).toBe(parent)
        expect(w.conversation_id).toBe("conv-7")
      }
      const planner = runs.find((r) => r.agent_id === "planner")!
      expect(planner.run_id).toBe(parent)
      expect(planner.steps).toBe(0)
      expect(planner.events.map((e) => [e.type, e.child_run_id, e.agent_id, e.status]).sort()).toEqual(
        workers.map((w) => ["child_result", w.run_id, "worker", "success"]).sort()
      )
      expect(planner.events.map((e) => e.output).sort()).toEqual(["worker 1 done", "worker 2 done", "worker 3 done"])
    }))

  it.effect("statuses: timeout is a timeout, interruption is an error, a breaker's rejection names the breaker", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        yield* Effect.fail(new Cause.TimeoutException("no answer in 5 seconds")).pipe(
          ExecutionSpan.tool("slow", { callId: "c-timeout" }),
          Effect.ignore
        )
        yield* Effect.fail({ _tag: "RequestTimeout", message: "upstream took too long" }).pipe(
          ExecutionSpan.tool("upstream", { callId: "c-tagged-timeout" }),
          Effect.ignore
        )
        yield* Effect.race(
          Effect.never.pipe(ExecutionSpan.tool("loser", { callId: "c-loser" })),
          Effect.succeed(1).pipe(ExecutionSpan.tool("winner", { callId: "c-winner" }))
        )
        yield* Effect.fail(new CircuitOpenError({ name: "search-api", message: "circuit search-api is open" })).pipe(
          ExecutionSpan.tool("search", { callId: "c-open" }),
          Effect.ignore
        )
        yield* ExecutionSpan.circuitRejected("llm").pipe(
          Effect.zipRight(Effect.fail("rejected")),
          Effect.withSpan("CircuitBreaker.protect"),
          ExecutionSpan.inference("demo-model", { callId: "c-llm" }),
          Effect.ignore
        )
        yield* Effect.die(new Error("boom")).pipe(ExecutionSpan.tool("buggy", { callId: "c-defect" }), Effect.exit)
      }).pipe(ExecutionSpan.agentRun({ agentId: "root" }), inTrace(traceId))
      const [record] = yield* recordOf(program)
      const run = record!.runs[0]!
      const call = (id: string) => [...run.tool_calls, ...run.inference_calls].find((c) => c.call_id === id)!
      expect(call("c-timeout")).toMatchObject({ status: "timeout", error: "TimeoutException: no answer in 5 seconds" })
      expect(call("c-tagged-timeout")).toMatchObject({
        status: "timeout",
        error: "RequestTimeout: upstream took too long"
      })
      expect(call("c-loser")).toMatchObject({ status: "error", error: "interrupted", interrupted: true })
      expect(call("c-winner")).toMatchObject({ status: "success", output: "1" })
      expect(call("c-open")).toMatchObject({ status: "error", circuit: "search-api" })
      expect(call("c-llm")).toMatchObject({ status: "error", circuit: "llm", error: "rejected" })
      expect(call("c-defect")).toMatchObject({ status: "error", error: "defect: Error: boom" })
      expect(run.status).toBe("success")
      expect(record!.status).toBe("success")
    }))

  it.effect("a run that times out makes a timeout record; a 5xx answer makes an error record", () =>
    Effect.gen(function*() {
      const timedOut = Effect.fail(new Cause.TimeoutException("run took over 30 seconds")).pipe(
        ExecutionSpan.agentRun({ agentId: "root" }),
        Effect.withSpan("POST /v1/runs"),
        inTrace(traceId)
      )
      const [timeoutRecord] = yield* recordOf(timedOut)
      expect(timeoutRecord).toMatchObject({ status: "timeout", error: "TimeoutException: run took over 30 seconds" })

      const answered502 = Effect.void.pipe(
        ExecutionSpan.agentRun({ agentId: "root" }),
        Effect.zipRight(Effect.annotateCurrentSpan("http.response.status_code", 502)),
        Effect.withSpan("POST /v1/runs"),
        inTrace(traceId)
      )
      const [errorRecord] = yield* recordOf(answered502)
      expect(errorRecord).toMatchObject({ status: "error", error: "HTTP 502" })
    }))

  it.effect("the root span's sg.tenant files the record under that tenant; without one the record has none", () =>
    Effect.gen(function*() {
      const run = (tenant: string | undefined) =>
        Effect.void.pipe(
          ExecutionSpan.agentRun({ agentId: "root" }),
          Effect.zipRight(
            tenant === undefined ? Effect.void : Effect.annotateCurrentSpan(ExecutionSpan.Attributes.tenant, tenant)
          ),
          Effect.withSpan("POST /v1/runs"),
          inTrace(traceId)
        )
      const [filed] = yield* recordOf(run("acme"))
      expect(filed!.tenant).toBe("acme")
      expect(ExecutionRecord.summarize(filed!).tenant).toBe("acme")
      const [open] = yield* recordOf(run(undefined))
      expect(open).not.toHaveProperty("tenant")
    }))

  it.effect("@effect/ai spans are recognized, and a model span inside a model call is folded into it", () =>
    Effect.gen(function*() {
      const generateText = Effect.useSpan("LanguageModel.generateText", (span) =>
        Effect.sync(() => {
          span.attribute("gen_ai.system", "openai")
          span.attribute("gen_ai.request.model", "gpt-4o-mini")
          span.attribute("gen_ai.usage.input_tokens", 7)
          span.attribute("gen_ai.usage.output_tokens", 3)
          return { text: "hello" }
        }))
      const handled = { isFailure: true, result: { reason: "not found" }, encodedResult: {} }
      const toolkitHandle = Effect.succeed(handled).pipe(
        Effect.withSpan("Toolkit.handle", { attributes: { tool: "lookup", parameters: { id: 1 } } })
      )
      const program = Effect.gen(function*() {
        yield* generateText.pipe(ExecutionSpan.inference("gpt-4o-mini", { callId: "m1" }))
        yield* generateText
        yield* toolkitHandle
      }).pipe(ExecutionSpan.agentRun({ agentId: "root" }), inTrace(traceId))
      const [record] = yield* recordOf(program)
      const run = record!.runs[0]!
      expect(run.steps).toBe(2)
      expect(run.tokens).toEqual({ input: 14, output: 6 })
      expect(run.inference_calls[0]).toMatchObject({
        call_id: "m1",
        model: "gpt-4o-mini",
        tokens: { input: 7, output: 3 }
      })
      expect(run.inference_calls[1]).toMatchObject({ model: "gpt-4o-mini", output: "hello" })
      expect(run.tool_calls).toHaveLength(1)
      expect(run.tool_calls[0]).toMatchObject({
        tool: "lookup",
        input: "{\"id\":1}",
        status: "error",
        error: "tool failed: {\"reason\":\"not found\"}"
      })
    }))

  it.effect("calls outside any agent run are kept in an unattributed run; traces without calls are not records", () =>
    Effect.gen(function*() {
      const loose = Effect.succeed("pong").pipe(ExecutionSpan.tool("ping", { callId: "p" }), inTrace(traceId))
      const [record] = yield* recordOf(loose)
      expect(record!.runs).toHaveLength(1)
      expect(record!.runs[0]).toMatchObject({
        agent_id: "unattributed",
        run_id: traceId,
        tool_calls: [{ call_id: "p" }]
      })
      expect(ExecutionRecord.agentsOf(record!)).toEqual([])

      const healthz = Effect.void.pipe(Effect.withSpan("GET /healthz"), inTrace(traceId))
      expect(yield* recordOf(healthz)).toEqual([])
    }))

  it.effect("success records are sampled by trace id; errors are always kept", () =>
    Effect.gen(function*() {
      const ok = Effect.void.pipe(ExecutionSpan.agentRun({ agentId: "root" }), inTrace(traceId))
      const failed = Effect.fail("nope").pipe(ExecutionSpan.agentRun({ agentId: "root" }), inTrace(traceId))
      expect(yield* recordOf(ok, { sampleSuccess: 0 })).toHaveLength(0)
      expect(yield* recordOf(ok, { sampleSuccess: 1 })).toHaveLength(1)
      const [kept] = yield* recordOf(failed, { sampleSuccess: 0 })
      expect(kept).toMatchObject({ status: "error", error: "nope" })
    }))

  it.effect("inputs are redacted then cut before they are stored", () =>
    Effect.gen(function*() {
      const secret = "sk-proj-0123456789abcdefghijklmnop"
      const program = Effect.succeed("x".repeat(2000)).pipe(
        ExecutionSpan.tool("fetch", {
          callId: "f",
          input: { url: "https://api.example.com", headers: { authorization: `Bearer ${secret}` } }
        }),
        ExecutionSpan.agentRun({ agentId: "root", input: `use key ${secret}` }),
        inTrace(traceId)
      )
      const [record] = yield* recordOf(program, { truncate: 100 })
      const call = record!.runs[0]!.tool_calls[0]!
      expect(call.input).toBe("{\"url\":\"https://api.example.com\",\"headers\":{\"authorization\":\"[REDACTED]\"}}")
      expect(call.output).toBe(`${"x".repeat(100)}…[1900 more chars cut]`)
      expect(JSON.stringify(record)).not.toContain(secret)
    }))

  it.effect("a span that ends after its root is appended: the record is saved again with it", () =>
    Effect.gen(function*() {
      const capture = makeCapture()
      const program = Effect.gen(function*() {
        yield* Effect.forkDaemon(Effect.sleep("2 seconds").pipe(ExecutionSpan.tool("audit", { callId: "late" })))
        return "answered"
      }).pipe(ExecutionSpan.agentRun({ agentId: "root" }), inTrace(traceId))
      yield* Effect.gen(function*() {
        expect(yield* program).toBe("answered")
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(capture.records).toHaveLength(1)
        expect(capture.records[0]!.runs[0]!.tool_calls).toEqual([])
        yield* TestClock.adjust("2 seconds")
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(capture.records).toHaveLength(2)
        expect(capture.records[1]!.runs[0]!.tool_calls).toMatchObject([{ call_id: "late", duration_ms: 2000 }])
      }).pipe(Effect.provide(Recorder.layer({ save: capture.save, sampleSuccess: 1, grace: "500 millis" })))
    }))

  it.effect("the queue is flushed when the recorder's scope closes", () =>
    Effect.gen(function*() {
      const capture = makeCapture()
      yield* Effect.gen(function*() {
        yield* twoToolsTwoModels
        yield* settle
        expect(capture.records).toHaveLength(0)
        expect((yield* Effect.flatMap(Recorder.Recorder, (r) => r.stats)).queued).toBe(1)
      }).pipe(Effect.provide(Recorder.layer({ save: capture.save, sampleSuccess: 1, grace: "1 hour" })))
      expect(capture.records).toHaveLength(1)
      expect(capture.records[0]!.trace_id).toBe(traceId)
    }))

  it.effect("a failing store fails nothing: the loss is counted (sg_records_dropped_total), logged once a burst", () =>
    Effect.gen(function*() {
      const lines: Array<LogLine> = []
      const failing = yield* Ref.make(true)
      const saved = makeCapture()
      const save = (record: ExecutionRecord.ExecutionRecord) =>
        Effect.flatMap(Ref.get(failing), (down) =>
          down ? Effect.fail(new TraceStoreUnavailable({ operation: "MULTI", message: "Redis is down" })) : saved.save(record))
      const before = yield* droppedCount("store_failed")
      yield* Effect.gen(function*() {
        const recorder = yield* Recorder.Recorder
        for (let i = 0; i < 3; i++) {
          expect(yield* twoToolsTwoModels).toBe("sg is a set of traced services")
          yield* recorder.flush
        }
        expect((yield* droppedCount("store_failed")) - before).toBe(3)
        yield* Ref.set(failing, false)
        yield* twoToolsTwoModels
        yield* recorder.flush
        yield* Ref.set(failing, true)
        yield* twoToolsTwoModels
        yield* recorder.flush
      }).pipe(Effect.provide(Recorder.layer({ save, sampleSuccess: 1 })), Effect.provide(collectLogs(lines)))
      expect((yield* droppedCount("store_failed")) - before).toBe(4)
      expect(saved.records).toHaveLength(1)
      const warnings = lines.filter((l) => l.level === "WARN")
      expect(warnings).toHaveLength(2)
      expect(warnings[0]!.message).toContain("execution records dropped (store_failed)")
      expect(lines.filter((l) => l.message.includes("saved again, after 3 were dropped"))).toHaveLength(1)
    }))

  it.effect("a full queue drops records without blocking the traced effect", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const saved = makeCapture()
      const save = (record: ExecutionRecord.ExecutionRecord) =>
        Deferred.await(gate).pipe(Effect.zipRight(saved.save(record)))
      const before = yield* droppedCount("queue_full")
      yield* Effect.gen(function*() {
        for (let i = 1; i <= 3; i++) {
          yield* twoToolsTwoModelsIn(traceIdOf(i))
          yield* settle
        }
        const dropped = (yield* droppedCount("queue_full")) - before
        yield* Deferred.succeed(gate, void 0)
        expect(dropped).toBe(1)
        yield* Effect.flatMap(Recorder.Recorder, (r) => r.flush)
      }).pipe(Effect.provide(Recorder.layer({ save, sampleSuccess: 1, grace: "0 millis", queueCapacity: 1 })))
      expect(saved.records.map((r) => r.trace_id)).toEqual([traceIdOf(1), traceIdOf(2)])
    }))

  it.effect("two roots of one trace (spans adopted from one traceparent) make one record", () =>
    Effect.gen(function*() {
      const records = yield* recordOf(Effect.all([twoToolsTwoModels, twoToolsTwoModels], { concurrency: "unbounded" }))
      expect(records).toHaveLength(1)
      expect(records[0]!.runs).toHaveLength(1)
      expect(records[0]!.runs[0]!.steps).toBe(4)
    }))

  it.effect("a trace past maxSpansPerTrace keeps its first spans (and its runs) and says how many it dropped", () =>
    Effect.gen(function*() {
      const program = Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => Effect.void.pipe(ExecutionSpan.tool("t", { callId: `c${i}` })),
        { discard: true }
      ).pipe(ExecutionSpan.agentRun({ agentId: "root" }), inTrace(traceId))
      const [record] = yield* recordOf(program, { maxSpansPerTrace: 12 })
      expect(record!.runs).toHaveLength(1)
      expect(record!.runs[0]!.agent_id).toBe("root")
      expect(record!.runs[0]!.tool_calls.map((c) => c.call_id)).toEqual(Array.from({ length: 12 }, (_, i) => `c${i}`))
      expect(record!.dropped).toMatchObject({ spans: 8 })
    }))

  it.effect("traces past maxTraces in flight, or whose ids are not trace ids, are not recorded and are counted", () =>
    Effect.gen(function*() {
      const tooMany = yield* droppedCount("too_many_traces")
      const invalid = yield* droppedCount("invalid_trace_id")
      const gate = yield* Deferred.make<void>()
      const blocked = Deferred.await(gate).pipe(ExecutionSpan.tool("wait"), ExecutionSpan.agentRun({ agentId: "a" }))
      const capture = makeCapture()
      yield* Effect.gen(function*() {
        const first = yield* Effect.fork(inTrace(traceIdOf(1))(blocked))
        yield* settle
        expect(yield* twoToolsTwoModelsIn(traceIdOf(2))).toBe("sg is a set of traced services")
        yield* Deferred.succeed(gate, void 0)
        yield* first.await
        yield* Effect.flatMap(Recorder.Recorder, (r) => r.flush)
        yield* Effect.withParentSpan(
          Effect.void.pipe(ExecutionSpan.tool("t"), ExecutionSpan.agentRun({ agentId: "a" })),
          Tracer.externalSpan({ traceId: "not-a-hex-trace-id", spanId: "00f067aa0ba902b7" })
        )
        yield* Effect.flatMap(Recorder.Recorder, (r) => r.flush)
      }).pipe(Effect.provide(Recorder.layer({ save: capture.save, sampleSuccess: 1, maxTraces: 1 })))
      expect(capture.records.map((r) => r.trace_id)).toEqual([traceIdOf(1)])
      expect((yield* droppedCount("too_many_traces")) - tooMany).toBe(1)
      expect((yield* droppedCount("invalid_trace_id")) - invalid).toBe(1)
    }))

  it.live("closing the scope gives up on a hung store after flushTimeout and counts what it lost", () =>
    Effect.gen(function*() {
      const lost = yield* droppedCount("shutdown")
      const started = Date.now()
      yield* Effect.void.pipe(
        ExecutionSpan.tool("t"),
        ExecutionSpan.agentRun({ agentId: "a" }),
        Effect.provide(
          Recorder.layer({ save: () => Effect.never, sampleSuccess: 1, grace: "1 hour", flushTimeout: "200 millis" })
        )
      )
      expect(Date.now() - started).toBeLessThan(5000)
      expect((yield* droppedCount("shutdown")) - lost).toBe(1)
    }))

  it.effect("wraps the installed tracer: every span is still that tracer's, with its own parents", () =>
    Effect.gen(function*() {
      const native = yield* Effect.tracer
      const created: Array<Tracer.Span> = []
      const inner = Tracer.make({
        span: (...args) => {
          const span = native.span(...args)
          created.push(span)
          return span
        },
        context: (f, fiber) => native.context(f, fiber)
      })
      const capture = makeCapture()
      yield* Effect.gen(function*() {
        yield* twoToolsTwoModels
        yield* Effect.flatMap(Recorder.Recorder, (r) => r.flush)
      }).pipe(Effect.provide(Recorder.layer({ save: capture.save, sampleSuccess: 1 })), Effect.withTracer(inner))
      expect(capture.records).toHaveLength(1)
      const names = created.map((s) => s.name)
      expect(names).toEqual(
        expect.arrayContaining(["POST /v1/runs", "invoke_agent planner", "execute_tool search", "chat demo-model"])
      )
      const byName = (name: string) => created.find((s) => s.name === name)!
      const run = byName("invoke_agent planner")
      expect(Option.getOrThrow(run.parent)).toBe(byName("POST /v1/runs"))
      expect(Option.getOrThrow(byName("execute_tool search").parent)).toBe(run)
      expect(created.every((s) => s.status._tag === "Ended")).toBe(true)
      expect(created.every((s) => s.traceId === byName("POST /v1/runs").traceId)).toBe(true)
    }))

  it.effect("SG_RECORD=off installs nothing", () =>
    Effect.gen(function*() {
      const before = yield* Effect.tracer
      const capture = makeCapture()
      const off = Recorder.layerConfig({ save: capture.save }).pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["SG_RECORD", "off"]]))))
      )
      yield* Effect.gen(function*() {
        expect(yield* Effect.tracer).toBe(before)
        expect((yield* Recorder.Recorder).enabled).toBe(false)
        yield* twoToolsTwoModels
      }).pipe(Effect.provide(off))
      expect(capture.records).toEqual([])

      const on = Recorder.layerConfig({ save: capture.save }).pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["SG_SAMPLE_SUCCESS", "1"]]))))
      )
      yield* Effect.gen(function*() {
        expect(yield* Effect.tracer).not.toBe(before)
        yield* twoToolsTwoModels
      }).pipe(Effect.provide(on))
      expect(capture.records).toHaveLength(1)
    }))

  it.effect("bad configuration is a ConfigError naming the variable", () =>
    Effect.gen(function*() {
      const withEnv = (entries: ReadonlyArray<[string, string]>) =>
        Effect.exit(Effect.withConfigProvider(Recorder.config, ConfigProvider.fromMap(new Map(entries))))
      const bad = [["SG_SAMPLE_SUCCESS", "1.5"], ["SG_TRUNCATE", "0"], ["SG_RECORD", "maybe"]] as const
      for (const [name, value] of bad) {
        const exit = yield* withEnv([[name, value]])
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isFailure(exit)) expect(Cause.pretty(exit.cause)).toContain(name)
      }
      expect(yield* Effect.withConfigProvider(Recorder.config, ConfigProvider.fromMap(new Map()))).toEqual({
        enabled: true,
        sampleSuccess: 0.1,
        truncate: 500
      })
    }))
})
