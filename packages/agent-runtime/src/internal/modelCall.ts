/**
 * One model call over a fallback chain of providers. Each try is its own `inference` span (provider, model,
 * attempt, tokens) through the breaker `model:<provider>`:
 *
 * - a provider whose breaker is open is skipped (the span says which breaker);
 * - a provider that fails, outlasts the model timeout, or sends no output within the first-token timeout (all on
 *   `Clock`) hands the call to the next one, unless some of its text already reached the listener: then the call
 *   fails, since what the client has read cannot be taken back;
 * - a 429 or 503 that says `Retry-After` holds that provider's breaker open that long.
 *
 * Every provider is asked to stream (even when nobody listens), so a silent provider is told from a slow one; one
 * whose answer is whole before its first part (`Provider.answer`: the demo) gives that answer at once instead, read
 * part by part as its stream would be, and one whose answer takes no time (`Provider.immediate`) is not timed.
 * When every provider was skipped the call fails with `CircuitOpenError` (the shortest wait); when any failed,
 * with `UpstreamError` naming each provider's failure.
 */
import * as IdGenerator from "@effect/ai/IdGenerator"
import type * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import type * as Tool from "@effect/ai/Tool"
import type * as Toolkit from "@effect/ai/Toolkit"
import { type CircuitBreaker, CircuitOpenError, CircuitTimeoutError } from "@sg/resilience"
import { ExecutionSpan } from "@sg/trace"
import type * as Arr from "effect/Array"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { identity } from "effect/Function"
import * as RuntimeMetrics from "../RuntimeMetrics.js"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import { UpstreamError } from "../Run.js"
import type * as Provider from "../Provider.js"
import type * as RunEvent from "../RunEvent.js"
import * as Upstream from "./upstream.js"

/** What model calls share. */
export interface Env {
  readonly breakers: CircuitBreaker.Service
  /** The longest a call may take, output included. */
  readonly modelTimeout: Duration.Duration
  /** The longest a provider may stay silent before its first output. */
  readonly firstTokenTimeout: Duration.Duration
}

/** A tool call of an answer; `params` as the wire has them (encoded by the tool's schema). */
export interface ToolCall {
  readonly id: string
  readonly name: string
  readonly params: unknown
}

/** What a model call answered. */
export interface Answer {
  readonly text: string
  /** The tool calls sg runs (not those the provider ran itself). */
  readonly toolCalls: ReadonlyArray<ToolCall>
  readonly usage: { readonly input: number; readonly output: number }
  /** The model that answered, when the provider said (`gen_ai.response.model`). */
  readonly responseModel?: string | undefined
  /** Why the answer ended, as the provider said (`gen_ai.response.finish_reasons`). */
  readonly finishReason?: string | undefined
  readonly provider: Provider.Provider
  /** Which try answered: 1 for the chain's first provider. */
  readonly attempt: number
}

/** Who hears about a call as it goes. */
export interface Hooks {
  /** Receives text as it streams; once any text went out, the call no longer falls back. */
  readonly onDelta?: ((delta: string) => Effect.Effect<void>) | undefined
  /** Hears each try's outcome. */
  readonly onAttempt?:
    | ((attempt: Omit<RunEvent.ModelAttempt, "type" | "run_id">) => Effect.Effect<void>)
    | undefined
}

/** What a call asks. */
export interface Request {
  readonly prompt: Prompt.Prompt
  readonly toolkit: Toolkit.WithHandler<Record<string, Tool.Any>>
  /** Recorded as each try's input. */
  readonly input: unknown
}

/** The provider sent nothing within the first-token timeout. */
class FirstTokenTimeout extends Schema.TaggedError<FirstTokenTimeout>()("FirstTokenTimeout", {
  message: Schema.String
}) {}

/** The provider's stream said it failed, or ended before its finish. */
class IncompleteAnswer extends Schema.TaggedError<IncompleteAnswer>()("IncompleteAnswer", {
  message: Schema.String
}) {}

