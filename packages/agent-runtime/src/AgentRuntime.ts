/**
 * The agent runtime: the service that runs agents, and its `layer…` constructors over @effect/ai. The gateway serves
 * `POST /v1/runs` and `POST /v1/chat/completions` through it. What a run is asked, what it answers and why it fails
 * live in `Run` (re-exported here).
 *
 * A run: the agent is resolved (`UnknownAgent` lists the known ones), the current trace (`CurrentTrace`; a fresh one
 * when there is none) moves to `INFERRING` through `TraceLifecycle` when both are in context, and the agent's step
 * loop runs as an `agent_run` span. Each step is a model call over the agent's fallback chain of providers, each try
 * through the breaker `model:<provider>` as an `inference` span with its provider, attempt and token usage (see
 * `internal/modelCall.ts`); each tool call the model asks for runs through the breaker `tool:<name>` as a `tool`
 * span, and whatever goes wrong with it (a failure, a rejection, a defect) goes back to the model as a tool error
 * while the run goes on. A chain that fails fails the run with `UpstreamError`, or `CircuitOpenError` when every
 * breaker of it is open. A run whose last allowed model call still asks for tools ends with status `error` (its
 * output says so); one that outlasts its agent's own timeout fails with `RunTimeout`; a run tree that outspends one
 * of its budgets (`Budget`) fails with `BudgetExceeded`. */
import { CircuitBreaker } from "@sg/resilience"
import { CurrentTrace, TraceId, TraceIdGenerator, TraceLifecycle } from "@sg/trace"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Tracer from "effect/Tracer"
import type * as Agent from "./Agent.js"
import * as Budget from "./Budget.js"
import * as Demo from "./Demo.js"
import * as Tracker from "./internal/budget.js"
import * as Runner from "./internal/runner.js"
import * as Provider from "./Provider.js"
import type { HistoryMessage, RunError, RunRequest, RunResult } from "./Run.js"
import type * as RunEvent from "./RunEvent.js"

/** The request and result schemas and the errors of a run (see `Run`), re-exported. */
export * from "./Run.js"

/** How to run, beyond the request. */
export interface RunOptions {
  /**
   * Messages before the input (a chat's history, oldest first): after the agent's instructions, before the input.
   */
  readonly history?: ReadonlyArray<HistoryMessage> | undefined
  /** Hears the run's events as they happen (see `RunEvent`); the run waits for it. */
  readonly onEvent?: RunEvent.Listener | undefined
  /**
   * Whether `onEvent` also hears the model's text as it streams (`text.delta`): a streamed run. Once some text went
   * out, what the client read cannot be taken back, so that model call no longer falls back to another provider.
   */
  readonly textDeltas?: boolean | undefined
}

/** Runs agents. */
export interface Service {
  /** Runs one agent (the default one when `agent` is absent) on `input`, under the current trace. */
  readonly run: (request: RunRequest, options?: RunOptions) => Effect.Effect<RunResult, RunError>
  /** The agents this runtime knows. */
  readonly agents: ReadonlyArray<string>
  /** The agent a request without `agent` runs. */
  readonly defaultAgent: string
}

/** The agent runtime. */
export class AgentRuntime extends Context.Tag("@sg/agent-runtime/AgentRuntime")<AgentRuntime, Service>() {}

/** The runtime was given agents or options that make no sense; `message` names the agent and the field. */
export class InvalidAgents extends Schema.TaggedError<InvalidAgents>("@sg/agent-runtime/InvalidAgents")(
  "InvalidAgents",
  { message: Schema.String }
) {}

/** What the runtime runs. Only `agents` is required. */
export interface Options {
  readonly agents: ReadonlyArray<Agent.Agent>
  /** The agent a request without `agent` runs; defaults to the first. */
  readonly defaultAgent?: string | undefined
  /** Providers agents may name besides those of the `ModelProvider` chain in context. */
  readonly providers?: ReadonlyArray<Provider.Provider> | undefined
  /** A model call slower than this (its whole answer) fails and counts against its breaker; 60 seconds. */
  readonly modelTimeout?: Duration.DurationInput | undefined
  /** A provider that sends no output this long after the call is skipped for the next one; 10 seconds. */
  readonly firstTokenTimeout?: Duration.DurationInput | undefined
  /** How many sub-agents deep runs may nest; 3. */
  readonly maxDepth?: number | undefined
  /** What each run tree may spend (`Budget.defaults` for what is left out). */
  readonly budgets?: Budget.Input | undefined
}

/** Defaults of `Options`. */
export const defaults = {
  modelTimeout: Duration.seconds(60),
  firstTokenTimeout: Duration.seconds(10),
  maxDepth: 3
} as const

