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

/** What the scripted model answers: tool calls, text, or a failure. */
export type Reply =
  | { readonly _tag: "calls"; readonly calls: ReadonlyArray<{ readonly name: string; readonly params: unknown }> }
  | { readonly _tag: "text"; readonly text: string }
  | { readonly _tag: "fail"; readonly message: string }

/** Call these tools. */
export const calls = (...calls: ReadonlyArray<{ readonly name: string; readonly params: unknown }>): Reply => ({
  _tag: "calls",
  calls
})
/** Answer this. */
export const text = (text: string): Reply => ({ _tag: "text", text })
/** Fail as an outage would. */
export const fail = (message: string): Reply => ({ _tag: "fail", message })

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

/** A provider `name` whose model answers each call with `script(turn)`, reporting 10 input and 5 output tokens. */
export const scriptedProvider = (
  name: string,
  script: (turn: Turn) => Reply,
  model = `${name}-model`
): Effect.Effect<Provider.Provider> =>
  Effect.gen(function*() {
    let count = 0
    const generate = (options: LanguageModel.ProviderOptions) =>
      Effect.suspend(() => {
        const reply = script(turnOf(++count, options))
        if (reply._tag === "fail") {
          return Effect.fail(
            new AiError.UnknownError({ module: "Scripted", method: "generateText", description: reply.message })
          )
        }
        const parts: Array<Response.PartEncoded> = reply._tag === "text"
          ? [{ type: "text", text: reply.text }]
          : reply.calls.map((call, i) => ({
            type: "tool-call",
            id: `call_${count}_${i}`,
            name: call.name,
            params: call.params
          }))
        parts.push({
          type: "finish",
          reason: reply._tag === "text" ? "stop" : "tool-calls",
          usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15 }
        })
        return Effect.succeed(parts)
      })
    const languageModel = yield* LanguageModel.make({
      generateText: generate,
      streamText: () =>
        Stream.fail(
          new AiError.UnknownError({ module: "Scripted", method: "streamText", description: "it does not stream" })
        )
    })
    return { name, model, languageModel }
  })

/** A runtime running `agents` on the scripted provider, with fresh breakers (3 failures, 30 s cool-down). */
export const scriptedRuntime = (
  agents: ReadonlyArray<Agent.Agent>,
  script: (turn: Turn) => Reply,
  options?: Omit<AgentRuntime.Options, "agents">
) =>
  AgentRuntime.layer({ agents, ...options }).pipe(
    Layer.provide(Layer.effect(Provider.ModelProvider, scriptedProvider("scripted", script))),
    Layer.provideMerge(CircuitBreaker.layer())
  )

/** The demo runtime with fresh breakers, both in the context. */
export const demoRuntime = (options?: Parameters<typeof AgentRuntime.layerDemo>[0]) =>
  AgentRuntime.layerDemo(options).pipe(Layer.provideMerge(CircuitBreaker.layer()))
