/**
 * A gateway on a free port over the real `AgentRuntime`, for the streaming, fallback, budget and Chat Completions
 * tests: two agents (`assistant` with an `echo` tool, `plain` without) on a chain of two scripted providers
 * (`primary`, then `backup`), the memory store with a journal of lifecycle writes, real breakers and the recorder
 * (every success kept). What the model does depends on the last user message:
 *
 * - `tools: <text>`: calls `echo` with `<text>`, then answers `echoed <text>`;
 * - `loop`: calls `echo` every time (never answers);
 * - `primary-down ...`: `primary` answers HTTP 503 before any output; `backup` answers;
 * - `all-down`: both fail before any output;
 * - `cut`: streams `partial ` and then fails (the connection was cut);
 * - `drip`: streams `tick ` every 50 ms, forever;
 * - `count`: answers how many messages it was given (`<n> messages`);
 * - anything else: streams `Hel`, `lo: <input>` with 7 input and 3 output tokens per call.
 */
import * as AiError from "@effect/ai/AiError"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import { NodeHttpServer } from "@effect/platform-node"
import { Agent, AgentRuntime, Provider } from "@sg/agent-runtime"
import { ExecutionStore, Recorder, TraceIdGenerator, TraceLifecycle, TraceStore } from "@sg/trace"
import { Duration, Effect, Layer, Schedule, Schema, Stream } from "effect"
import * as Gateway from "../../src/Gateway.js"
import { breakers, layerJournaled } from "./TestGateway.js"

const Echo = Tool.make("echo", {
  description: "Says its text back",
  parameters: { text: Schema.String },
  success: Schema.String
})
const toolkit = Toolkit.make(Echo)

/** The agents: `assistant` (default, tool `echo`) and `plain` (no tools). */
export const agents = [
  Agent.make({
    name: "assistant",
    instructions: "answer",
    toolkit,
    handlers: { echo: ({ text }) => Effect.succeed(`echo: ${text}`) }
  }),
  Agent.withoutTools({ name: "plain", instructions: "" })
]

const lastUser = (prompt: Prompt.Prompt): string => {
  for (let i = prompt.content.length - 1; i >= 0; i--) {
    const message = prompt.content[i]!
    if (message.role === "user") {
      return message.content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("")
    }
  }
  return ""
}

const hasResults = (prompt: Prompt.Prompt): boolean => prompt.content.at(-1)?.role === "tool"

const finish = (reason: "stop" | "tool-calls"): Response.StreamPartEncoded => ({
  type: "finish",
  reason,
  usage: { inputTokens: 7, outputTokens: 3, totalTokens: 10 }
})

const text = (...pieces: ReadonlyArray<string>): Array<Response.StreamPartEncoded> => [
  { type: "text-start", id: "t" },
  ...pieces.map((delta): Response.StreamPartEncoded => ({ type: "text-delta", id: "t", delta })),
  { type: "text-end", id: "t" },
  finish("stop")
]

const unavailable = (name: string) =>
  new AiError.UnknownError({ module: "Scripted", method: "streamText", description: `${name} is down (HTTP 503)` })

const script = (name: string) => (options: LanguageModel.ProviderOptions): Stream.Stream<
  Response.StreamPartEncoded,
  AiError.AiError
> => {
  const input = lastUser(options.prompt)
  if (input === "all-down" || (name === "primary" && input.startsWith("primary-down"))) {
    return Stream.fail(unavailable(name))
  }
  if (input === "cut") {
    return Stream.concat(
      Stream.make<Array<Response.StreamPartEncoded>>({ type: "text-start", id: "t" }, {
        type: "text-delta",
        id: "t",
        delta: "partial "
      }),
      Stream.fail(new AiError.UnknownError({ module: "Scripted", method: "streamText", description: "connection cut" }))
    )
  }
  if (input === "drip") {
    return Stream.concat(
      Stream.make<Array<Response.StreamPartEncoded>>({ type: "text-start", id: "t" }),
      Stream.repeatEffectWithSchedule(
        Effect.succeed<Response.StreamPartEncoded>({ type: "text-delta", id: "t", delta: "tick " }),
        Schedule.spaced(Duration.millis(50))
      )
    )
  }
  const call = (args: string): Array<Response.StreamPartEncoded> => [
    { type: "tool-call", id: `call_${options.prompt.content.length}`, name: "echo", params: { text: args } },
    finish("tool-calls")
  ]
  if (input === "loop") return Stream.fromIterable(call("again"))
  if (input === "count") return Stream.fromIterable(text(`${options.prompt.content.length} messages`))
  if (input.startsWith("tools: ")) {
    const args = input.slice("tools: ".length)
    return Stream.fromIterable(hasResults(options.prompt) ? text(`echoed ${args}`) : call(args))
  }
  return Stream.fromIterable(text("Hel", `lo: ${input}`))
}

const provider = (name: string) =>
  Effect.map(
    LanguageModel.make({
      generateText: () => Effect.fail(unavailable(name)),
      streamText: script(name)
    }),
    (languageModel): Provider.Provider => ({ name, model: `${name}-1`, languageModel })
  )

const chain = Layer.effect(
  Provider.ModelProvider,
  Effect.map(Effect.all([provider("primary"), provider("backup")]), ([a, b]) => Provider.chain(a, b))
)

const recording = Layer.unwrapEffect(
  Effect.map(ExecutionStore.ExecutionStore, (store) =>
    Recorder.layer({ save: store.save, sampleSuccess: 1, grace: Duration.millis(5) }))
)

/** What else a test gateway runs with. */
export interface Extras<E, R> {
  /** The trace and execution stores (memory by default), the trace store journaled. */
  readonly store?: Layer.Layer<TraceStore.TraceStore | ExecutionStore.ExecutionStore, E, R>
  /** The gateway's own options. */
  readonly gateway?: Gateway.Options
}

/**
 * The gateway over the real runtime; `options` go to the runtime (budgets, timeouts), `extras` choose the store and
 * the gateway's options. Services the gateway reads when present (`ApiKeys`, `RateLimit.RequestLimit`) are provided
 * around it by the caller.
 */
export const make = <E = never, R = never>(options?: Omit<AgentRuntime.Options, "agents">, extras?: Extras<E, R>) => {
  const store = (extras?.store ?? Layer.merge(TraceStore.layerMemory, ExecutionStore.layerMemory)) as Layer.Layer<
    TraceStore.TraceStore | ExecutionStore.ExecutionStore,
    E,
    R
  >
  const services = AgentRuntime.layer({ ...options, agents }).pipe(
    Layer.provide(chain),
    Layer.provideMerge(TraceLifecycle.layer(extras?.store === undefined ? undefined : { deadline: "10 seconds" })),
    Layer.provideMerge(Layer.mergeAll(layerJournaled(store), breakers, TraceIdGenerator.layer)),
    Layer.orDie
  )
  return Gateway.layer(extras?.gateway).pipe(
    Layer.provideMerge(recording),
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(services)
  )
}