type Outcome =
  | { readonly _tag: "Answered"; readonly answer: Answer }
  | { readonly _tag: "Skipped"; readonly error: CircuitOpenError }
  | { readonly _tag: "Failed"; readonly error: UpstreamError; readonly delivered: boolean }

const errorText = (error: unknown): string => {
  if (typeof error === "string") return error
  if (typeof error === "object" && error !== null) {
    const message = (error as { readonly message?: unknown }).message
    if (typeof message === "string") return message
  }
  return Upstream.oneLine(JSON.stringify(error) ?? String(error))
}

/** What the runtime reads of a stream part, decoded (@effect/ai's `StreamPart`) or as the provider gave it. */
interface Part {
  readonly type: string
  readonly delta?: string
  readonly id?: string
  readonly name?: string
  readonly params?: unknown
  readonly providerExecuted?: boolean | undefined
  readonly usage?: { readonly inputTokens?: number | undefined; readonly outputTokens?: number | undefined }
  readonly error?: unknown
  /** The model that answered (`response-metadata`). */
  readonly modelId?: string | undefined
  /** Why the answer ended (`finish`). */
  readonly reason?: string | undefined
}

/** A tool call's decoded params, encoded again (what the tool's handler decodes, and what the wire carries). */
const encodeParams = (
  toolkit: Toolkit.WithHandler<Record<string, Tool.Any>>,
  name: string,
  params: unknown
): Effect.Effect<unknown> => {
  const tool = toolkit.tools[name]
  return tool === undefined
    ? Effect.succeed(params)
    : Schema.encodeUnknown(tool.parametersSchema as unknown as Schema.Schema<unknown>)(params).pipe(
      Effect.orElseSucceed(() => params)
    )
}

/** The tools of each toolkit as a list, made once per toolkit (a runtime's toolkits are built once, with it). */
const toolLists = new WeakMap<object, ReadonlyArray<Tool.Any>>()

/** What a provider's own stream or answer is asked (what `LanguageModel.streamText` would pass it). */
const providerOptions = (request: Request, span: Tracer.Span): LanguageModel.ProviderOptions => {
  let tools = toolLists.get(request.toolkit)
  if (tools === undefined) {
    tools = Object.values(request.toolkit.tools)
    toolLists.set(request.toolkit, tools)
  }
  return {
    prompt: request.prompt,
    tools,
    toolChoice: tools.length > 0 ? "auto" : "none",
    responseFormat: { type: "text" },
    span
  }
}

/**
 * The provider's stream: its own, asked directly, when it has one (see `Provider.stream`); else @effect/ai's
 * `streamText`, which decodes every part with the toolkit's schema.
 */
const streamOf = (provider: Provider.Provider, request: Request): Effect.Effect<Stream.Stream<Part, unknown>> => {
  if (provider.stream === undefined) {
    return Effect.succeed(
      provider.languageModel.streamText({
        prompt: request.prompt,
        toolkit: request.toolkit,
        disableToolCallResolution: true
      }) as Stream.Stream<Part, unknown>
    )
  }
  const raw = provider.stream
  return Effect.map(Effect.orDie(Effect.currentSpan), (span) =>
    raw(providerOptions(request, span)).pipe(
      Stream.provideService(IdGenerator.IdGenerator, IdGenerator.defaultIdGenerator)
    ) as Stream.Stream<Part, unknown>)
}

/**
 * Reads a provider's stream to its end: the first output within `firstTokenTimeout`, text forwarded to `onDelta`. Its
 * state is made when called: suspend it to read afresh on each run of the effect.
 */
