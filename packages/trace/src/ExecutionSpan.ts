/**
 * The span conventions execution records are reduced from. Code marks its work with Effect's own spans
 * (`Effect.withSpan`, `Effect.fn`); these helpers put on them the attributes the recorder reads:
 *
 * - an agent run: `sg.kind = "agent_run"`, `sg.run_id` (a UUIDv7 per run), `sg.agent_id`, `sg.parent_run_id`,
 *   `sg.conversation_id`. Every span inside it (down to the next agent run) belongs to that run.
 * - a tool call: `sg.kind = "tool"`, `sg.tool`, `sg.call_id`, `sg.input`, `sg.output` (else the success value).
 *   @effect/ai's `Toolkit.handle` spans are recognized too (attributes `tool`, `parameters`).
 * - a model call: `sg.kind = "inference"`, `gen_ai.request.model`, `gen_ai.provider.name`, `sg.attempt` (its try
 *   in a fallback chain), `gen_ai.usage.input_tokens` / `gen_ai.usage.output_tokens`. @effect/ai's
 *   `LanguageModel.*` spans carry these already; a model span nested in another (a runtime's span around
 *   `LanguageModel.generateText`) is folded into the outer one, not counted twice.
 * - a breaker rejection: `sg.circuit = <breaker name>` on the rejected span (a `CircuitOpenError` failing the call
 *   is recognized by itself).
 * - a cancelled request: `sg.cancelled = true` on the root span of a request whose client went away (`cancelled`):
 *   its record is an error, `cancelled`, with what ran before, even when no agent run had started yet.
 * - a tenant: `sg.tenant = <tenant>` on the root span of a request made with a tenant's API key: its record is
 *   filed under that tenant.
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as Option from "effect/Option"
import * as TraceIdGenerator from "./TraceIdGenerator.js"

/** The attribute names the recorder reads. */
export const Attributes = {
  kind: "sg.kind",
  runId: "sg.run_id",
  agentId: "sg.agent_id",
  parentRunId: "sg.parent_run_id",
  conversationId: "sg.conversation_id",
  tool: "sg.tool",
  callId: "sg.call_id",
  input: "sg.input",
  output: "sg.output",
  circuit: "sg.circuit",
  cancelled: "sg.cancelled",
  tenant: "sg.tenant",
  operation: "gen_ai.operation.name",
  system: "gen_ai.system",
  providerName: "gen_ai.provider.name",
  attempt: "sg.attempt",
  requestModel: "gen_ai.request.model",
  responseModel: "gen_ai.response.model",
  inputTokens: "gen_ai.usage.input_tokens",
  outputTokens: "gen_ai.usage.output_tokens",
  toolName: "gen_ai.tool.name",
  httpStatus: "http.response.status_code"
} as const

/** The values of `sg.kind`. */
export const Kinds = {
  agentRun: "agent_run",
  tool: "tool",
  inference: "inference"
} as const

/** The agent run the current fiber is in. */
export interface CurrentRun {
  readonly runId: string
  readonly agentId: string
  readonly conversationId: string | undefined
}

const currentRunRef = globalValue(
  Symbol.for("@sg/trace/ExecutionSpan/currentRun"),
  () => FiberRef.unsafeMake<Option.Option<CurrentRun>>(Option.none())
)

/** The agent run the current fiber is in, if any. */
export const currentRun: Effect.Effect<Option.Option<CurrentRun>> = FiberRef.get(currentRunRef)

/** A fresh run id: from the `TraceIdGenerator` in context, else from the process-wide one. */
export const makeRunId: Effect.Effect<string> = Effect.serviceOption(TraceIdGenerator.TraceIdGenerator).pipe(
  Effect.flatMap(Option.match({
    onNone: () => Effect.flatMap(TraceIdGenerator.make, (generator) => generator.next),
    onSome: (generator) => generator.next
  }))
)

/** What an agent run is. Only the agent is required: the rest is minted or inherited from the enclosing run. */
export interface RunOptions {
  readonly agentId: string
  /** Defaults to a fresh UUIDv7. */
  readonly runId?: string | undefined
  /** Defaults to the enclosing run's id. */
  readonly parentRunId?: string | undefined
  /** Defaults to the enclosing run's conversation. */
  readonly conversationId?: string | undefined
  readonly input?: unknown
}

