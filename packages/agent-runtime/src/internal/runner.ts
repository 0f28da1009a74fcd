/**
 * One agent run: its span, its step loop (model call, then the tool calls it asked for, until it answers, reaches its
 * step limit or runs out of time), and the sub-agents its tools spawn.
 */
import type * as LanguageModel from "@effect/ai/LanguageModel"
import * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import type * as Tool from "@effect/ai/Tool"
import { type CircuitBreaker, CircuitOpenError, CircuitTimeoutError } from "@sg/resilience"
import { ExecutionSpan, type TraceId } from "@sg/trace"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Agent from "../Agent.js"
import { type RunError, type RunResult, RunTimeout, UnknownAgent, UpstreamError } from "../AgentRuntime.js"
import type * as Provider from "../Provider.js"
import * as RuntimeMetrics from "../RuntimeMetrics.js"
import { RunContext, type Service as RunContextService, SpawnRefused, type SpawnRequest } from "../RunContext.js"

/** An agent ready to run: its tools built and its provider found. */
export interface Resolved {
  readonly agent: Agent.Agent
  readonly tools: Agent.ToolSet
  readonly provider: Provider.Provider
}

/** What every run of one runtime shares. */
export interface Env {
  readonly agents: ReadonlyMap<string, Resolved>
  readonly breakers: CircuitBreaker.Service
  readonly modelTimeout: Duration.Duration
  readonly maxDepth: number
}

/** One run to make. */
export interface RunInput {
  readonly resolved: Resolved
  readonly input: string
  /** Undefined: the enclosing run's (a sub-agent's parent's). */
  readonly conversationId: string | undefined
  readonly metadata: Readonly<Record<string, string>>
  readonly depth: number
  readonly traceId: TraceId.TraceId
}

/** The run's last allowed model call still asked for tools. */
class StepLimitReached extends Schema.TaggedError<StepLimitReached>()("StepLimitReached", {
  run_id: Schema.String,
  steps: Schema.Int,
  message: Schema.String
}) {}

/** Runs `self` and hands its exit and how long it took (seconds, on `Clock`) to `observe`. */
const timed = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  observe: (exit: Exit.Exit<A, E>, seconds: number) => void
): Effect.Effect<A, E, R> =>
  Effect.clockWith((clock) => {
    const start = clock.unsafeCurrentTimeNanos()
    return Effect.onExit(self, (exit) =>
      Effect.sync(() => observe(exit, Number(clock.unsafeCurrentTimeNanos() - start) / 1e9)))
  })

/** The agent `name`, or `UnknownAgent` naming the known ones. */
export const resolve = (env: Env, name: string): Effect.Effect<Resolved, UnknownAgent> => {
  const resolved = env.agents.get(name)
  if (resolved !== undefined) return Effect.succeed(resolved)
  const known = Array.from(env.agents.keys())
  return Effect.fail(
    new UnknownAgent({ agent: name, known, message: `unknown agent "${name}"; known agents: ${known.join(", ")}` })
  )
}

/** Runs one agent run, as its own `agent_run` span. */
export const runAgent = (env: Env, run: RunInput): Effect.Effect<RunResult, RunError> => {
  const agent = run.resolved.agent
  const body = Effect.gen(function*() {
    const steps = { count: 0 }
    const current = yield* ExecutionSpan.currentRun
    const runId = Option.match(current, { onNone: () => "", onSome: (r) => r.runId })
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
    const output = yield* loop(env, run, context, steps).pipe(
      Effect.timeoutFail({
        duration: agent.timeout,
        onTimeout: () =>
          new RunTimeout({
            timeout_ms: Duration.toMillis(agent.timeout),
            message: `agent "${agent.name}" did not finish within ${Duration.format(agent.timeout)}`
          })
      })
    )
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
    return yield* runAgent(env, {
      resolved,
      input: request.input,
      conversationId: undefined,
      metadata: parent.metadata,
      depth,
      traceId: parent.traceId
    })
  })

type ToolCall = Response.ToolCallPart<string, unknown>

/** The tool calls of a response (their types were erased with the agent's tools; the `type` tag tells them apart). */
const toolCallsOf = (content: ReadonlyArray<{ readonly type: string }>): Array<ToolCall> => {
  const calls: Array<ToolCall> = []
  for (const part of content) if (part.type === "tool-call") calls.push(part as unknown as ToolCall)
  return calls
}

const loop = (
  env: Env,
  run: RunInput,
  context: RunContextService,
  steps: { count: number }
): Effect.Effect<string, UpstreamError | CircuitOpenError | StepLimitReached> =>
  Effect.gen(function*() {
    const { agent, tools } = run.resolved
    const messages: Array<Prompt.Message> = []
    if (agent.instructions !== "") messages.push(Prompt.makeMessage("system", { content: agent.instructions }))
    messages.push(Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: run.input })] }))
    let prompt = Prompt.fromMessages(messages)
    let stepInput: unknown = run.input
    for (;;) {
      const response = yield* modelCall(env, run.resolved, prompt, stepInput)
      steps.count++
      const calls = toolCallsOf(response.content).filter((call) => !call.providerExecuted)
      if (calls.length === 0) return response.text
      if (steps.count >= agent.maxSteps) {
        return yield* new StepLimitReached({
          run_id: context.runId,
          steps: steps.count,
          message: `step limit reached: agent "${agent.name}" still asked for tools (${
            calls.map((call) => call.name).join(", ")
          }) after ${steps.count} model calls`
        })
      }
      const results = yield* Effect.forEach(calls, (call) => toolCall(env, tools, call, context), {
        concurrency: agent.toolConcurrency
      })
      prompt = Prompt.merge(prompt, Prompt.fromResponseParts(response.content)).pipe(
        Prompt.merge(Prompt.fromMessages([Prompt.makeMessage("tool", { content: results })]))
      )
      stepInput = results.map((result) => ({ tool: result.name, isFailure: result.isFailure, result: result.result }))
    }
  })