const consume = (
  env: Env,
  provider: Provider.Provider,
  request: Request,
  hooks: Hooks,
  state: { delivered: boolean },
  onOutput: Effect.Effect<void>
): Effect.Effect<Omit<Answer, "provider" | "attempt">, unknown> => {
  let text = ""
  let output = false
  let finish: Part | undefined
  let responseModel: string | undefined
  const calls: Array<Part> = []
  const onPart = (part: Part): Effect.Effect<void, IncompleteAnswer> => {
    if (!output && part.type !== "response-metadata") {
      output = true
      return Effect.zipRight(onOutput, handle(part))
    }
    return handle(part)
  }
  const handle = (part: Part): Effect.Effect<void, IncompleteAnswer> => {
    switch (part.type) {
      case "text-delta":
        if (part.delta === undefined || part.delta === "") return Effect.void
        text += part.delta
        if (hooks.onDelta === undefined) return Effect.void
        state.delivered = true
        return hooks.onDelta(part.delta)
      case "tool-call":
        if (part.providerExecuted !== true) calls.push(part)
        return Effect.void
      case "finish":
        finish = part
        return Effect.void
      case "response-metadata":
        if (typeof part.modelId === "string" && part.modelId !== "") responseModel = part.modelId
        return Effect.void
      case "error":
        return Effect.fail(new IncompleteAnswer({ message: `sent an error: ${errorText(part.error)}` }))
      default:
        return Effect.void
    }
  }
  const firstOutputTimeout = {
    duration: env.firstTokenTimeout,
    onTimeout: () =>
      new FirstTokenTimeout({
        message: `sent no output within ${Duration.format(env.firstTokenTimeout)} (the first-token timeout)`
      })
  }
  const finished = (decoded: boolean): Effect.Effect<Omit<Answer, "provider" | "attempt">, IncompleteAnswer> => {
    if (finish === undefined) {
      return new IncompleteAnswer({ message: "ended its answer before it finished (the stream was cut)" })
    }
    const ended = finish
    const answer = (toolCalls: ReadonlyArray<ToolCall>) => ({
      text,
      toolCalls,
      usage: { input: ended.usage?.inputTokens ?? 0, output: ended.usage?.outputTokens ?? 0 },
      ...(responseModel !== undefined ? { responseModel } : {}),
      ...(typeof ended.reason === "string" ? { finishReason: ended.reason } : {})
    })
    return decoded
      ? Effect.map(
        Effect.forEach(calls, (call) =>
          Effect.map(encodeParams(request.toolkit, call.name ?? "", call.params), (params) => ({
            id: call.id ?? "",
            name: call.name ?? "",
            params
          }))),
        answer
      )
      : Effect.succeed(answer(calls.map((call) => ({ id: call.id ?? "", name: call.name ?? "", params: call.params }))))
  }
  const whole = provider.answer
  if (whole !== undefined) {
    // The parts the stream would send, read in order with no Stream: its channel and pulls cost more than the demo
    // model's own work. The answer is whole before its first part, so the first-token timeout bounds all of it.
    return Effect.flatMap(Effect.orDie(Effect.currentSpan), (span) =>
      whole(providerOptions(request, span)).pipe(
        Effect.provideService(IdGenerator.IdGenerator, IdGenerator.defaultIdGenerator),
        // An answer that takes no time cannot outlast the timeout; the race would fork two fibers and a timer.
        provider.immediate === true ? identity : Effect.timeoutFail(firstOutputTimeout),
        Effect.flatMap((parts) => Effect.forEach(parts as ReadonlyArray<Part>, onPart, { discard: true })),
        Effect.zipRight(Effect.suspend(() => finished(false)))
      ))
  }
  return Effect.scoped(Effect.gen(function*() {
    const pull = yield* Effect.flatMap(streamOf(provider, request), Stream.toPull)
    let ended = false
    const take = Effect.matchEffect(pull, {
      onFailure: Option.match({
        onNone: () =>
          Effect.sync(() => {
            ended = true
          }),
        onSome: (error: unknown) => Effect.fail(error)
      }),
      onSuccess: (chunk) => Effect.forEach(chunk, onPart, { discard: true })
    })
    yield* Effect.repeat(take, { until: () => output || ended }).pipe(Effect.timeoutFail(firstOutputTimeout))
    if (!ended) yield* Effect.repeat(take, { until: () => ended })
    return yield* finished(provider.stream === undefined)
  }))
}

