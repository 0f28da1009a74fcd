import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import { describe, expect, it } from "@effect/vitest"
import { Agent, AgentRuntime, Demo, Provider, RunContext } from "@sg/agent-runtime"
import { CircuitBreaker, CircuitOpenError } from "@sg/resilience"
import { CurrentTrace, ExecutionSpan, TraceId, TraceLifecycle, TraceStore } from "@sg/trace"
import { ConfigProvider, Duration, Effect, Fiber, Layer, Option, Ref, Schema, Stream, TestClock } from "effect"
import { calls, demoRuntime, fail, scriptedRuntime, text, type Turn } from "./utils/scripted.js"

class BackendDown extends Schema.TaggedError<BackendDown>()("BackendDown", { message: Schema.String }) {}

const Flaky = Tool.make("flaky", { success: Schema.String, failure: BackendDown })
const Noop = Tool.make("noop", { success: Schema.String })
const Slow = Tool.make("slow", { success: Schema.String })
const Whoami = Tool.make("whoami", {
  success: Schema.Struct({
    agent: Schema.String,
    run_id: Schema.String,
    depth: Schema.Int,
    metadata: Schema.Record({ key: Schema.String, value: Schema.String })
  }),
  dependencies: [RunContext.RunContext]
})

/** Calls every tool it is offered once, then answers with the results as JSON. */
const callOnceThenReport = (turn: Turn) =>
  turn.results.length === 0 && turn.tools.length > 0
    ? calls(...turn.tools.map((name) => ({ name, params: {} })))
    : text(JSON.stringify(turn.results.map((r) => ({ name: r.name, isFailure: r.isFailure, result: r.result }))))

const reported = (output: string): Array<{ name: string; isFailure: boolean; result: Record<string, unknown> }> =>
  JSON.parse(output)

const run = (input: string, agent?: string) =>
  Effect.flatMap(AgentRuntime.AgentRuntime, (runtime) =>
    runtime.run(agent === undefined ? { input } : { input, agent }))

