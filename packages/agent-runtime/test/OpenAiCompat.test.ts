import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { AgentRuntime, OpenAiCompat } from "@sg/agent-runtime"
import { CircuitBreaker, CircuitOpenError } from "@sg/resilience"
import { Chunk, Duration, Effect, Fiber, Redacted, Schema, Stream, TestClock } from "effect"
import * as Wire from "./utils/chatWire.js"
import { configured, run, waitUntil } from "./utils/configured.js"
import { data, events, fakeUpstream, stall } from "./utils/fakeUpstream.js"

const Weather = Tool.make("get_weather", {
  description: "The weather somewhere",
  parameters: { location: Schema.String },
  success: Schema.String
})
const toolkit = Toolkit.make(Weather)
const withHandlers = Effect.provide(toolkit, toolkit.toLayer({ get_weather: () => Effect.succeed("sunny") }))

const model = (url: string, apiKey?: string) =>
  OpenAiCompat.make({
    baseUrl: `${url}/v1/`,
    model: "gpt-4o-mini",
    ...(apiKey !== undefined ? { apiKey: Redacted.make(apiKey) } : {})
  }).pipe(Effect.provide(FetchHttpClient.layer))

const compat = (url: string, extra: Record<string, string> = {}) => ({
  SG_MODEL: "openai-compat",
  SG_COMPAT_BASE_URL: `${url}/v1`,
  SG_COMPAT_MODEL: "llama3.2",
  ...extra
})