const agentName = /^[A-Za-z0-9_.-]{1,64}$/

const positiveDuration = (name: string, input: Duration.DurationInput | undefined): string | undefined => {
  if (input === undefined) return undefined
  const duration = Duration.decode(input)
  return Duration.isFinite(duration) && Duration.toMillis(duration) > 0
    ? undefined
    : `${name} must be finite and positive`
}

const validate = (options: Options, providers: ReadonlyMap<string, Provider.Provider>): string | undefined => {
  if (options.agents.length === 0) return "at least one agent is required"
  const seen = new Set<string>()
  for (const agent of options.agents) {
    const where = `agent "${agent.name}"`
    if (!agentName.test(agent.name)) return `${where}: name must be 1 to 64 letters, digits, '_', '.' or '-'`
    if (seen.has(agent.name)) return `${where}: defined twice`
    seen.add(agent.name)
    if (!Number.isInteger(agent.maxSteps) || agent.maxSteps < 1) return `${where}: maxSteps must be an integer >= 1`
    if (!Number.isInteger(agent.toolConcurrency) || agent.toolConcurrency < 1) {
      return `${where}: toolConcurrency must be an integer >= 1`
    }
    if (agent.timeout !== undefined && (!Duration.isFinite(agent.timeout) || Duration.toMillis(agent.timeout) <= 0)) {
      return `${where}: timeout must be finite and positive`
    }
    if (agent.provider !== undefined && !providers.has(agent.provider)) {
      const known = Array.from(providers.keys()).join(", ")
      return `${where}: unknown provider "${agent.provider}"; known providers: ${known}`
    }
  }
  if (options.defaultAgent !== undefined && !seen.has(options.defaultAgent)) {
    return `defaultAgent "${options.defaultAgent}" is not one of the agents`
  }
  if (options.maxDepth !== undefined && (!Number.isInteger(options.maxDepth) || options.maxDepth < 0)) {
    return "maxDepth must be an integer >= 0"
  }
  return positiveDuration("modelTimeout", options.modelTimeout) ??
    positiveDuration("firstTokenTimeout", options.firstTokenTimeout) ??
    Budget.validate(Budget.fromInput(options.budgets))
}

/**
 * Builds the runtime: checks the agents, builds their toolkits and finds their providers. Needs the breakers and the
 * default `ModelProvider` chain; uses the `TraceIdGenerator` in context when there is one (at build or at run time)
 * to mint trace ids for runs made outside any trace, else the process-wide one.
 */
export const make = (
  options: Options
): Effect.Effect<Service, InvalidAgents, CircuitBreaker.CircuitBreaker | Provider.ModelProvider> =>
  Effect.gen(function*() {
    const breakers = yield* CircuitBreaker.CircuitBreaker
    const chain = yield* Provider.ModelProvider
    const providers = new Map<string, Provider.Provider>()
    for (const provider of chain.providers) providers.set(provider.name, provider)
    for (const provider of options.providers ?? []) providers.set(provider.name, provider)
    const invalid = validate(options, providers)
    if (invalid !== undefined) return yield* new InvalidAgents({ message: invalid })
    const agents = new Map<string, Runner.Resolved>()
    for (const agent of options.agents) {
      const tools = yield* agent.tools
      const chosen = agent.provider === undefined ? chain.providers : [providers.get(agent.provider)!] as const
      agents.set(agent.name, { agent, tools, providers: chosen })
    }
    const env: Runner.Env = {
      agents,
      model: {
        breakers,
        modelTimeout: Duration.decode(options.modelTimeout ?? defaults.modelTimeout),
        firstTokenTimeout: Duration.decode(options.firstTokenTimeout ?? defaults.firstTokenTimeout)
      },
      maxDepth: options.maxDepth ?? defaults.maxDepth
    }
    const budgets = Budget.fromInput(options.budgets)
    const defaultAgent = options.defaultAgent ?? options.agents[0]!.name
    const builtGenerator = yield* Effect.serviceOption(TraceIdGenerator.TraceIdGenerator).pipe(
      Effect.flatMap(Option.match({ onNone: () => TraceIdGenerator.make, onSome: Effect.succeed }))
    )
    const mint = Effect.serviceOption(TraceIdGenerator.TraceIdGenerator).pipe(
      Effect.flatMap((generator) => Option.getOrElse(generator, () => builtGenerator).next)
    )

    const run = (request: RunRequest, runOptions?: RunOptions): Effect.Effect<RunResult, RunError> =>
      Effect.gen(function*() {
        const resolved = yield* Runner.resolve(env, request.agent ?? defaultAgent)
        const current = yield* CurrentTrace.traceId
        if (Option.isSome(current)) {
          const lifecycle = yield* Effect.serviceOption(TraceLifecycle.TraceLifecycle)
          if (Option.isSome(lifecycle)) yield* lifecycle.value.transition("INFERRING")
        }
        const traceId = Option.isSome(current) ? current.value : yield* mint
        const tracker = yield* Tracker.make(budgets)
        const result = Runner.runRoot(env, {
          resolved,
          input: request.input,
          history: runOptions?.history ?? [],
          conversationId: request.conversation_id,
          metadata: request.metadata ?? {},
          depth: 0,
          traceId,
          tracker,
          onEvent: runOptions?.onEvent,
          textDeltas: runOptions?.textDeltas === true
        })
        return yield* inTrace(traceId, result)
      })

    return AgentRuntime.of({ run, agents: Array.from(agents.keys()), defaultAgent })
  })

