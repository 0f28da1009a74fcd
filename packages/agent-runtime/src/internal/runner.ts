/**
 * One agent run: its span, its step loop (a model call over its provider chain, then the tool calls it asked for,
 * until it answers, reaches its step limit or runs out of time or budget), and the sub-agents its tools spawn. The
 * root run (depth 0) also reports its events and is bounded by its tree's budgets.
 */
import * as Prompt from "@effect/ai/Prompt"
import { CircuitOpenError, CircuitTimeoutError } from "@sg/resilience"
import { ExecutionSpan, type TraceId } from "@sg/trace"
import type * as Arr from "effect/Array"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Agent from "../Agent.js"
import { type HistoryMessage, type RunError, type RunResult, RunTimeout, UnknownAgent } from "../Run.js"
import type { BudgetExceeded } from "../Budget.js"
import type * as Provider from "../Provider.js"
import * as RuntimeMetrics from "../RuntimeMetrics.js"
import type * as RunEvent from "../RunEvent.js"
import { RunContext, type Service as RunContextService, SpawnRefused, type SpawnRequest } from "../RunContext.js"
import type * as Tracker from "./budget.js"
import * as ModelCall from "./modelCall.js"

/** An agent ready to run: its tools built and its providers found. */
export interface Resolved {
  readonly agent: Agent.Agent
  readonly tools: Agent.ToolSet
  /** The fallback chain its model calls go to. */
  readonly providers: Arr.NonEmptyReadonlyArray<Provider.Provider>
}

/** What every run of one runtime shares. */
export interface Env {
  readonly agents: ReadonlyMap<string, Resolved>
  readonly model: ModelCall.Env
  readonly maxDepth: number
}

/** One run to make. */
export interface RunInput {
  readonly resolved: Resolved
  readonly input: string
  /** Messages before the input (a chat's history). */
  readonly history: ReadonlyArray<HistoryMessage>
  /** Undefined: the enclosing run's (a sub-agent's parent's). */
  readonly conversationId: string | undefined
  readonly metadata: Readonly<Record<string, string>>
  readonly depth: number
  readonly traceId: TraceId.TraceId
  /** The run tree's spending, shared with every sub-agent. */
  readonly tracker: Tracker.Tracker
  /** Hears the run's events; only the root run has one. */
  readonly onEvent: RunEvent.Listener | undefined
  /** Whether `onEvent` hears text deltas (a streamed run). */
  readonly textDeltas: boolean
}

/** The run's last allowed model call still asked for tools. */
class StepLimitReached extends Schema.TaggedError<StepLimitReached>()("StepLimitReached", {
  run_id: Schema.String,
  steps: Schema.Int,
  message: Schema.String
}) {}

/** The agent `name`, or `UnknownAgent` naming the known ones. */
export const resolve = (env: Env, name: string): Effect.Effect<Resolved, UnknownAgent> => {
  const resolved = env.agents.get(name)
  if (resolved !== undefined) return Effect.succeed(resolved)
  const known = Array.from(env.agents.keys())
  return Effect.fail(
    new UnknownAgent({ agent: name, known, message: `unknown agent "${name}"; known agents: ${known.join(", ")}` })
  )
}

/**
 * What a root run's body is bounded by: its tree's time budget, and any budget hit anywhere in the tree. The first
 * of the body and the tracker's guard to end ends the run, and the other is interrupted (and awaited); a budget hit
 * anywhere in the tree fails the run with it, even when the body went on to finish before the guard woke (a tool
 * that caught the sub-agent's failure, with no pause in between for the guard to run).
 * One race over the guard, not `raceFirst(timeoutFail(work), tripped)`: that forked four fibers per run, this two.
 */
const withinBudget = <A, E>(
  tracker: Tracker.Tracker,
  work: Effect.Effect<A, E>
): Effect.Effect<A, E | BudgetExceeded> => {
  const settled = (exit: Exit.Exit<A, E | BudgetExceeded>): Exit.Exit<A, E | BudgetExceeded> => {
    const hit = tracker.hit()
    return hit === undefined ? exit : Exit.fail(hit)
  }
  return Effect.fiberIdWith((parent) =>
    Effect.raceWith(work, tracker.guard, {
      onSelfDone: (exit, guard) => Effect.zipRight(Fiber.interruptAs(guard, parent), settled(exit)),
      onOtherDone: (exit, self) => Effect.zipRight(Fiber.interruptAs(self, parent), settled(exit))
    })
  )
}

/** Runs the root run of a request: `runAgent`, then `run.finished` with the tree's usage. */
export const runRoot = (env: Env, run: RunInput): Effect.Effect<RunResult, RunError> =>
  runAgent(env, run).pipe(
    Effect.tap((result) =>
      run.onEvent === undefined
        ? Effect.void
        : run.onEvent({ type: "run.finished", result, usage: run.tracker.usage() })
    )
  )