const upstreamError = (provider: Provider.Provider, error: unknown, now: number): UpstreamError => {
  if (error instanceof UpstreamError) return error
  const said = (message: string, status?: number, retryAfter?: Duration.Duration) =>
    new UpstreamError({
      provider: provider.name,
      message: `model provider "${provider.name}" ${message}`,
      ...(status !== undefined ? { status } : {}),
      ...(retryAfter !== undefined ? { retry_after_ms: Duration.toMillis(retryAfter) } : {}),
      cause: error
    })
  if (error instanceof CircuitTimeoutError) return said(`did not answer within ${Duration.format(error.timeout)}`)
  if (error instanceof FirstTokenTimeout || error instanceof IncompleteAnswer) return said(error.message)
  const failure = Upstream.describe(error, now)
  // The mistake a new user makes first: a Chat Completions server (Ollama, vLLM, ...) named as `openai`.
  const hint = provider.name === "openai" && (failure.status === 404 || failure.status === 405)
    ? " (the openai provider calls the Responses API, POST /responses; for a server that speaks Chat Completions use " +
      "SG_MODEL=openai-compat with SG_COMPAT_BASE_URL)"
    : ""
  return said(`${failure.message}${hint}`, failure.status, failure.retryAfter)
}

const briefly = (error: CircuitOpenError): string =>
  Duration.isFinite(error.retryAfter)
    ? `breaker ${error.name} is open (retry in ${Duration.format(error.retryAfter)})`
    : `breaker ${error.name} is isolated`

/** One try on one provider, as its own span. */
const tryProvider = (
  env: Env,
  provider: Provider.Provider,
  attempt: number,
  request: Request,
  hooks: Hooks
): Effect.Effect<Outcome> => {
  const breaker = `model:${provider.name}`
  const state = { delivered: false }
  const report = (status: RunEvent.ModelAttempt["status"], message?: string) =>
    hooks.onAttempt === undefined ? Effect.void : hooks.onAttempt({
      provider: provider.name,
      model: provider.model,
      attempt,
      status,
      ...(message !== undefined ? { message } : {})
    })
  const answering = report("answering")
  const work = Effect.suspend(() => consume(env, provider, request, hooks, state, answering))
  return RuntimeMetrics.timed(
    // An answer that takes no time cannot outlast the model timeout either (see `Provider.immediate`).
    provider.immediate === true
      ? env.breakers.protect(breaker)(work)
      : env.breakers.protect(breaker, { timeout: env.modelTimeout })(work),
    (exit, seconds) =>
      exit._tag === "Success"
        ? RuntimeMetrics.recordModelCall(provider.name, provider.model, "success", seconds, exit.value.usage)
        : RuntimeMetrics.recordModelCall(provider.name, provider.model, RuntimeMetrics.failedCallStatus(exit.cause), seconds)
  )
    .pipe(
      Effect.catchAllDefect((defect) =>
        Effect.fail(
          new UpstreamError({
            provider: provider.name,
            message: `model provider "${provider.name}" failed unexpectedly`,
            cause: defect
          })
        )
      ),
      Effect.catchAll((error): Effect.Effect<never, UpstreamError | CircuitOpenError> =>
        error instanceof CircuitOpenError
          ? Effect.zipRight(ExecutionSpan.circuitRejected(breaker), Effect.fail(error))
          : Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(upstreamError(provider, error, now)))
      ),
      Effect.tap((answer) =>
        Effect.zipRight(
          ExecutionSpan.usage(answer.usage),
          Effect.zipRight(
            answer.responseModel === undefined
              ? Effect.void
              : Effect.annotateCurrentSpan(ExecutionSpan.Attributes.responseModel, answer.responseModel),
            ExecutionSpan.output(describeAnswer(answer.text, answer.toolCalls))
          )
        )
      ),
      ExecutionSpan.inference(provider.model, { input: request.input, provider: provider.name, attempt }),
      Effect.matchEffect({
        onSuccess: (answer): Effect.Effect<Outcome> =>
          Effect.succeed({ _tag: "Answered", answer: { ...answer, provider, attempt } }),
        onFailure: (error): Effect.Effect<Outcome> => {
          if (error instanceof CircuitOpenError) return Effect.succeed({ _tag: "Skipped", error })
          const outcome: Outcome = { _tag: "Failed", error, delivered: state.delivered }
          const retryAfter = error.retry_after_ms
          // The provider said when to come back: stay away that long (a 429's or an overloaded 503's Retry-After).
          return retryAfter !== undefined && (error.status === 429 || error.status === 503)
            ? Effect.as(env.breakers.openFor(breaker, Duration.millis(retryAfter)), outcome)
            : Effect.succeed(outcome)
        }
      }),
      Effect.tap((outcome) =>
        outcome._tag === "Answered"
          ? report("success")
          : outcome._tag === "Skipped"
          ? report("skipped", briefly(outcome.error))
          : report("error", outcome.error.message)
      )
    )
}