describe("openai-compat (Chat Completions), against a fake server speaking its wire format", () => {
  describe("the LanguageModel", () => {
    it.scopedLive("non-streaming: text and usage; the prompt as messages", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => Wire.completion("Hello! How can I assist you today?"))
        const lm = yield* model(server.url, "sk-local")
        const response = yield* lm.generateText({
          prompt: [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }]
        })
        expect(response.text).toBe("Hello! How can I assist you today?")
        expect(response.usage).toMatchObject({ inputTokens: 19, outputTokens: 10, totalTokens: 29 })
        expect(response.finishReason).toBe("stop")
        const [request] = server.received
        expect([request!.method, request!.path, request!.headers.authorization]).toEqual([
          "POST",
          "/v1/chat/completions",
          "Bearer sk-local"
        ])
        expect(request!.body).toEqual({
          model: "gpt-4o-mini",
          messages: [{ role: "system", content: "be brief" }, { role: "user", content: "hi" }]
        })
      }))

    it.scopedLive("non-streaming: a function call, decoded by the tool's schema; tools and tool_choice sent", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() =>
          Wire.toolCallCompletion("call_abc123", "get_weather", "{\n\"location\": \"Boston, MA\"\n}")
        )
        const lm = yield* model(server.url)
        const response = yield* lm.generateText({
          prompt: "weather?",
          toolkit: yield* withHandlers,
          disableToolCallResolution: true
        })
        expect(response.toolCalls.map((call) => [call.id, call.name, call.params])).toEqual([
          ["call_abc123", "get_weather", { location: "Boston, MA" }]
        ])
        expect(response.finishReason).toBe("tool-calls")
        const body = server.received[0]!.body
        expect(server.received[0]!.headers.authorization).toBeUndefined()
        expect(body.tool_choice).toBe("auto")
        expect(body.tools).toEqual([{
          type: "function",
          function: {
            name: "get_weather",
            description: "The weather somewhere",
            parameters: expect.objectContaining({ type: "object", required: ["location"] })
          }
        }])
      }))

    it.scopedLive("streaming: text deltas in order, usage from the final chunk, stream_options sent", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() =>
          Wire.streamedText(["Hel", "lo", " there"], { prompt: 9, completion: 3 })
        )
        const lm = yield* model(server.url)
        const parts = Chunk.toArray(yield* Stream.runCollect(lm.streamText({ prompt: "hi" })))
        expect(parts.flatMap((p) => (p.type === "text-delta" ? [p.delta] : []))).toEqual(["Hel", "lo", " there"])
        const finish = parts.find((p) => p.type === "finish")
        expect(finish).toMatchObject({ reason: "stop", usage: { inputTokens: 9, outputTokens: 3, totalTokens: 12 } })
        expect(server.received[0]!.headers.accept).toBe("text/event-stream")
        expect(server.received[0]!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } })
      }))

    it.scopedLive("streaming: a function call's arguments are assembled from their deltas", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() =>
          Wire.streamedToolCall("call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather", [
            "{\"",
            "location",
            "\":\"",
            "Paris",
            "\"}"
          ])
        )
        const lm = yield* model(server.url)
        const parts = Chunk.toArray(
          yield* Stream.runCollect(
            lm.streamText({
              prompt: "weather in Paris?",
              toolkit: yield* withHandlers,
              disableToolCallResolution: true
            })
          )
        )
        const calls = parts.flatMap((p) => (p.type === "tool-call" ? [[p.id, p.name, p.params]] : []))
        expect(calls).toEqual([["call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather", { location: "Paris" }]])
        expect(parts.filter((p) => p.type === "tool-params-delta")).toHaveLength(5)
        expect(parts.find((p) => p.type === "finish")).toMatchObject({ reason: "tool-calls" })
      }))

    it.scopedLive("streaming: an error event inside the stream fails it with the provider's message", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() =>
          events([data({ error: { message: "model is overloaded", type: "server_error", code: null } })])
        )
        const lm = yield* model(server.url)
        const error = yield* Effect.flip(Stream.runDrain(lm.streamText({ prompt: "hi" })))
        expect(error.message).toContain("stream error: model is overloaded")
      }))
  })

  describe("as the runtime's provider (SG_MODEL=openai-compat)", () => {
    it.scopedLive("runs the assistant: a streamed calculator call, its result as role tool, then the answer", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream((_, n) =>
          n === 1
            ? Wire.streamedToolCall("call_1", "calculator", ["{\"expression\":", "\"6*7\"}"])
            : Wire.streamedText(["6*7 ", "is 42."])
        )
        const result = yield* run("what is 6*7?").pipe(configured(compat(server.url, { SG_COMPAT_API_KEY: "sk-x" })))
        expect(result).toMatchObject({ status: "success", output: "6*7 is 42.", steps: 2 })
        expect(server.received.map((r) => [r.path, r.headers.authorization, r.body.model])).toEqual([
          ["/v1/chat/completions", "Bearer sk-x", "llama3.2"],
          ["/v1/chat/completions", "Bearer sk-x", "llama3.2"]
        ])
        const first = server.received[0]!.body
        expect((first.tools as Array<{ function: { name: string } }>).map((t) => t.function.name)).toEqual([
          "clock",
          "calculator",
          "fan_out"
        ])
        const second = server.received[1]!.body.messages as Array<Record<string, unknown>>
        expect(second.slice(-2)).toEqual([
          {
            role: "assistant",
            content: null,
            tool_calls: [{
              id: "call_1",
              type: "function",
              function: { name: "calculator", arguments: JSON.stringify({ expression: "6*7" }) }
            }]
          },
          { role: "tool", tool_call_id: "call_1", content: JSON.stringify({ expression: "6*7", value: 42 }) }
        ])
      }))

    it.scopedLive("an error body is UpstreamError naming the provider, the status and the upstream's message", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() =>
          Wire.error(401, "Incorrect API key provided: sk-abc.", "invalid_request_error", "invalid_api_key")
        )
        const error = yield* Effect.flip(run("hi")).pipe(configured(compat(server.url)))
        expect(error).toMatchObject({
          _tag: "UpstreamError",
          provider: "openai-compat",
          status: 401,
          message: "model provider \"openai-compat\" answered HTTP 401: Incorrect API key provided: sk-abc."
        })
      }))

    it.scopedLive("a 429's Retry-After holds the provider's breaker open that long; no request is made meanwhile", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => Wire.rateLimited(20))
        yield* Effect.gen(function*() {
          const error = yield* Effect.flip(run("hi"))
          expect(error).toMatchObject({ _tag: "UpstreamError", status: 429, retry_after_ms: 20_000 })
          expect(error.message).toMatch(/^model provider "openai-compat" answered HTTP 429: Rate limit reached/)
          const breakers = yield* CircuitBreaker.CircuitBreaker
          const status = yield* breakers.status("model:openai-compat")
          expect(status.state).toBe("open")
          expect(Duration.toSeconds(status.retryAfter)).toBeGreaterThan(19)
          const rejected = yield* Effect.flip(run("hi"))
          expect(rejected).toBeInstanceOf(CircuitOpenError)
        }).pipe(configured(compat(server.url)))
        expect(server.received).toHaveLength(1)
      }))

    it.scopedLive("a connection cut mid-stream is UpstreamError saying so", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => events(Wire.textEvents(["Hel", "lo"]).slice(0, 2), { cut: true }))
        const error = yield* Effect.flip(run("hi")).pipe(configured(compat(server.url)))
        expect(error).toMatchObject({ _tag: "UpstreamError", provider: "openai-compat" })
        expect(error.message).toMatch(/^model provider "openai-compat" cut its response off \(HTTP 200\)/)
      }))

    it.scoped("a stall with no bytes fails after SG_FIRST_TOKEN_TIMEOUT (10 s, on the TestClock)", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => stall)
        yield* Effect.gen(function*() {
          const fiber = yield* Effect.fork(Effect.flip(run("hi")))
          yield* waitUntil(() => server.received.length === 1)
          yield* TestClock.adjust("9 seconds")
          expect(fiber.unsafePoll()).toBeNull()
          yield* TestClock.adjust("1 second")
          const error = yield* Fiber.join(fiber)
          expect(error).toMatchObject({
            _tag: "UpstreamError",
            message: "model provider \"openai-compat\" sent no output within 10s (the first-token timeout)"
          })
        }).pipe(configured(compat(server.url)))
      }))

    it.effect("configuration: SG_COMPAT_BASE_URL and SG_COMPAT_MODEL are required, the key optional", () =>
      Effect.gen(function*() {
        const problem = (vars: Record<string, string>) =>
          Effect.map(Effect.flip(AgentRuntime.AgentRuntime.pipe(configured(vars))), String)
        expect(yield* problem({ SG_MODEL: "openai-compat", SG_COMPAT_MODEL: "m" })).toMatch(/SG_COMPAT_BASE_URL/)
        expect(yield* problem({ SG_MODEL: "openai-compat", SG_COMPAT_BASE_URL: "http://x/v1" })).toMatch(
          /SG_COMPAT_MODEL/
        )
        expect(yield* problem({ SG_MODEL: "openai-compat", SG_COMPAT_BASE_URL: "ftp://x", SG_COMPAT_MODEL: "m" }))
          .toMatch(/SG_COMPAT_BASE_URL must be an http\(s\) URL/)
        const runtime = yield* AgentRuntime.AgentRuntime.pipe(
          configured({
            SG_MODEL: "openai-compat",
            SG_COMPAT_BASE_URL: "http://localhost:11434/v1",
            SG_COMPAT_MODEL: "m"
          })
        )
        expect(runtime.agents).toEqual(["assistant", "researcher"])
      }))
  })
})