/** Runs one agent run, as its own `agent_run` span. */
export const runAgent = (env: Env, run: RunInput): Effect.Effect<RunResult, RunError> => {
  const agent = run.resolved.agent
  const body = Effect.gen(function*() {
    const steps = { count: 0 }
    const current = yield* ExecutionSpan.currentRun
    const runId = Option.match(current, { onNone: () => "", onSome: (r) => r.runId })
    const emit = run.depth === 0 ? run.onEvent : undefined
    if (emit !== undefined) {
      yield* emit({ type: "run.started", trace_id: run.traceId, run_id: runId, agent: agent.name })
    }
    const context: RunContextService = {
      agent: agent.name,
      runId,
      conversationId: Option.getOrUndefined(Option.flatMapNullable(current, (r) => r.conversationId)),
      metadata: run.metadata,
      depth: run.depth,
      spawn: (request) => spawn(env, run, request),
      spawnAll: (requests, options) =>
        Effect.forEach(requests, (request) => Effect.either(spawn(env, run, request)), {
          concurrency: options?.concurrency ?? "unbounded"
        })
    }
    let work: Effect.Effect<string, RunError | StepLimitReached> = loop(env, run, context, steps, emit)
    const timeout = agent.timeout
    if (timeout !== undefined) {
      work = Effect.timeoutFail(work, {
        duration: timeout,
        onTimeout: () =>
          new RunTimeout({
            timeout_ms: Duration.toMillis(timeout),
            message: `agent "${agent.name}" did not finish within ${Duration.format(timeout)}`
          })
      })
    }
    const output = yield* (run.depth === 0 ? withinBudget(run.tracker, work) : work)
    yield* ExecutionSpan.output(output)
    return { trace_id: run.traceId, run_id: runId, status: "success" as const, output, steps: steps.count }
  })
  return body.pipe(
    ExecutionSpan.agentRun({ agentId: agent.name, conversationId: run.conversationId, input: run.input }),
    Effect.catchTag("StepLimitReached", (limit) =>
      Effect.succeed({
        trace_id: run.traceId,
        run_id: limit.run_id,
        status: "error" as const,
        output: limit.message,
        steps: limit.steps
      })),
    Effect.onExit((exit) => Effect.sync(() => RuntimeMetrics.recordRun(agent.name, RuntimeMetrics.runStatus(exit))))
  )
}

const spawn = (env: Env, parent: RunInput, request: SpawnRequest) =>
  Effect.gen(function*() {
    const depth = parent.depth + 1
    if (depth > env.maxDepth) {
      return yield* new SpawnRefused({
        agent: request.agent,
        depth,
        message: `sub-agent "${request.agent}" not started: runs may nest at most ${env.maxDepth} sub-agents deep`
      })
    }
    const resolved = yield* resolve(env, request.agent)
    yield* parent.tracker.spawn
    return yield* runAgent(env, {
      resolved,
      input: request.input,
      history: [],
      conversationId: undefined,
      metadata: parent.metadata,
      depth,
      traceId: parent.traceId,
      tracker: parent.tracker,
      onEvent: undefined,
      textDeltas: false
    })
  })

type ToolCall = ModelCall.ToolCall

const initialPrompt = (agent: Agent.Agent, history: ReadonlyArray<HistoryMessage>, input: string): Prompt.Prompt => {
  const messages: Array<Prompt.Message> = []
  if (agent.instructions !== "") messages.push(Prompt.makeMessage("system", { content: agent.instructions }))
  for (const message of history) {
    const text = [Prompt.makePart("text", { text: message.content })]
    messages.push(
      message.role === "system"
        ? Prompt.makeMessage("system", { content: message.content })
        : message.role === "user"
        ? Prompt.makeMessage("user", { content: text })
        : Prompt.makeMessage("assistant", { content: text })
    )
  }
  messages.push(Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: input })] }))
  return Prompt.fromMessages(messages)
}