/** What the record shows as a model call's output: its text, and the tool calls it asked for. */
export const describeAnswer = (text: string, calls: ReadonlyArray<ToolCall>): string => {
  if (calls.length === 0) return text
  const asked = calls.map((call) => `${call.name}(${JSON.stringify(call.params)})`).join(", ")
  return text === "" ? `tool calls: ${asked}` : `${text}\ntool calls: ${asked}`
}

const allFailed = (
  providers: Arr.NonEmptyReadonlyArray<Provider.Provider>,
  outcomes: ReadonlyArray<Exclude<Outcome, { readonly _tag: "Answered" }>>
): UpstreamError | CircuitOpenError => {
  if (outcomes.length === 1) return outcomes[0]!.error
  const skipped = outcomes.flatMap((outcome) => (outcome._tag === "Skipped" ? [outcome.error] : []))
  if (skipped.length === outcomes.length) {
    const soonest = skipped.reduce((a, b) => (Duration.lessThan(b.retryAfter, a.retryAfter) ? b : a))
    return new CircuitOpenError({
      name: soonest.name,
      retryAfter: soonest.retryAfter,
      message: `every model provider's breaker is open: ${skipped.map(briefly).join("; ")}`
    })
  }
  const attempts = outcomes.map((outcome, i) => {
    const provider = providers[i]!.name
    return outcome._tag === "Skipped"
      ? { provider, message: briefly(outcome.error) }
      : {
        provider,
        ...(outcome.error.status !== undefined ? { status: outcome.error.status } : {}),
        message: outcome.error.message
      }
  })
  return new UpstreamError({
    provider: providers.map((provider) => provider.name).join(","),
    message: `every model provider failed: ${attempts.map((a) => a.message).join("; ")}`,
    attempts
  })
}

/** Calls the chain: the first provider that answers wins (see the module comment). */
export const call = (
  env: Env,
  providers: Arr.NonEmptyReadonlyArray<Provider.Provider>,
  request: Request,
  hooks: Hooks
): Effect.Effect<Answer, UpstreamError | CircuitOpenError> =>
  Effect.gen(function*() {
    const failed: Array<Exclude<Outcome, { readonly _tag: "Answered" }>> = []
    for (let i = 0; i < providers.length; i++) {
      const outcome = yield* tryProvider(env, providers[i]!, i + 1, request, hooks)
      if (outcome._tag === "Answered") return outcome.answer
      if (outcome._tag === "Failed" && outcome.delivered) {
        return yield* new UpstreamError({
          provider: outcome.error.provider,
          message: `${outcome.error.message} (after part of its answer had been sent: no fallback)`,
          ...(outcome.error.status !== undefined ? { status: outcome.error.status } : {})
        })
      }
      failed.push(outcome)
    }
    return yield* allFailed(providers, failed)
  })
