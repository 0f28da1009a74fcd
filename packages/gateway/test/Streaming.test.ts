import { describe, expect, layer } from "@effect/vitest"
import { CircuitBreaker } from "@sg/resilience"
import { ExecutionStore, Recorder, type TraceId } from "@sg/trace"
import { Effect, Option } from "effect"
import { mintedIdOf } from "./utils/headers.js"
import * as RunGateway from "./utils/RunGateway.js"
import * as Sse from "./utils/sse.js"
import * as T from "./utils/TestGateway.js"

/** The record of trace `id`, once the recorder saved it. */
const recordOf = (id: string) =>
  Effect.gen(function*() {
    yield* Effect.flatMap(Recorder.Recorder, (recorder) => recorder.flush)
    const store = yield* ExecutionStore.ExecutionStore
    return yield* T.eventually(Effect.flatMap(store.get(id as TraceId.TraceId), (record) => record))
  })

layer(RunGateway.make(), { excludeTestServices: true })("POST /v1/runs over the real runtime", (it) => {
  describe("streaming", () => {
    it.effect("stream: true answers server-sent events, the trace headers first, and records the run", () =>
      Effect.gen(function*() {
        const answer = yield* T.postRun({ input: "hi", stream: true })
        expect(answer.status).toBe(200)
        expect(answer.headers["content-type"]).toBe("text/event-stream; charset=utf-8")
        expect(answer.headers["cache-control"]).toBe("no-cache")
        expect(answer.headers["x-sg-provider"]).toBe("primary")
        expect(answer.headers["x-sg-attempts"]).toBe("1")
        const id = mintedIdOf(answer)
        const events = Sse.parse(answer.text)
        expect(events.map((e) => e.event)).toEqual(["run.started", "text.delta", "text.delta", "run.finished"])
        const started = events[0]!.data
        expect(started).toEqual({ trace_id: id, run_id: expect.any(String), agent: "assistant" })
        expect(events.slice(1, 3).map((e) => e.data.delta)).toEqual(["Hel", "lo: hi"])
        expect(events[3]!.data).toEqual({
          trace_id: id,
          run_id: started.run_id,
          status: "success",
          output: "Hello: hi",
          steps: 1
        })
        expect((yield* T.writesOf(id)).slice(-2)).toEqual([
          { op: "transition", id, state: "EGRESS" },
          { op: "finish", id, state: "COMPLETED" }
        ])
        const record = yield* recordOf(id)
        expect(record.status).toBe("success")
        expect(record.runs[0]).toMatchObject({ run_id: started.run_id, tokens: { input: 7, output: 3 } })
        expect(record.runs[0]!.inference_calls[0]).toMatchObject({ provider: "primary", attempt: 1 })
      }))

    it.effect("accept: text/event-stream streams too; tool calls show as tool.started and tool.finished", () =>
      Effect.gen(function*() {
        const answer = yield* T.postRun({ input: "tools: ping" }, { accept: "text/event-stream" })
        expect(answer.status).toBe(200)
        const events = Sse.parse(answer.text)
        expect(events.map((e) => e.event)).toEqual([
          "run.started",
          "tool.started",
          "tool.finished",
          "text.delta",
          "run.finished"
        ])
        expect(events[1]!.data).toMatchObject({ tool: "echo", call_id: expect.any(String), input: { text: "ping" } })
        expect(events[2]!.data).toMatchObject({ tool: "echo", status: "success", output: "echo: ping" })
        expect(events[4]!.data).toMatchObject({ status: "success", output: "echoed ping", steps: 2 })
        const plain = yield* T.postRun({ input: "hi", stream: false }, { accept: "text/event-stream" })
        expect(plain.headers["content-type"]).toBe("application/json")
      }))

    it.effect("a failure before the first event answers its status, not 200", () =>
      Effect.gen(function*() {
        const answer = yield* T.postRun({ input: "all-down", stream: true })
        expect(answer.status).toBe(502)
        expect(answer.headers["content-type"]).toBe("application/json")
        expect(answer.json).toMatchObject({
          error: "upstream_error",
          provider: "primary,backup",
          attempts: [
            { provider: "primary", message: expect.stringContaining("primary is down") },
            { provider: "backup", message: expect.stringContaining("backup is down") }
          ]
        })
        expect(answer.headers["x-sg-provider"]).toBe("backup")
        expect(answer.headers["x-sg-attempts"]).toBe("2")
        const id = mintedIdOf(answer)
        expect((yield* T.writesOf(id)).at(-1)).toEqual({
          op: "finish",
          id,
          state: "ERRORED",
          fields: { error: "upstream_error" }
        })
      }))

    it.effect("a failure after output ends the stream with run.failed, and the trace is ERRORED", () =>
      Effect.gen(function*() {
        const answer = yield* T.postRun({ input: "cut", stream: true })
        expect(answer.status).toBe(200)
        const events = Sse.parse(answer.text)
        expect(events.map((e) => e.event)).toEqual(["run.started", "text.delta", "run.failed"])
        expect(events[2]!.data).toMatchObject({
          error: "upstream_error",
          provider: "primary",
          message: "model provider \"primary\" failed: Scripted.streamText: connection cut (after part of its " +
            "answer had been sent: no fallback)"
        })
        const id = mintedIdOf(answer)
        expect((yield* T.writesOf(id)).at(-1)).toEqual({
          op: "finish",
          id,
          state: "ERRORED",
          fields: { error: "upstream_error" }
        })
        const record = yield* recordOf(id)
        expect(record.status).toBe("error")
        expect(record.runs[0]!.inference_calls).toHaveLength(1)
      }))

    it.effect("a client that goes away interrupts the run; the trace ends ERRORED and the record says so", () =>
      Effect.gen(function*() {
        const opened = yield* Sse.openStream("/v1/runs", { input: "drip", stream: true })
        expect(opened.status).toBe(200)
        expect(opened.first).toContain("event: run.started")
        const id = opened.headers["x-trace-id"] as string
        opened.close()
        const writes = yield* T.eventually(
          Effect.filterOrFail(T.writesOf(id), (writes) => writes.some((w) => w.op === "finish"))
        )
        expect(writes.at(-1)).toEqual({
          op: "finish",
          id,
          state: "ERRORED",
          fields: { error: "client_closed_request" }
        })
        const record = yield* recordOf(id)
        expect(record.status).toBe("error")
        expect(record.runs[0]).toMatchObject({ agent_id: "assistant", status: "error", interrupted: true })
      }))

    it.effect("stream must be a boolean", () =>
      Effect.gen(function*() {
        const answer = yield* T.postRun({ input: "hi", stream: "yes" })
        expect(answer.status).toBe(400)
        expect(answer.json).toMatchObject({
          error: "bad_request",
          field: "stream",
          message: "stream: must be a boolean"
        })
      }))
  })

  describe("fallback", () => {
    it.effect("a provider down before any output: the next answers; x-sg-provider and x-sg-attempts say so", () =>
      Effect.gen(function*() {
        const plain = yield* T.postRun({ input: "primary-down hi" })
        expect(plain.status).toBe(200)
        expect(plain.json.output).toBe("Hello: primary-down hi")
        expect([plain.headers["x-sg-provider"], plain.headers["x-sg-attempts"]]).toEqual(["backup", "2"])
        const streamed = yield* T.postRun({ input: "primary-down hi", stream: true })
        expect(streamed.status).toBe(200)
        expect([streamed.headers["x-sg-provider"], streamed.headers["x-sg-attempts"]]).toEqual(["backup", "2"])
        const record = yield* recordOf(mintedIdOf(plain))
        expect(record.runs[0]!.inference_calls.map((c) => [c.provider, c.attempt, c.status])).toEqual([
          ["primary", 1, "error"],
          ["backup", 2, "success"]
        ])
      }))

    it.effect("every breaker open: 503 circuit_open with the soonest Retry-After", () =>
      Effect.gen(function*() {
        const breakers = yield* CircuitBreaker.CircuitBreaker
        yield* breakers.openFor("model:primary", "40 seconds")
        yield* breakers.openFor("model:backup", "12 seconds")
        const answer = yield* T.postRun({ input: "hi", stream: true })
        yield* breakers.reset("model:primary")
        yield* breakers.reset("model:backup")
        expect(answer.status).toBe(503)
        expect(answer.headers["retry-after"]).toBe("12")
        expect(answer.json).toMatchObject({ error: "circuit_open", breaker: "model:backup", retry_after: 12 })
      }))
  })
})