const loop = (
  env: Env,
  run: RunInput,
  context: RunContextService,
  steps: { count: number },
  emit: RunEvent.Listener | undefined
): Effect.Effect<string, RunError | StepLimitReached> =>
  Effect.gen(function*() {
    const { agent, tools } = run.resolved
    const hooks: ModelCall.Hooks = emit === undefined ? {} : {
      onDelta: run.textDeltas ? (delta) => emit({ type: "text.delta", run_id: context.runId, delta }) : undefined,
      onAttempt: (attempt) => emit({ type: "model.attempt", run_id: context.runId, ...attempt })
    }
    let prompt = initialPrompt(agent, run.history, run.input)
    let stepInput: unknown = run.input
    for (;;) {
      yield* run.tracker.step
      const answer = yield* ModelCall.call(
        env.model,
        run.resolved.providers,
        { prompt, toolkit: tools.toolkit, input: stepInput },
        hooks
      )
      steps.count++
      yield* run.tracker.tokens(answer.usage.input, answer.usage.output)
      const calls = answer.toolCalls
      if (calls.length === 0) return answer.text
      if (steps.count >= agent.maxSteps) {
        return yield* new StepLimitReached({
          run_id: context.runId,
          steps: steps.count,
          message: `step limit reached: agent "${agent.name}" still asked for tools (${
            calls.map((call) => call.name).join(", ")
          }) after ${steps.count} model calls`
        })
      }
      const results = yield* Effect.forEach(calls, (call) => toolCall(env, tools, call, context, emit), {
        // One call runs in this fiber: a concurrent `forEach` forks a fiber per call even when there is one.
        concurrency: calls.length === 1 ? 1 : agent.toolConcurrency
      })
      const asked: Array<Prompt.AssistantMessagePart> = answer.text === ""
        ? []
        : [Prompt.makePart("text", { text: answer.text })]
      for (const call of calls) {
        asked.push(Prompt.makePart("tool-call", {
          id: call.id,
          name: call.name,
          params: call.params,
          providerExecuted: false
        }))
      }
      prompt = Prompt.merge(
        prompt,
        Prompt.fromMessages([
          Prompt.makeMessage("assistant", { content: asked }),
          Prompt.makeMessage("tool", { content: results })
        ])
      )
      stepInput = results.map((result) => ({ tool: result.name, isFailure: result.isFailure, result: result.result }))
    }
  })

/** What the model is told when a tool call failed, was rejected or died. */
const toolError = (cause: Cause.Cause<unknown>): Record<string, unknown> => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof CircuitOpenError) {
      return {
        error: "circuit_open",
        message: `the tool is unavailable (circuit breaker "${error.name}" is open)`,
        retry_after_seconds: Duration.isFinite(error.retryAfter)
          ? Math.ceil(Duration.toSeconds(error.retryAfter))
          : null
      }
    }
    if (error instanceof CircuitTimeoutError) return { error: "timeout", message: error.message }
    if (typeof error === "object" && error !== null) {
      const tag = "_tag" in error && typeof error._tag === "string" ? error._tag : "tool_error"
      const message = "message" in error && typeof error.message === "string" ? error.message : JSON.stringify(error)
      return { error: tag, message }
    }
    return { error: "tool_error", message: String(error) }
  }
  return { error: "defect", message: Cause.pretty(cause).split("\n", 1)[0] }
}

const toolCall = (
  env: Env,
  tools: Agent.ToolSet,
  call: ToolCall,
  context: RunContextService,
  emit: RunEvent.Listener | undefined
): Effect.Effect<Prompt.ToolResultPart> => {
  const breaker = `tool:${call.name}`
  const result = (isFailure: boolean, value: unknown) =>
    Prompt.makePart("tool-result", { id: call.id, name: call.name, isFailure, result: value, providerExecuted: false })
  const finished = (part: Prompt.ToolResultPart): Effect.Effect<Prompt.ToolResultPart> =>
    emit === undefined ? Effect.succeed(part) : Effect.as(
      emit({
        type: "tool.finished",
        run_id: context.runId,
        call_id: call.id,
        tool: call.name,
        status: part.isFailure ? "error" : "success",
        output: part.result
      }),
      part
    )
  const params = call.params
  return Effect.suspend(() => {
    const started = emit === undefined
      ? Effect.void
      : emit({ type: "tool.started", run_id: context.runId, call_id: call.id, tool: call.name, input: params })
    return Effect.zipRight(
      started,
      RuntimeMetrics.timed(env.model.breakers.protect(breaker)(tools.handle(call.name, params)), (exit, seconds) =>
        RuntimeMetrics.recordToolCall(
          // Decoding the model's answer with the toolkit admits only the agent's tools; `other` bounds the labels.
          tools.toolkit.tools[call.name] === undefined ? RuntimeMetrics.otherTool : call.name,
          exit._tag === "Success"
            ? exit.value.isFailure ? "error" : "success"
            : RuntimeMetrics.failedCallStatus(exit.cause),
          seconds
        )).pipe(
        Effect.tap((handled) => handled.isFailure ? Effect.void : ExecutionSpan.output(handled.encodedResult)),
        Effect.tapError((error) =>
          error instanceof CircuitOpenError ? ExecutionSpan.circuitRejected(breaker) : Effect.void
        ),
        Effect.provideService(RunContext, context),
        ExecutionSpan.tool(call.name, { callId: call.id, input: params }),
        Effect.matchCauseEffect({
          onSuccess: (handled) => finished(result(handled.isFailure, handled.encodedResult)),
          onFailure: (cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.interrupt
              : finished(result(true, toolError(cause)))
        })
      )
    )
  })
}
