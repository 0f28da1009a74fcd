/**
 * An `AgentRuntime` for gateway tests. What it does depends on the input:
 * - `provider-down:<name>`: its model call fails through the breaker `model:<name>` (502, then 503 once open);
 * - `timeout`: `RunTimeout`; `die`: a defect; `sleep:<ms>`: waits that long (on `Clock`), then as below;
 * - anything else: answers `echo: <input>` after one tool call.
 * Each run is an agent-run span with a tool span inside, moves the trace to `INFERRING`, and notes its trace id in
 * `Seen`, with the lifecycle state it found in the store when the request's metadata says `observe: "true"`.
 */
import { AgentRuntime } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { CurrentTrace, ExecutionSpan, TraceLifecycle, TraceStore } from "@sg/trace"
import { Context, Effect, Layer, Option } from "effect"

/** What the fake saw of each run: its trace id and the lifecycle state when it started. */
export class Seen extends Context.Tag("test/gateway/Seen")<Seen, Array<{ traceId: string; state: string | null }>>() {}

/** The agents the fake knows. */
export const agents = ["default", "helper"] as const

/** The fake runtime, over the lifecycle, store and breakers in context; `Seen` beside it. */
export const layer = Layer.effect(
  AgentRuntime.AgentRuntime,
  Effect.gen(function*() {
    const lifecycle = yield* TraceLifecycle.TraceLifecycle
    const store = yield* TraceStore.TraceStore
    const breakers = yield* CircuitBreaker.CircuitBreaker
    const seen = yield* Seen
    const run = (request: AgentRuntime.RunRequest) =>
      Effect.gen(function*() {
        const traceId = Option.getOrThrowWith(yield* CurrentTrace.traceId, () => new Error("no CurrentTrace"))
        const agent = request.agent ?? "default"
        if (!(agents as ReadonlyArray<string>).includes(agent)) {
          return yield* new AgentRuntime.UnknownAgent({
            agent,
            known: [...agents],
            message: `agent "${agent}" is not one of ${agents.join(", ")}`
          })
        }
        // The request's create goes out without the request waiting for it: it lands while the run is in flight.
        const record = request.metadata?.["observe"] === "true"
          ? yield* Effect.orElseSucceed(store.get(traceId), () => Option.none()).pipe(
            Effect.zipLeft(Effect.yieldNow()),
            Effect.repeat({ until: Option.isSome, times: 100 })
          )
          : Option.none()
        seen.push({ traceId, state: Option.getOrNull(Option.map(record, (r) => r.state)) })
        yield* lifecycle.transition("INFERRING")
        const runId = yield* ExecutionSpan.makeRunId
        const body = Effect.gen(function*() {
          if (request.input.startsWith("provider-down:")) {
            const name = request.input.slice("provider-down:".length)
            return yield* breakers.protect(`model:${name}`)(
              Effect.fail(new AgentRuntime.UpstreamError({ provider: name, message: `${name} answered 500` }))
            ).pipe(ExecutionSpan.inference(name))
          }
          if (request.input === "timeout") {
            return yield* new AgentRuntime.RunTimeout({ timeout_ms: 30_000, message: "the run took longer than 30s" })
          }
          if (request.input === "die") return yield* Effect.die(new Error("the fake runtime broke"))
          if (request.input.startsWith("sleep:")) yield* Effect.sleep(Number(request.input.slice("sleep:".length)))
          const length = yield* Effect.succeed(request.input.length).pipe(
            ExecutionSpan.tool("length", { callId: "call-1", input: request.input })
          )
          return {
            trace_id: traceId,
            run_id: runId,
            status: "success" as const,
            output: `echo: ${request.input}`,
            steps: length > 0 ? 1 : 0
          }
        })
        return yield* body.pipe(
          ExecutionSpan.agentRun({
            agentId: agent,
            runId,
            conversationId: request.conversation_id,
            input: request.input
          })
        )
      })
    return AgentRuntime.AgentRuntime.of({ run, agents, defaultAgent: "default" })
  })
)
