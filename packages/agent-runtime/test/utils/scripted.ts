/**
 * Test helpers: a model provider that replies from a script, and a runtime layer over it with fresh breakers.
 */
import * as AiError from "@effect/ai/AiError"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import { type Agent, AgentRuntime, Provider } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { Effect, Layer, Stream } from "effect"

/** What the scripted model sees of a call. */
export interface Turn {
  /** 1 for the first call of the whole provider, and so on. */
  readonly call: number
  /** The last user message. */
  readonly input: string
  /** Tool results given since it. */
  readonly results: ReadonlyArray<Prompt.ToolResultPart>
  /** The tools it was offered. */
  readonly tools: ReadonlyArray<string>
}

/** What the scripted model answers: tool calls, text, a failure, silence, or some text and then a failure. */
export type Reply =
  | { readonly _tag: "calls"; readonly calls: ReadonlyArray<{ readonly name: string; readonly params: unknown }> }
  | { readonly _tag: "text"; readonly text: string }
  | { readonly _tag: "fail"; readonly message: string }
  | { readonly _tag: "stall" }
  | { readonly _tag: "partial"; readonly text: string; readonly message: string }

/** Call these tools. */
export const calls = (...calls: ReadonlyArray<{ readonly name: string; readonly params: unknown }>): Reply => ({
  _tag: "calls",
  calls
})
/** Answer this. */
export const text = (text: string): Reply => ({ _tag: "text", text })
/** Fail as an outage would. */
export const fail = (message: string): Reply => ({ _tag: "fail", message })
/** Send nothing, ever. */
export const stall: Reply = { _tag: "stall" }
/** Stream `text`, then fail. */
export const partial = (text: string, message: string): Reply => ({ _tag: "partial", text, message })

const turnOf = (call: number, options: LanguageModel.ProviderOptions): Turn => {
  const content = options.prompt.content
  let lastUser = -1
  content.forEach((message, i) => {
    if (message.role === "user") lastUser = i
  })
  const user = content[lastUser]
  const input = user?.role === "user"
    ? user.content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("")
    : ""
  const results = content.slice(lastUser + 1).flatMap((message) => (message.role === "tool" ? message.content : []))
  return { call, input, results, tools: options.tools.map((tool) => tool.name) }
}

const outage = (method: string, message: string) =>
  new AiError.UnknownError({ module: "Scripted", method, description: message })

const partsOf = (reply: Reply, call: number): Array<Response.PartEncoded> => {
  const parts: Array<Response.PartEncoded> = reply._tag === "text"
    ? [{ type: "text", text: reply.text }]
    : reply._tag === "calls"
    ? reply.calls.map((c, i) => ({ type: "tool-call", id: `call_${call}_${i}`, name: c.name, params: c.params }))
    : []
  parts.push({
    type: "finish",
    reason: reply._tag === "calls" ? "tool-calls" : "stop",
    usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15 }
  })
  return parts
}

const streamOf = (parts: ReadonlyArray<Response.PartEncoded>): Array<Response.StreamPartEncoded> =>
  parts.flatMap((part): Array<Response.StreamPartEncoded> =>
    part.type === "text"
      ? [
        { type: "text-start", id: "t" },
        { type: "text-delta", id: "t", delta: part.text },
        { type: "text-end", id: "t" }
      ]
      : part.type === "tool-call" || part.type === "finish"
      ? [part]
      : []
  )

/**
 * A provider `name` whose model answers each call with `script(turn)`, reporting 10 input and 5 output tokens, both
 * when asked to generate and to stream.
 */
export const scriptedProvider = (
  name: string,
  script: (turn: Turn) => Reply,
  model = `${name}-model`
): Effect.Effect<Provider.Provider> =>
  Effect.gen(function*() {
    let count = 0
    const generate = (options: LanguageModel.ProviderOptions) =>
      Effect.suspend(() => {
        const call = ++count
        const reply = script(turnOf(call, options))
        if (reply._tag === "fail" || reply._tag === "partial") return Effect.fail(outage("generateText", reply.message))
        if (reply._tag === "stall") return Effect.never
        return Effect.succeed(partsOf(reply, call))
      })
    const stream = (options: LanguageModel.ProviderOptions) =>
      Stream.suspend(() => {
        const call = ++count
        const reply = script(turnOf(call, options))
        switch (reply._tag) {
          case "fail":
            return Stream.fail(outage("streamText", reply.message))
          case "stall":
            return Stream.never
          case "partial":
            return Stream.concat(
              Stream.make<Array<Response.StreamPartEncoded>>(
                { type: "text-start", id: "t" },
                { type: "text-delta", id: "t", delta: reply.text }
              ),
              Stream.fail(outage("streamText", reply.message))
            )
          default:
            return Stream.fromIterable(streamOf(partsOf(reply, call)))
        }
      })
    const languageModel = yield* LanguageModel.make({ generateText: generate, streamText: stream })
    return { name, model, languageModel }
  })

/** A runtime running `agents` on the scripted provider, with fresh breakers (3 failures, 30 s cool-down). */
export const scriptedRuntime = (
  agents: ReadonlyArray<Agent.Agent>,
  script: (turn: Turn) => Reply,
  options?: Omit<AgentRuntime.Options, "agents">
) =>
  AgentRuntime.layer({ agents, ...options }).pipe(
    Layer.provide(
      Layer.effect(Provider.ModelProvider, Effect.map(scriptedProvider("scripted", script), Provider.chain))
    ),
    Layer.provideMerge(CircuitBreaker.layer())
  )

/** The demo runtime with fresh breakers, both in the context. */
export const demoRuntime = (
  options?: Parameters<typeof AgentRuntime.layerDemo>[0],
  runtime?: Omit<AgentRuntime.Options, "agents">
) => AgentRuntime.layerDemo(options, runtime).pipe(Layer.provideMerge(CircuitBreaker.layer()))