describe("AgentRuntime", () => {
  describe("tools", () => {
    it.effect("a failing tool's error goes back to the model and the run goes on", () =>
      Effect.gen(function*() {
        const result = yield* run("go")
        expect(result).toMatchObject({ status: "success", steps: 2 })
        expect(reported(result.output)).toEqual([{
          name: "flaky",
          isFailure: true,
          result: { error: "BackendDown", message: "backend down" }
        }])
      }).pipe(Effect.provide(scriptedRuntime([
        Agent.make({
          name: "worker",
          instructions: "work",
          toolkit: Toolkit.make(Flaky),
          handlers: { flaky: () => Effect.fail(new BackendDown({ message: "backend down" })) }
        })
      ], callOnceThenReport))))

    it.effect("every tool call goes through its breaker: after 3 failures the next is rejected and reported", () =>
      Effect.gen(function*() {
        const invoked = yield* Ref.make(0)
        const layer = scriptedRuntime([
          Agent.make({
            name: "worker",
            instructions: "work",
            toolkit: Toolkit.make(Flaky),
            handlers: {
              flaky: () => Effect.zipRight(Ref.update(invoked, (n) => n + 1), new BackendDown({ message: "down" }))
            }
          })
        ], callOnceThenReport)
        yield* Effect.gen(function*() {
          for (let i = 0; i < 3; i++) {
            const result = yield* run("go")
            expect(reported(result.output)[0]!.result).toEqual({ error: "BackendDown", message: "down" })
          }
          yield* TestClock.adjust("10 seconds")
          const rejected = yield* run("go")
          expect(rejected.status).toBe("success")
          expect(reported(rejected.output)).toEqual([{
            name: "flaky",
            isFailure: true,
            result: {
              error: "circuit_open",
              message: "the tool is unavailable (circuit breaker \"tool:flaky\" is open)",
              retry_after_seconds: 20
            }
          }])
          expect(yield* Ref.get(invoked)).toBe(3)
          const breakers = yield* CircuitBreaker.CircuitBreaker
          expect((yield* breakers.status("tool:flaky")).state).toBe("open")
        }).pipe(Effect.provide(layer))
      }))

    it.effect("demo: a division by zero is the calculator's failure, told to the model, not an outage", () =>
      Effect.gen(function*() {
        const result = yield* run("what is 1/0?")
        expect(result).toMatchObject({
          status: "success",
          steps: 2,
          output: "The calculator tool failed: division by zero."
        })
        const breakers = yield* CircuitBreaker.CircuitBreaker
        expect(yield* breakers.status("tool:calculator")).toMatchObject({ state: "closed", failures: 0 })
      }).pipe(Effect.provide(demoRuntime())))

    it.effect("demo: a tool whose breaker is open is reported to the model as a tool error", () =>
      Effect.gen(function*() {
        const breakers = yield* CircuitBreaker.CircuitBreaker
        yield* breakers.isolate("tool:clock")
        const result = yield* run("what time is it?")
        expect(result).toMatchObject({
          status: "success",
          steps: 2,
          output: "The clock tool failed: the tool is unavailable (circuit breaker \"tool:clock\" is open)."
        })
      }).pipe(Effect.provide(demoRuntime())))

    it.effect("demo: the clock tells Clock's time and the calculator calculates, in one step", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.UTC(2025, 10, 23, 3, 53, 20))
        const result = yield* run("What time is it, and what is (2 + 3) * 4 ^ 2?")
        expect(result).toMatchObject({
          status: "success",
          steps: 2,
          output: "It is 2025-11-23T03:53:20.000Z. (2 + 3) * 4 ^ 2 = 80."
        })
      }).pipe(Effect.provide(demoRuntime())))

    it.effect("tool handlers see their run, its depth and the request's metadata through RunContext", () =>
      Effect.gen(function*() {
        const runtime = yield* AgentRuntime.AgentRuntime
        const result = yield* runtime.run({ input: "who am I?", metadata: { channel: "web" } })
        const [whoami] = reported(result.output)
        expect(whoami!.result).toEqual({
          agent: "worker",
          run_id: result.run_id,
          depth: 0,
          metadata: { channel: "web" }
        })
      }).pipe(Effect.provide(scriptedRuntime([
        Agent.make({
          name: "worker",
          instructions: "work",
          toolkit: Toolkit.make(Whoami),
          handlers: {
            whoami: () =>
              Effect.map(RunContext.RunContext, (run) => ({
                agent: run.agent,
                run_id: run.runId,
                depth: run.depth,
                metadata: run.metadata
              }))
          }
        })
      ], callOnceThenReport))))
  })

  describe("limits", () => {
    it.effect("the step limit ends a run that keeps asking for tools with status error", () =>
      Effect.gen(function*() {
        const invoked = yield* Ref.make(0)
        const layer = scriptedRuntime([
          Agent.make({
            name: "looper",
            instructions: "loop",
            toolkit: Toolkit.make(Noop),
            handlers: { noop: () => Effect.as(Ref.update(invoked, (n) => n + 1), "ok") },
            maxSteps: 3
          })
        ], () => calls({ name: "noop", params: {} }))
        const result = yield* run("loop forever").pipe(Effect.provide(layer))
        expect(result.status).toBe("error")
        expect(result.steps).toBe(3)
        expect(result.output).toBe(
          "step limit reached: agent \"looper\" still asked for tools (noop) after 3 model calls"
        )
        expect(yield* Ref.get(invoked)).toBe(2)
      }))

    it.effect("a run longer than its agent's timeout fails with RunTimeout (TestClock)", () =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(Effect.flip(run("be slow")))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("4999 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 millis")
        const error = yield* Fiber.join(fiber)
        expect(error).toBeInstanceOf(AgentRuntime.RunTimeout)
        expect(error).toMatchObject({ timeout_ms: 5000, message: "agent \"sloth\" did not finish within 5s" })
      }).pipe(Effect.provide(scriptedRuntime([
        Agent.make({
          name: "sloth",
          instructions: "be slow",
          toolkit: Toolkit.make(Slow),
          handlers: { slow: () => Effect.as(Effect.sleep("2 minutes"), "done") },
          timeout: "5 seconds"
        })
      ], callOnceThenReport))))

    it.effect("the default limits are 8 steps and no timeout of the agent's own (the tree's budget has one)", () =>
      Effect.sync(() => {
        const agent = Agent.withoutTools({ name: "plain", instructions: "" })
        expect(agent.maxSteps).toBe(8)
        expect(agent.timeout).toBeUndefined()
      }))
  })

  describe("sub-agents", () => {
    it.effect("fan_out runs 3 researchers, each its own run with a distinct run id", () =>
      Effect.gen(function*() {
        const result = yield* run("research effect")
        expect(result).toMatchObject({ status: "success", steps: 2 })
        const fanOut = JSON.parse(result.output) as {
          topic: string
          answers: Array<{ run_id: string; agent: string; status: string; output: string }>
        }
        expect(fanOut.topic).toBe("effect")
        expect(fanOut.answers.map((a) => [a.agent, a.status, a.output])).toEqual([1, 2, 3].map((k) => [
          "researcher",
          "success",
          `note on ${Demo.researchInput("effect", k, 3)}`
        ]))
        const ids = fanOut.answers.map((a) => a.run_id)
        expect(new Set([...ids, result.run_id]).size).toBe(4)
        for (const id of ids) expect(TraceId.is(id)).toBe(true)
      }).pipe(Effect.provide(scriptedRuntime(Demo.agents, (turn) =>
        turn.tools.includes("fan_out")
          ? turn.results.length === 0
            ? calls({ name: "fan_out", params: { topic: "effect", count: 3 } })
            : text(JSON.stringify(turn.results[0]!.result))
          : text(`note on ${turn.input}`)))))

    it.effect("demo: the researchers run concurrently (3 model calls of 1 s take 1 s)", () =>
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(run("research circuit breakers with 3 researchers"))
        yield* Effect.yieldNow()
        // assistant (1 s), three researchers side by side (1 s), assistant again (1 s): 3 s, not 5 s.
        yield* TestClock.adjust("2999 millis")
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        yield* TestClock.adjust("1 millis")
        const result = yield* Fiber.join(fiber)
        expect(result.status).toBe("success")
        expect(result.output).toMatch(/^I asked 3 researchers about circuit breakers\. \(1\) Notes on circuit breakers/)
      }).pipe(Effect.provide(demoRuntime({ latency: "1 second" }))))

    it.effect("sub-agents nest at most maxDepth deep; a refused spawn is reported, the run goes on", () =>
      Effect.gen(function*() {
        const result = yield* run("research depth with 2 researchers")
        expect(result.status).toBe("success")
        expect(result.output).toBe(
          "I asked 2 researchers about depth. " +
            "(1) failed: sub-agent \"researcher\" not started: runs may nest at most 0 sub-agents deep " +
            "(2) failed: sub-agent \"researcher\" not started: runs may nest at most 0 sub-agents deep"
        )
      }).pipe(Effect.provide(
        AgentRuntime.layer({ agents: Demo.agents, maxDepth: 0 }).pipe(
          Layer.provide(Provider.layerDemo()),
          Layer.provide(CircuitBreaker.layer())
        )
      )))
  })

  describe("model failures", () => {
    it.effect("a failing model is UpstreamError; after 3 the breaker rejects; a trial after the cool-down passes", () =>
      Effect.gen(function*() {
        for (let i = 0; i < 3; i++) {
          const error = yield* Effect.flip(run("fail: provider down"))
          expect(error).toBeInstanceOf(AgentRuntime.UpstreamError)
          expect(error).toMatchObject({
            provider: "demo",
            message: "model provider \"demo\" failed: DemoModel.generateText: the demo provider is unavailable " +
              "(the input asked it to fail)"
          })
        }
        yield* TestClock.adjust("10 seconds")
        const open = yield* Effect.flip(run("hello"))
        expect(open).toBeInstanceOf(CircuitOpenError)
        if (!(open instanceof CircuitOpenError)) return
        expect(open.name).toBe("model:demo")
        expect(Duration.toMillis(open.retryAfter)).toBe(20_000)
        yield* TestClock.adjust("20 seconds")
        const trial = yield* run("hello")
        expect(trial.status).toBe("success")
        const breakers = yield* CircuitBreaker.CircuitBreaker
        expect((yield* breakers.status("model:demo")).state).toBe("closed")
      }).pipe(Effect.provide(demoRuntime())))

    it.effect("a model that dies is an UpstreamError too", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(run("hi"))
        expect(error).toBeInstanceOf(AgentRuntime.UpstreamError)
        expect(error.message).toBe("model provider \"broken\" failed unexpectedly")
      }).pipe(Effect.provide(
        AgentRuntime.layer({ agents: [Agent.withoutTools({ name: "plain", instructions: "" })] }).pipe(
          Layer.provide(Provider.layerChain({
            name: "broken",
            model: "broken-1",
            languageModel: {
              generateText: () => Effect.die(new Error("boom")),
              generateObject: () => Effect.die(new Error("boom")),
              streamText: () => Stream.die(new Error("boom"))
            } as unknown as Provider.Provider["languageModel"]
          })),
          Layer.provideMerge(CircuitBreaker.layer())
        )
      )))

    it.effect("scripted: a model failure is UpstreamError naming the provider", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(run("anything"))
        expect(error).toMatchObject({
          _tag: "UpstreamError",
          provider: "scripted",
          message: "model provider \"scripted\" failed: Scripted.streamText: rate limited"
        })
      }).pipe(Effect.provide(scriptedRuntime([
        Agent.withoutTools({ name: "plain", instructions: "" })
      ], () => fail("rate limited")))))
  })

  describe("traces", () => {
    it.effect("with a trace in context: its id is the result's, and the trace moves to INFERRING", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const id = Option.getOrThrow(TraceId.parse("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"))
        yield* store.create(id, "RECEIVED")
        const result = yield* run("hello").pipe(CurrentTrace.withTraceId(id))
        expect(result.trace_id).toBe(id)
        const record = yield* store.get(id)
        expect(Option.map(record, (r) => r.state)).toEqual(Option.some("INFERRING"))
      }).pipe(Effect.provide(
        TraceLifecycle.layer().pipe(
          Layer.provideMerge(TraceStore.layerMemory),
          Layer.provideMerge(demoRuntime())
        )
      )))

    it.effect("without a trace: a fresh UUIDv7 trace id per run, and no lifecycle write", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const first = yield* run("hello")
        const second = yield* run("hello")
        expect(TraceId.is(first.trace_id) && TraceId.is(second.trace_id)).toBe(true)
        expect(first.trace_id).not.toBe(second.trace_id)
        expect(first.run_id).not.toBe(second.run_id)
        expect(yield* store.activeCount).toBe(0)
      }).pipe(Effect.provide(
        TraceLifecycle.layer().pipe(
          Layer.provideMerge(TraceStore.layerMemory),
          Layer.provideMerge(demoRuntime())
        )
      )))

    it.effect("run_id is the agent run's id as ExecutionSpan sees it", () =>
      Effect.gen(function*() {
        const result = yield* run("who am I?")
        const [whoami] = reported(result.output)
        expect(whoami!.result).toBe(result.run_id)
      }).pipe(Effect.provide(scriptedRuntime([
        Agent.make({
          name: "worker",
          instructions: "work",
          toolkit: Toolkit.make(Tool.make("current_run", { success: Schema.String })),
          handlers: {
            current_run: () =>
              Effect.map(ExecutionSpan.currentRun, Option.match({ onNone: () => "none", onSome: (r) => r.runId }))
          }
        })
      ], callOnceThenReport))))
  })

  describe("agents", () => {
    it.effect("an unknown agent is UnknownAgent listing the known ones", () =>
      Effect.gen(function*() {
        const runtime = yield* AgentRuntime.AgentRuntime
        expect(runtime.agents).toEqual(["assistant", "researcher"])
        expect(runtime.defaultAgent).toBe("assistant")
        const error = yield* Effect.flip(run("hi", "nobody"))
        expect(error).toBeInstanceOf(AgentRuntime.UnknownAgent)
        expect(error).toMatchObject({
          agent: "nobody",
          known: ["assistant", "researcher"],
          message: "unknown agent \"nobody\"; known agents: assistant, researcher"
        })
      }).pipe(Effect.provide(demoRuntime())))

    it.effect("a named agent runs instead of the default", () =>
      Effect.gen(function*() {
        const result = yield* run(Demo.researchInput("sg", 1, 1), "researcher")
        expect(result).toMatchObject({ status: "success", steps: 1 })
        expect(result.output).toMatch(/^Notes on sg \(background\): /)
      }).pipe(Effect.provide(demoRuntime())))

    const invalid = (options: AgentRuntime.Options) =>
      AgentRuntime.make(options).pipe(
        Effect.flip,
        Effect.map((e) => e.message),
        Effect.provide(Provider.layerDemo()),
        Effect.provide(CircuitBreaker.layer()),
        Effect.scoped
      )

    it.effect("agents that make no sense fail the build with InvalidAgents naming the agent and field", () =>
      Effect.gen(function*() {
        const plain = (name: string, more?: Partial<Agent.Options<{}>>) =>
          Agent.withoutTools({ name, instructions: "", ...more })
        expect(yield* invalid({ agents: [] })).toBe("at least one agent is required")
        expect(yield* invalid({ agents: [plain("a"), plain("a")] })).toBe("agent \"a\": defined twice")
        expect(yield* invalid({ agents: [plain("a b")] })).toBe(
          "agent \"a b\": name must be 1 to 64 letters, digits, '_', '.' or '-'"
        )
        expect(yield* invalid({ agents: [plain("a", { maxSteps: 0 })] })).toBe(
          "agent \"a\": maxSteps must be an integer >= 1"
        )
        expect(yield* invalid({ agents: [plain("a", { timeout: Duration.infinity })] })).toBe(
          "agent \"a\": timeout must be finite and positive"
        )
        expect(yield* invalid({ agents: [plain("a", { provider: "openai" })] })).toBe(
          "agent \"a\": unknown provider \"openai\"; known providers: demo"
        )
        expect(yield* invalid({ agents: [plain("a")], defaultAgent: "b" })).toBe(
          "defaultAgent \"b\" is not one of the agents"
        )
        expect(yield* invalid({ agents: [plain("a")], maxDepth: -1 })).toBe("maxDepth must be an integer >= 0")
      }))

    it.effect("an agent may run on another provider than the default", () =>
      Effect.gen(function*() {
        const other = yield* Provider.makeDemo({ failWhen: () => true })
        const layer = AgentRuntime.layer({
          agents: [Agent.withoutTools({ name: "a", instructions: "", provider: "other" })],
          providers: [{ ...other, name: "other" }]
        }).pipe(Layer.provide(Provider.layerDemo()), Layer.provide(CircuitBreaker.layer()))
        const error = yield* Effect.flip(run("hi")).pipe(Effect.provide(layer))
        expect(error).toMatchObject({ _tag: "UpstreamError", provider: "other" })
      }))

    it.effect("layerConfig runs the agents it is given, on the chain SG_MODEL names, with the options given", () =>
      Effect.gen(function*() {
        const echo = Agent.withoutTools({ name: "echo", instructions: "" })
        const layer = AgentRuntime.layerConfig([Demo.researcher, echo], { defaultAgent: "echo" }).pipe(
          Layer.provide(CircuitBreaker.layer())
        )
        const program = Effect.gen(function*() {
          const runtime = yield* AgentRuntime.AgentRuntime
          expect(runtime.agents).toEqual(["researcher", "echo"])
          expect(runtime.defaultAgent).toBe("echo")
          return yield* Effect.flip(run("fail: down"))
        }).pipe(Effect.provide(layer))
        const error = yield* program.pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_MODEL", "demo"]])))
        )
        expect(error).toMatchObject({ _tag: "UpstreamError", provider: "demo" })
        const none = yield* Effect.flip(
          Effect.provide(Effect.void, AgentRuntime.layerConfig([]).pipe(Layer.provide(CircuitBreaker.layer())))
        )
        expect(none).toMatchObject({ _tag: "InvalidAgents", message: "at least one agent is required" })
      }))
  })
})