/** Runs `self` as one run of an agent: its own span and run id, its parent and conversation named. */
export const agentRun = (options: RunOptions) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(
    Effect.zip(options.runId === undefined ? makeRunId : Effect.succeed(options.runId), currentRun),
    ([runId, enclosing]) => {
      const parentRunId = options.parentRunId ?? Option.getOrUndefined(Option.map(enclosing, (run) => run.runId))
      const conversationId = options.conversationId ??
        Option.getOrUndefined(Option.flatMapNullable(enclosing, (run) => run.conversationId))
      const attributes: Record<string, unknown> = {
        [Attributes.kind]: Kinds.agentRun,
        [Attributes.operation]: "invoke_agent",
        [Attributes.runId]: runId,
        [Attributes.agentId]: options.agentId
      }
      if (parentRunId !== undefined) attributes[Attributes.parentRunId] = parentRunId
      if (conversationId !== undefined) attributes[Attributes.conversationId] = conversationId
      if (options.input !== undefined) attributes[Attributes.input] = options.input
      return self.pipe(
        Effect.locally(currentRunRef, Option.some({ runId, agentId: options.agentId, conversationId })),
        Effect.withSpan(`invoke_agent ${options.agentId}`, { attributes, captureStackTrace: false })
      )
    }
  )

/** What a call is, beyond its tool or model. */
export interface CallOptions {
  /** The id the model gave the tool call; defaults to the span id. */
  readonly callId?: string | undefined
  readonly input?: unknown
  /** The model provider a model call goes to (`gen_ai.provider.name`). */
  readonly provider?: string | undefined
}

const callAttributes = (base: Record<string, unknown>, options: CallOptions | undefined) => {
  if (options?.callId !== undefined) base[Attributes.callId] = options.callId
  if (options?.provider !== undefined) base[Attributes.providerName] = options.provider
  if (options?.input !== undefined) base[Attributes.input] = options.input
  return base
}

/** Runs `self` as one call of a tool; its success value is recorded as the output unless `sg.output` is set. */
export const tool = (name: string, options?: CallOptions) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withSpan(self, `execute_tool ${name}`, {
    attributes: callAttributes({
      [Attributes.kind]: Kinds.tool,
      [Attributes.operation]: "execute_tool",
      [Attributes.tool]: name
    }, options),
    captureStackTrace: false
  })

/** What a model call is, beyond its model. */
export interface InferenceOptions extends CallOptions {
  /** Which try of the model call this is (1 for the first provider of a fallback chain). */
  readonly attempt?: number | undefined
}

/** Runs `self` as one model call; report its tokens from inside with `usage`. */
export const inference = (model: string, options?: InferenceOptions) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  const attributes = callAttributes({
    [Attributes.kind]: Kinds.inference,
    [Attributes.operation]: "chat",
    [Attributes.requestModel]: model
  }, options)
  if (options?.attempt !== undefined) attributes[Attributes.attempt] = options.attempt
  return Effect.withSpan(self, `chat ${model}`, { attributes, captureStackTrace: false })
}

/** Records a model call's token usage on the current span. */
export const usage = (tokens: { readonly input: number; readonly output: number }): Effect.Effect<void> =>
  Effect.annotateCurrentSpan({ [Attributes.inputTokens]: tokens.input, [Attributes.outputTokens]: tokens.output })

/** Records the output of the current call (when its success value is not what should be shown). */
export const output = (value: unknown): Effect.Effect<void> => Effect.annotateCurrentSpan(Attributes.output, value)

/** Marks the current span as rejected by the named circuit breaker. */
export const circuitRejected = (breaker: string): Effect.Effect<void> =>
  Effect.annotateCurrentSpan(Attributes.circuit, breaker)

/** Marks `span` (the root span of a request) as cancelled: its client went away before the answer. */
export const cancelled = (span: { readonly attribute: (key: string, value: unknown) => void }): void =>
  span.attribute(Attributes.cancelled, true)
