import * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import { describe, expect, it } from "@effect/vitest"
import { Demo } from "@sg/agent-runtime"
import { Chunk, Effect, Stream } from "effect"

const ask = (input: string) =>
  Effect.gen(function*() {
    const model = yield* Demo.makeModel()
    const { toolkit } = yield* Demo.assistant.tools
    return yield* model.generateText({ prompt: input, toolkit, disableToolCallResolution: true })
  })

const callsOf = (response: { readonly content: ReadonlyArray<{ readonly type: string }> }) =>
  response.content.flatMap((part) => {
    if (part.type !== "tool-call") return []
    const call = part as Response.ToolCallPart<string, unknown>
    return [[call.name, call.params]]
  })

describe("Demo.makeModel", () => {
  it.effect("decides deterministically which tools to call from the input", () =>
    Effect.gen(function*() {
      expect(callsOf(yield* ask("what time is it?"))).toEqual([["clock", {}]])
      expect(callsOf(yield* ask("What is 6 * 7, and the date today?"))).toEqual([
        ["clock", {}],
        ["calculator", { expression: "6 * 7" }]
      ])
      expect(callsOf(yield* ask("please research rate limiting with 5 researchers"))).toEqual([
        ["fan_out", { topic: "rate limiting", count: 5 }]
      ])
      expect(callsOf(yield* ask("fan out on caching"))).toEqual([["fan_out", { topic: "caching", count: 3 }]])
      expect(callsOf(yield* ask("research at most 12 agents"))).toEqual([["fan_out", { topic: "at most", count: 8 }]])
      const plain = yield* ask("hello there")
      expect(callsOf(plain)).toEqual([])
      expect(plain.text).toMatch(/^I am the demo model\. .* You said: "hello there"$/)
    }))

  it.effect("reports usage at one token per four characters", () =>
    Effect.gen(function*() {
      const response = yield* ask("hello there")
      expect(response.usage.inputTokens).toBe(Demo.estimateTokens("hello there"))
      expect(response.usage.outputTokens).toBe(Demo.estimateTokens(response.text))
      expect(response.finishReason).toBe("stop")
      expect((yield* ask("what time is it")).finishReason).toBe("tool-calls")
    }))

  it.effect("answers without tools when tool results follow the input", () =>
    Effect.gen(function*() {
      const model = yield* Demo.makeModel()
      const prompt = Prompt.fromMessages([
        Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: "what is 2+2" })] }),
        Prompt.makeMessage("assistant", {
          content: [Prompt.makePart("tool-call", {
            id: "c1",
            name: "calculator",
            params: { expression: "2+2" },
            providerExecuted: false
          })]
        }),
        Prompt.makeMessage("tool", {
          content: [Prompt.makePart("tool-result", {
            id: "c1",
            name: "calculator",
            isFailure: false,
            result: { expression: "2+2", value: 4 },
            providerExecuted: false
          })]
        })
      ])
      const response = yield* model.generateText({ prompt })
      expect(response.text).toBe("2+2 = 4.")
    }))

  it.effect("fails like an outage on a fail: input or when failWhen says so", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ask("FAIL: now"))
      expect(error._tag).toBe("UnknownError")
      const model = yield* Demo.makeModel({ failWhen: (input) => input.includes("down") })
      expect((yield* Effect.flip(model.generateText({ prompt: "is it down?" })))._tag).toBe("UnknownError")
      expect((yield* model.generateText({ prompt: "is it up?" })).text).toMatch(/^I am the demo model/)
    }))

  it.effect("streams the same answer", () =>
    Effect.gen(function*() {
      const model = yield* Demo.makeModel()
      const parts = yield* Stream.runCollect(model.streamText({ prompt: "hello" }))
      const text = Chunk.toArray(parts).flatMap((part) => (part.type === "text-delta" ? [part.delta] : [])).join("")
      expect(text).toBe((yield* model.generateText({ prompt: "hello" })).text)
    }))
})