layer(RunGateway.make({ budgets: { maxSteps: 3 } }), { excludeTestServices: true })("budgets at the gateway", (it) => {
  it.effect("a run tree past SG_MAX_STEPS answers 422 budget_exceeded naming it, recorded with its partial run", () =>
    Effect.gen(function*() {
      const answer = yield* T.postRun({ input: "loop" })
      expect(answer.status).toBe(422)
      expect(answer.json).toMatchObject({
        error: "budget_exceeded",
        budget: "max_steps",
        limit: 3,
        message: "run budget exceeded: max_steps (SG_MAX_STEPS=3): the run tree already made 3 model calls"
      })
      const id = mintedIdOf(answer)
      expect((yield* T.writesOf(id)).at(-1)).toMatchObject({ state: "ERRORED", fields: { error: "budget_exceeded" } })
      const record = yield* recordOf(id)
      expect(record.status).toBe("error")
      expect(record.runs[0]).toMatchObject({ status: "error", steps: 3 })
      expect(record.runs[0]!.tool_calls).toHaveLength(3)
      const streamed = yield* T.postRun({ input: "loop", stream: true })
      expect(streamed.status).toBe(200)
      expect(Sse.parse(streamed.text).at(-1)).toMatchObject({ event: "run.failed", data: { error: "budget_exceeded" } })
      expect(Option.isSome(Option.fromNullable(streamed.headers["x-trace-id"]))).toBe(true)
    }))
})
