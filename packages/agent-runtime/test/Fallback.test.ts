import { describe, expect, it } from "@effect/vitest"
import { Agent, AgentRuntime, Provider, type RunEvent } from "@sg/agent-runtime"
import { CircuitBreaker, CircuitOpenError } from "@sg/resilience"
import { type ExecutionRecord, Recorder } from "@sg/trace"
import { Cause, Duration, Effect, Fiber, Layer, TestClock } from "effect"
import { fail, partial, type Reply, scriptedProvider, stall, text, type Turn } from "./utils/scripted.js"

const plain = Agent.withoutTools({ name: "plain", instructions: "" })

/** A runtime over the chain of scripted providers `a`, `b` (and `c`), each counting its calls. */
const chain = (...scripts: ReadonlyArray<(turn: Turn) => Reply>) => {
  const calls = scripts.map(() => 0)
  const providers = Effect.forEach(scripts, (script, i) =>
    scriptedProvider(["a", "b", "c"][i]!, (turn) => {
      calls[i]!++
      return script(turn)
    }))
  const layer = AgentRuntime.layer({ agents: [plain] }).pipe(
    Layer.provide(Layer.effect(
      Provider.ModelProvider,
      Effect.map(providers, (all) => Provider.chain(...(all as [Provider.Provider, ...Array<Provider.Provider>])))
    )),
    Layer.provideMerge(CircuitBreaker.layer())
  )
  return { calls, layer }
}

/** Runs `input`, keeping its events (text deltas too when `streamed`) and every record. */
const runRecorded = (input: string, streamed = false) =>
  Effect.gen(function*() {
    const records: Array<ExecutionRecord.ExecutionRecord> = []
    const events: Array<RunEvent.RunEvent> = []
    const save = (record: ExecutionRecord.ExecutionRecord) => Effect.sync(() => void records.push(record))
    const recorder = Recorder.layer({ save, sampleSuccess: 1 })
    const exit = yield* Effect.gen(function*() {
      const runtime = yield* AgentRuntime.AgentRuntime
      const exit = yield* Effect.exit(runtime.run({ input }, {
        onEvent: (event) => Effect.sync(() => void events.push(event)),
        textDeltas: streamed
      }))
      yield* Effect.flatMap(Recorder.Recorder, (r) => r.flush)
      return exit
    }).pipe(Effect.provide(recorder))
    return { exit, events, records }
  })

const attempts = (events: ReadonlyArray<RunEvent.RunEvent>) =>
  events.flatMap((e) =>
    e.type === "model.attempt" && e.status !== "answering" ? [[e.provider, e.attempt, e.status]] : []
  )