/**
 * Runs `effect` as part of the trace `id`: `CurrentTrace` says so, and unless the current span already belongs to
 * that trace, a remote parent span of it does too, so every span the run opens carries the id.
 */
const inTrace = <A, E>(id: TraceId.TraceId, effect: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  const hex = TraceId.toHex(id)
  const traced: Effect.Effect<A, E> = Effect.provideService(effect, CurrentTrace.CurrentTrace, { traceId: id })
  const external = Tracer.externalSpan({ traceId: hex, spanId: hex.slice(16), sampled: true })
  return Effect.flatMap(
    // The parent span read as an Option: `Effect.option(Effect.currentParentSpan)` builds (and throws away) a
    // `NoSuchElementException`, stack trace and all, for every run made outside any span.
    Effect.serviceOption(Tracer.ParentSpan),
    (parent): Effect.Effect<A, E> =>
      Option.isSome(parent) && parent.value.traceId === hex ? traced : Effect.withParentSpan(traced, external)
  )
}

/** The runtime over the breakers and the default `ModelProvider` chain in context. */
export const layer = (
  options: Options
): Layer.Layer<AgentRuntime, InvalidAgents, CircuitBreaker.CircuitBreaker | Provider.ModelProvider> =>
  Layer.effect(AgentRuntime, make(options))

/** The demo agents (`Demo.agents`: `assistant`, `researcher`) on the demo model; needs only the breakers. */
export const layerDemo = (
  options?: Demo.ModelOptions,
  runtime?: Omit<Options, "agents">
): Layer.Layer<AgentRuntime, InvalidAgents, CircuitBreaker.CircuitBreaker> =>
  layer({ ...runtime, agents: Demo.agents }).pipe(Layer.provide(Provider.layerDemo(options)))

/** `SG_FIRST_TOKEN_TIMEOUT` (10 seconds) and the budgets (`Budget.config`), as runtime options. */
export const optionsConfig: Config.Config<Omit<Options, "agents">> = Config.all({
  firstTokenTimeout: Config.mapOrFail(
    Config.duration("SG_FIRST_TOKEN_TIMEOUT").pipe(Config.withDefault(defaults.firstTokenTimeout)),
    (timeout) =>
      Duration.isFinite(timeout) && Duration.greaterThan(timeout, Duration.zero)
        ? Either.right(timeout)
        : Either.left(
          ConfigError.InvalidData(["SG_FIRST_TOKEN_TIMEOUT"], "must be a finite duration greater than zero")
        )
  ).pipe(Config.withDescription("how long a model provider may stay silent before the next one is asked")),
  budgets: Budget.config
})

/** What `layerConfig` takes besides the agents: the options the environment does not set. */
export type ConfigOptions = Omit<Options, "agents" | "firstTokenTimeout" | "budgets">

/**
 * `agents` on the chain `SG_MODEL` names (see `Provider.config`), with `SG_FIRST_TOKEN_TIMEOUT` and the budgets
 * `SG_MAX_STEPS`, `SG_MAX_TOKENS`, `SG_RUN_TIMEOUT`, `SG_MAX_SUBAGENTS`; needs only the breakers.
 * `layerConfig(Demo.agents)` is what `sg serve` runs.
 */
export const layerConfig = (
  agents: ReadonlyArray<Agent.Agent>,
  options?: ConfigOptions
): Layer.Layer<AgentRuntime, ConfigError.ConfigError | InvalidAgents, CircuitBreaker.CircuitBreaker> =>
  Layer.unwrapEffect(
    Effect.map(optionsConfig, (configured) => layer({ ...options, ...configured, agents }))
  ).pipe(Layer.provide(Provider.layerConfig))
