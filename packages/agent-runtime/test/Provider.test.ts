import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { AgentRuntime, Provider } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { Chunk, Effect, Fiber, Redacted, Stream, TestClock } from "effect"
import { configured, env, run, waitUntil } from "./utils/configured.js"
import { events, fakeUpstream, json, stall } from "./utils/fakeUpstream.js"
import * as Wire from "./utils/responsesWire.js"

const openai = (url: string, extra: Record<string, string> = {}) => ({
  SG_MODEL: "openai",
  OPENAI_API_KEY: "sk-test-123",
  OPENAI_BASE_URL: `${url}/v1`,
  ...extra
})

describe("Provider", () => {
  describe("openai (Responses API), against a fake server speaking its wire format", () => {
    it.scopedLive("non-streaming: the whole response", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => Wire.response("Hi there!"))
        const provider = yield* Provider.makeOpenAi({ apiKey: Redacted.make("k"), baseUrl: `${server.url}/v1` }).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
        const response = yield* provider.languageModel.generateText({ prompt: "hi" })
        expect(response.text).toBe("Hi there!")
        expect(response.usage).toMatchObject({ inputTokens: 12, outputTokens: 7 })
        expect(server.received[0]!.path).toBe("/v1/responses")
      }))

    it.scopedLive("streaming: text deltas and usage from response.completed", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => Wire.streamedText(["Hi", " there", "!"]))
        const provider = yield* Provider.makeOpenAi({ apiKey: Redacted.make("k"), baseUrl: `${server.url}/v1` }).pipe(
          Effect.provide(FetchHttpClient.layer)
        )
        const parts = Chunk.toArray(yield* Stream.runCollect(provider.languageModel.streamText({ prompt: "hi" })))
        expect(parts.flatMap((p) => (p.type === "text-delta" ? [p.delta] : []))).toEqual(["Hi", " there", "!"])
        expect(parts.find((p) => p.type === "finish")).toMatchObject({ usage: { inputTokens: 37, outputTokens: 11 } })
      }))

    it.scopedLive("runs the assistant: a streamed function call, its output sent back, then the streamed answer", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream((_, n) =>
          n === 1
            ? Wire.streamedFunctionCall("call_1", "calculator", ["{\"expression\":", "\"6*7\"}"])
            : Wire.streamedText(["6*7 is ", "42."])
        )
        const result = yield* run("what is 6*7?").pipe(configured(openai(server.url)))
        expect(result).toMatchObject({ status: "success", output: "6*7 is 42.", steps: 2 })
        expect(server.received.map((r) => [r.method, r.path, r.headers.authorization])).toEqual([
          ["POST", "/v1/responses", "Bearer sk-test-123"],
          ["POST", "/v1/responses", "Bearer sk-test-123"]
        ])
        const [first, second] = server.received
        expect(first!.body).toMatchObject({ model: "gpt-4o-mini", stream: true })
        expect((first!.body.tools as Array<{ name: string }>).map((t) => t.name)).toEqual([
          "clock",
          "calculator",
          "fan_out"
        ])
        expect(second!.body.input).toEqual(expect.arrayContaining([
          expect.objectContaining({ type: "function_call", call_id: "call_1", name: "calculator" }),
          {
            type: "function_call_output",
            call_id: "call_1",
            output: JSON.stringify({ expression: "6*7", value: 42 })
          }
        ]))
      }))

    it.scopedLive("SG_MODEL_NAME picks the model; an error body is UpstreamError with the status and message", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => Wire.error(500, "The server had an error", "server_error", null))
        yield* Effect.gen(function*() {
          const error = yield* Effect.flip(run("hi"))
          expect(error).toMatchObject({
            _tag: "UpstreamError",
            provider: "openai",
            status: 500,
            message: "model provider \"openai\" answered HTTP 500: The server had an error"
          })
          const breakers = yield* CircuitBreaker.CircuitBreaker
          expect((yield* breakers.status("model:openai")).failures).toBe(1)
        }).pipe(configured(openai(server.url, { SG_MODEL_NAME: "gpt-4.1-nano" })))
        expect(server.received).toHaveLength(1)
        expect(server.received[0]!.body.model).toBe("gpt-4.1-nano")
      }))

    it.scopedLive("a Chat Completions server named as openai: the 404 says which provider to use instead", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => json(404, { detail: "Not Found" }))
        const error = yield* Effect.flip(run("hi")).pipe(configured(openai(server.url)))
        expect(error.message).toBe(
          "model provider \"openai\" answered HTTP 404: Not Found (the openai provider calls the Responses API, " +
            "POST /responses; for a server that speaks Chat Completions use SG_MODEL=openai-compat with " +
            "SG_COMPAT_BASE_URL)"
        )
      }))

    it.scopedLive("a 429's Retry-After holds the breaker open", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() =>
          Wire.error(429, "Rate limit reached for gpt-4o-mini", "requests", "rate_limit_exceeded", {
            "retry-after": "7"
          })
        )
        yield* Effect.gen(function*() {
          expect(yield* Effect.flip(run("hi"))).toMatchObject({ status: 429, retry_after_ms: 7000 })
          expect((yield* (yield* CircuitBreaker.CircuitBreaker).status("model:openai")).state).toBe("open")
        }).pipe(configured(openai(server.url)))
      }))

    it.scopedLive("a connection cut mid-stream is UpstreamError", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => events(Wire.textEvents(["Hel", "lo"]).slice(0, 4), { cut: true }))
        const error = yield* Effect.flip(run("hi")).pipe(configured(openai(server.url)))
        expect(error).toMatchObject({ _tag: "UpstreamError", provider: "openai" })
        expect(error.message).toMatch(/^model provider "openai" (cut its response off|ended its answer before)/)
      }))

    it.scoped("a stall with no bytes fails after the first-token timeout (TestClock)", () =>
      Effect.gen(function*() {
        const server = yield* fakeUpstream(() => stall)
        yield* Effect.gen(function*() {
          const fiber = yield* Effect.fork(Effect.flip(run("hi")))
          yield* waitUntil(() => server.received.length === 1)
          yield* TestClock.adjust("10 seconds")
          expect(yield* Fiber.join(fiber)).toMatchObject({
            message: "model provider \"openai\" sent no output within 10s (the first-token timeout)"
          })
        }).pipe(configured(openai(server.url)))
      }))
  })

  describe("configuration", () => {
    const settings = (vars: Record<string, string>) => Provider.config.pipe(env(vars))
    const problem = (vars: Record<string, string>) => Effect.map(Effect.flip(settings(vars)), String)

    it.effect("SG_MODEL defaults to demo", () =>
      Effect.gen(function*() {
        expect(yield* settings({})).toEqual([{ kind: "demo" }])
        const runtime = yield* AgentRuntime.AgentRuntime.pipe(configured({}))
        expect(runtime.agents).toEqual(["assistant", "researcher"])
      }))

    it.effect("SG_MODEL is a fallback chain, in order, each provider with its own variables", () =>
      Effect.gen(function*() {
        const chain = yield* settings({
          SG_MODEL: " openai-compat, anthropic ,demo",
          SG_COMPAT_BASE_URL: "http://localhost:11434/v1/",
          SG_COMPAT_MODEL: "llama3.2",
          ANTHROPIC_API_KEY: "sk-ant"
        })
        expect(chain.map((p) => p.kind)).toEqual(["openai-compat", "anthropic", "demo"])
        expect(chain[0]).toEqual({
          kind: "openai-compat",
          baseUrl: "http://localhost:11434/v1",
          apiKey: undefined,
          model: "llama3.2"
        })
        expect(chain.map(Provider.describe)).toEqual([
          "openai-compat llama3.2 at http://localhost:11434/v1",
          "anthropic claude-haiku-4-5 at https://api.anthropic.com",
          "demo (offline)"
        ])
      }))

    it.effect("openai: the key is redacted; the base URL and model have defaults", () =>
      Effect.gen(function*() {
        const [openai] = yield* settings({ SG_MODEL: "openai", OPENAI_API_KEY: "sk-secret" })
        expect(openai).toMatchObject({ kind: "openai", baseUrl: "https://api.openai.com/v1", model: "gpt-4o-mini" })
        if (openai.kind !== "openai") return
        expect(Redacted.value(openai.apiKey)).toBe("sk-secret")
        expect(String(openai.apiKey)).not.toContain("sk-secret")
      }))

    it.effect("a bad value is a ConfigError naming the variable", () =>
      Effect.gen(function*() {
        expect(yield* problem({ SG_MODEL: "claude" })).toMatch(
          /SG_MODEL.*unknown provider "claude"; known providers: demo, openai, openai-compat, anthropic/
        )
        expect(yield* problem({ SG_MODEL: "demo,demo" })).toMatch(/SG_MODEL.*provider "demo" is listed twice/)
        expect(yield* problem({ SG_MODEL: "demo,,openai" })).toMatch(/SG_MODEL.*separated by commas/)
        expect(yield* problem({ SG_MODEL: "openai" })).toMatch(/OPENAI_API_KEY/)
        expect(yield* problem({ SG_MODEL: "openai", OPENAI_API_KEY: " " })).toMatch(/OPENAI_API_KEY must not be empty/)
        expect(yield* problem({ SG_MODEL: "openai", OPENAI_API_KEY: "k", OPENAI_BASE_URL: "ftp://x" })).toMatch(
          /OPENAI_BASE_URL must be an http\(s\) URL/
        )
        expect(yield* problem({ SG_MODEL: "openai", OPENAI_API_KEY: "k", SG_MODEL_NAME: "" })).toMatch(
          /SG_MODEL_NAME must not be empty/
        )
        const layerError = yield* Effect.flip(AgentRuntime.AgentRuntime.pipe(configured({ SG_MODEL: "nope" })))
        expect(String(layerError)).toMatch(/SG_MODEL/)
      }))

    it.effect("SG_FIRST_TOKEN_TIMEOUT and the budgets are read and checked", () =>
      Effect.gen(function*() {
        const options = yield* AgentRuntime.optionsConfig.pipe(
          env({
            SG_FIRST_TOKEN_TIMEOUT: "3 seconds",
            SG_MAX_STEPS: "4",
            SG_MAX_TOKENS: "900",
            SG_RUN_TIMEOUT: "5 seconds"
          })
        )
        expect(options.budgets).toMatchObject({ maxSteps: 4, maxTokens: 900, maxSubagents: 16 })
        const defaults = yield* AgentRuntime.optionsConfig.pipe(env({}))
        expect(defaults.budgets).toMatchObject({ maxSteps: 16, maxTokens: undefined, maxSubagents: 16 })
        const bad = (vars: Record<string, string>) =>
          Effect.map(Effect.flip(AgentRuntime.optionsConfig.pipe(env(vars))), String)
        expect(yield* bad({ SG_FIRST_TOKEN_TIMEOUT: "0 seconds" })).toMatch(/SG_FIRST_TOKEN_TIMEOUT/)
        expect(yield* bad({ SG_MAX_STEPS: "0" })).toMatch(/SG_MAX_STEPS must be a whole number of at least 1/)
        expect(yield* bad({ SG_MAX_TOKENS: "-5" })).toMatch(/SG_MAX_TOKENS/)
        expect(yield* bad({ SG_RUN_TIMEOUT: "forever" })).toMatch(/SG_RUN_TIMEOUT/)
        expect(yield* bad({ SG_MAX_SUBAGENTS: "-1" })).toMatch(/SG_MAX_SUBAGENTS/)
      }))
  })
})