describe("fallback chains", () => {
  it.effect("a failing provider hands the call to the next; each try is its own inference call", () =>
    Effect.gen(function*() {
      const { calls, layer } = chain(() => fail("503 overloaded"), () => text("from b"))
      const { events, exit, records } = yield* runRecorded("hi").pipe(Effect.provide(layer))
      expect(exit).toMatchObject({ _tag: "Success", value: { status: "success", output: "from b", steps: 1 } })
      expect(calls).toEqual([1, 1])
      expect(attempts(events)).toEqual([["a", 1, "error"], ["b", 2, "success"]])
      const inference = records[0]!.runs[0]!.inference_calls
      expect(inference.map((c) => [c.provider, c.model, c.attempt, c.status])).toEqual([
        ["a", "a-model", 1, "error"],
        ["b", "b-model", 2, "success"]
      ])
      expect(inference[0]!.error).toBe(
        "UpstreamError: model provider \"a\" failed: Scripted.streamText: 503 overloaded"
      )
      expect(records[0]!.runs[0]!.steps).toBe(1)
    }))

  it.effect("a provider silent past the first-token timeout is skipped for the next (TestClock)", () =>
    Effect.gen(function*() {
      const { calls, layer } = chain(() => stall, () => text("from b"))
      const result = yield* Effect.gen(function*() {
        const fiber = yield* Effect.fork(Effect.flatMap(AgentRuntime.AgentRuntime, (r) => r.run({ input: "hi" })))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("9999 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        return yield* Fiber.join(fiber)
      }).pipe(Effect.provide(layer))
      expect(result.output).toBe("from b")
      expect(calls).toEqual([1, 1])
    }))

  it.effect("a provider whose breaker is open is skipped without a call", () =>
    Effect.gen(function*() {
      const { calls, layer } = chain(() => text("from a"), () => text("from b"))
      const { events, exit, records } = yield* Effect.gen(function*() {
        yield* (yield* CircuitBreaker.CircuitBreaker).openFor("model:a", "20 seconds")
        return yield* runRecorded("hi")
      }).pipe(Effect.provide(layer))
      expect(exit).toMatchObject({ _tag: "Success", value: { output: "from b" } })
      expect(calls).toEqual([0, 1])
      expect(attempts(events)).toEqual([["a", 1, "skipped"], ["b", 2, "success"]])
      expect(records[0]!.runs[0]!.inference_calls.map((c) => [c.provider, c.circuit, c.status])).toEqual([
        ["a", "model:a", "error"],
        ["b", undefined, "success"]
      ])
    }))

  it.effect("once text reached the listener, a failure is the call's: no switch to the next provider", () =>
    Effect.gen(function*() {
      const { calls, layer } = chain(() => partial("Hel", "connection reset"), () => text("from b"))
      const { events, exit } = yield* runRecorded("hi", true).pipe(Effect.provide(layer))
      expect(calls).toEqual([1, 0])
      expect(events.filter((e) => e.type === "text.delta")).toEqual([
        { type: "text.delta", run_id: expect.any(String), delta: "Hel" }
      ])
      expect(exit._tag).toBe("Failure")
      if (exit._tag !== "Failure") return
      expect(Cause.squash(exit.cause)).toMatchObject({
        _tag: "UpstreamError",
        provider: "a",
        message: "model provider \"a\" failed: Scripted.streamText: connection reset (after part of its answer " +
          "had been sent: no fallback)"
      })
    }))

  it.effect("when nobody listens, text from a failed provider never reached anyone: the call falls back", () =>
    Effect.gen(function*() {
      const { calls, layer } = chain(() => partial("Hel", "connection reset"), () => text("from b"))
      const result = yield* Effect.flatMap(AgentRuntime.AgentRuntime, (r) => r.run({ input: "hi" })).pipe(
        Effect.provide(layer)
      )
      expect(result.output).toBe("from b")
      expect(calls).toEqual([1, 1])
    }))

  it.effect("when every provider fails: UpstreamError naming each provider's failure", () =>
    Effect.gen(function*() {
      const { layer } = chain(() => fail("down"), () => fail("also down"))
      const error = yield* Effect.flip(Effect.flatMap(AgentRuntime.AgentRuntime, (r) => r.run({ input: "hi" }))).pipe(
        Effect.provide(layer)
      )
      expect(error).toMatchObject({
        _tag: "UpstreamError",
        provider: "a,b",
        message: "every model provider failed: model provider \"a\" failed: Scripted.streamText: down; " +
          "model provider \"b\" failed: Scripted.streamText: also down",
        attempts: [
          { provider: "a", message: "model provider \"a\" failed: Scripted.streamText: down" },
          { provider: "b", message: "model provider \"b\" failed: Scripted.streamText: also down" }
        ]
      })
    }))

  it.effect("when every breaker is open: CircuitOpenError with the soonest retry", () =>
    Effect.gen(function*() {
      const { calls, layer } = chain(() => text("a"), () => text("b"), () => text("c"))
      const error = yield* Effect.gen(function*() {
        const breakers = yield* CircuitBreaker.CircuitBreaker
        yield* breakers.openFor("model:a", "40 seconds")
        yield* breakers.openFor("model:b", "12 seconds")
        yield* breakers.isolate("model:c")
        return yield* Effect.flip(Effect.flatMap(AgentRuntime.AgentRuntime, (r) => r.run({ input: "hi" })))
      }).pipe(Effect.provide(layer))
      expect(calls).toEqual([0, 0, 0])
      expect(error).toBeInstanceOf(CircuitOpenError)
      if (!(error instanceof CircuitOpenError)) return
      expect(error.name).toBe("model:b")
      expect(Duration.toMillis(error.retryAfter)).toBe(12_000)
      expect(error.message).toBe(
        "every model provider's breaker is open: breaker model:a is open (retry in 40s); breaker model:b is open " +
          "(retry in 12s); breaker model:c is isolated"
      )
    }))

  it.effect("a chain of one fails as its provider does (no 'every provider' wording)", () =>
    Effect.gen(function*() {
      const { layer } = chain(() => fail("down"))
      const error = yield* Effect.flip(Effect.flatMap(AgentRuntime.AgentRuntime, (r) => r.run({ input: "hi" }))).pipe(
        Effect.provide(layer)
      )
      expect(error).toMatchObject({ provider: "a", message: "model provider \"a\" failed: Scripted.streamText: down" })
    }))
})
