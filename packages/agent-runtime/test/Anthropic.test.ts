import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Provider } from "@sg/agent-runtime"
import { CircuitBreaker, CircuitOpenError } from "@sg/resilience"
import { Chunk, Duration, Effect, Fiber, Redacted, Stream, TestClock } from "effect"
import * as Wire from "./utils/anthropicWire.js"
import { configured, run, waitUntil } from "./utils/configured.js"
import { events, fakeUpstream, stall } from "./utils/fakeUpstream.js"

const anthropic = (url: string) => ({
  SG_MODEL: "anthropic",
  ANTHROPIC_API_KEY: "sk-ant-test",
  ANTHROPIC_BASE_URL: url
})

describe("anthropic (Messages API), against a fake server speaking its wire format", () => {
  it.scopedLive("non-streaming: the provider's model answers a message", () =>
    Effect.gen(function*() {
      const server = yield* fakeUpstream(() => Wire.message("Hi! My name is Claude."))
      const key = Redacted.make("sk-ant-test")
      const provider = yield* Provider.makeAnthropic({ apiKey: key, baseUrl: server.url }).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      const response = yield* provider.languageModel.generateText({ prompt: "hi" })
      expect(response.text).toBe("Hi! My name is Claude.")
      expect(response.usage).toMatchObject({ inputTokens: 2095, outputTokens: 503 })
      const [request] = server.received
      // @effect/ai-anthropic 0.27 asks the beta flavour of the route for whole messages.
      expect([request!.method, request!.path, request!.headers["x-api-key"]]).toEqual([
        "POST",
        "/v1/messages?beta=true",
        "sk-ant-test"
      ])
      expect(request!.headers["anthropic-version"]).toBe("2023-06-01")
      expect(request!.body).toMatchObject({ model: "claude-haiku-4-5", max_tokens: 4096 })
    }))

  it.scopedLive("streaming: text deltas in order and usage", () =>
    Effect.gen(function*() {
      const server = yield* fakeUpstream(() => Wire.streamedText(["Hello", ", ", "world"]))
      const provider = yield* Provider.makeAnthropic({ apiKey: Redacted.make("k"), baseUrl: server.url }).pipe(
        Effect.provide(FetchHttpClient.layer)
      )
      const parts = Chunk.toArray(yield* Stream.runCollect(provider.languageModel.streamText({ prompt: "hi" })))
      expect(parts.flatMap((p) => (p.type === "text-delta" ? [p.delta] : []))).toEqual(["Hello", ", ", "world"])
      expect(parts.find((p) => p.type === "finish")).toMatchObject({
        reason: "stop",
        usage: { inputTokens: 25, outputTokens: 15 }
      })
      expect(server.received[0]!.body).toMatchObject({ stream: true })
    }))

  it.scopedLive("runs the assistant: a streamed tool use, its tool_result sent back, then the streamed answer", () =>
    Effect.gen(function*() {
      const server = yield* fakeUpstream((_, n) =>
        n === 1
          ? Wire.streamedToolUse("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "calculator", ["{\"expression\":", " \"6*7\"}"])
          : Wire.streamedText(["6*7 is ", "42."])
      )
      const result = yield* run("what is 6*7?").pipe(configured(anthropic(server.url)))
      expect(result).toMatchObject({ status: "success", output: "6*7 is 42.", steps: 2 })
      const first = server.received[0]!.body
      expect((first.tools as Array<{ name: string }>).map((t) => t.name)).toEqual(["clock", "calculator", "fan_out"])
      const messages = server.received[1]!.body.messages as Array<{ role: string; content: Array<unknown> }>
      expect(messages.at(-2)).toMatchObject({
        role: "assistant",
        content: expect.arrayContaining([
          expect.objectContaining({ type: "tool_use", id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6", name: "calculator" })
        ])
      })
      expect(messages.at(-1)).toMatchObject({
        role: "user",
        content: [expect.objectContaining({ type: "tool_result", tool_use_id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6" })]
      })
    }))

  it.scopedLive("an error body is UpstreamError with the status and Anthropic's message", () =>
    Effect.gen(function*() {
      const server = yield* fakeUpstream(() => Wire.error(529, "overloaded_error", "Overloaded"))
      const error = yield* Effect.flip(run("hi")).pipe(configured(anthropic(server.url)))
      expect(error).toMatchObject({
        _tag: "UpstreamError",
        provider: "anthropic",
        status: 529,
        message: "model provider \"anthropic\" answered HTTP 529: Overloaded"
      })
    }))

  it.scopedLive("an error event mid-stream fails the call with its message", () =>
    Effect.gen(function*() {
      const server = yield* fakeUpstream(() => events([...Wire.textEvents(["Hel"]).slice(0, 3), Wire.errorEvent]))
      const error = yield* Effect.flip(run("hi")).pipe(configured(anthropic(server.url)))
      expect(error).toMatchObject({ _tag: "UpstreamError", provider: "anthropic" })
      expect(error.message).toContain("Overloaded")
    }))

  it.scopedLive("a 429's Retry-After holds the breaker open that long", () =>
    Effect.gen(function*() {
      const server = yield* fakeUpstream(() =>
        Wire.error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", {
          "retry-after": "42"
        })
      )
      yield* Effect.gen(function*() {
        const error = yield* Effect.flip(run("hi"))
        expect(error).toMatchObject({ status: 429, retry_after_ms: 42_000 })
        expect(error.message).toBe(
          "model provider \"anthropic\" answered HTTP 429: Number of request tokens has exceeded your per-minute " +
            "rate limit"
        )
        const status = yield* (yield* CircuitBreaker.CircuitBreaker).status("model:anthropic")
        expect(status.state).toBe("open")
        expect(Duration.toSeconds(status.retryAfter)).toBeGreaterThan(41)
        expect(yield* Effect.flip(run("hi"))).toBeInstanceOf(CircuitOpenError)
      }).pipe(configured(anthropic(server.url)))
      expect(server.received).toHaveLength(1)
    }))

  it.scopedLive("a connection cut mid-stream is UpstreamError", () =>
    Effect.gen(function*() {
      const server = yield* fakeUpstream(() => events(Wire.textEvents(["Hel", "lo"]).slice(0, 4), { cut: true }))
      const error = yield* Effect.flip(run("hi")).pipe(configured(anthropic(server.url)))
      expect(error).toMatchObject({ _tag: "UpstreamError", provider: "anthropic" })
      expect(error.message).toMatch(/^model provider "anthropic" (cut its response off|ended its answer before)/)
    }))

  it.scoped("a stall with no bytes fails after the first-token timeout (TestClock)", () =>
    Effect.gen(function*() {
      const server = yield* fakeUpstream(() => stall)
      yield* Effect.gen(function*() {
        const fiber = yield* Effect.fork(Effect.flip(run("hi")))
        yield* waitUntil(() => server.received.length === 1)
        yield* TestClock.adjust("10 seconds")
        expect(yield* Fiber.join(fiber)).toMatchObject({
          message: "model provider \"anthropic\" sent no output within 10s (the first-token timeout)"
        })
      }).pipe(configured(anthropic(server.url)))
    }))

  it.effect("configuration: ANTHROPIC_API_KEY is required; the URL and model have defaults", () =>
    Effect.gen(function*() {
      const settings = yield* Provider.config.pipe(configured({ SG_MODEL: "anthropic", ANTHROPIC_API_KEY: "k" }))
      expect(settings[0]).toMatchObject({
        kind: "anthropic",
        baseUrl: "https://api.anthropic.com",
        model: "claude-haiku-4-5"
      })
      const problem = yield* Effect.flip(Provider.config.pipe(configured({ SG_MODEL: "anthropic" })))
      expect(String(problem)).toMatch(/ANTHROPIC_API_KEY/)
    }))
})