const describeResponse = (response: LanguageModel.GenerateTextResponse<Record<string, Tool.Any>>): string => {
  const calls = toolCallsOf(response.content)
  if (calls.length === 0) return response.text
  const asked = calls.map((call) => `${call.name}(${JSON.stringify(call.params)})`).join(", ")
  return response.text === "" ? `tool calls: ${asked}` : `${response.text}\ntool calls: ${asked}`
}

const firstLine = (text: string): string => text.split("\n", 1)[0]!

const modelCall = (
  env: Env,
  resolved: Resolved,
  prompt: Prompt.Prompt,
  input: unknown
): Effect.Effect<LanguageModel.GenerateTextResponse<Record<string, Tool.Any>>, UpstreamError | CircuitOpenError> => {
  const provider = resolved.provider
  const breaker = `model:${provider.name}`
  const upstream = (message: string, cause: unknown) =>
    new UpstreamError({ provider: provider.name, message: `model provider "${provider.name}" ${message}`, cause })
  const called = env.breakers.protect(breaker, { timeout: env.modelTimeout })(
    provider.languageModel.generateText({ prompt, toolkit: resolved.tools.toolkit, disableToolCallResolution: true })
  )
  return timed(called, (exit, seconds) =>
    exit._tag === "Success"
      ? RuntimeMetrics.recordModelCall(provider.name, provider.model, "success", seconds, {
        input: exit.value.usage.inputTokens ?? 0,
        output: exit.value.usage.outputTokens ?? 0
      })
      : RuntimeMetrics.recordModelCall(
        provider.name,
        provider.model,
        RuntimeMetrics.failedCallStatus(exit.cause),
        seconds
      )).pipe(
    Effect.catchAllDefect((defect) => Effect.fail(upstream("failed unexpectedly", defect))),
    Effect.tap((response) =>
      Effect.zipRight(
        ExecutionSpan.usage({ input: response.usage.inputTokens ?? 0, output: response.usage.outputTokens ?? 0 }),
        ExecutionSpan.output(describeResponse(response))
      )
    ),
    Effect.tapError((error) =>
      error instanceof CircuitOpenError ? ExecutionSpan.circuitRejected(breaker) : Effect.void
    ),
    ExecutionSpan.inference(provider.model, { input, provider: provider.name }),
    Effect.mapError((error) =>
      error instanceof CircuitOpenError || error instanceof UpstreamError
        ? error
        : error instanceof CircuitTimeoutError
        ? upstream(`did not answer within ${Duration.format(error.timeout)}`, error)
        : upstream(`failed: ${firstLine(error.message)}`, error)
    )
  )
}

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

const encodeParams = (tool: Tool.Any | undefined, params: unknown): Effect.Effect<unknown> =>
  tool === undefined
    ? Effect.succeed(params)
    // The model's answer was decoded with this schema; encoding gives back what the handler's decoding expects.
    : Schema.encodeUnknown(tool.parametersSchema as unknown as Schema.Schema<unknown>)(params).pipe(
      Effect.orElseSucceed(() => params)
    )

const toolCall = (
  env: Env,
  tools: Agent.ToolSet,
  call: ToolCall,
  context: RunContextService
): Effect.Effect<Prompt.ToolResultPart> => {
  const breaker = `tool:${call.name}`
  const result = (isFailure: boolean, value: unknown) =>
    Prompt.makePart("tool-result", { id: call.id, name: call.name, isFailure, result: value, providerExecuted: false })
  const tool = tools.toolkit.tools[call.name]
  // Decoding the model's answer with the toolkit admits only the agent's tools; `other` bounds the labels anyway.
  const label = tool === undefined ? RuntimeMetrics.otherTool : call.name
  return Effect.flatMap(encodeParams(tool, call.params), (params) =>
    timed(env.breakers.protect(breaker)(tools.handle(call.name, params)), (exit, seconds) =>
      RuntimeMetrics.recordToolCall(
        label,
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
        onSuccess: (handled) => Effect.succeed(result(handled.isFailure, handled.encodedResult)),
        onFailure: (cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.interrupt
            : Effect.succeed(result(true, toolError(cause)))
      })
    ))
}
