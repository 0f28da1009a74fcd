import { describe, expect, it } from "@effect/vitest"
import { AgentRuntime, Provider } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { fakeOpenAi, functionCall, message, response } from "./utils/fakeOpenAi.js"

const env = (vars: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

/** The runtime `AgentRuntime.layerConfig` builds from `vars`, with fresh breakers. */
const configured = (vars: Record<string, string>) => <A, E>(
  program: Effect.Effect<A, E, AgentRuntime.AgentRuntime | CircuitBreaker.CircuitBreaker>
) => program.pipe(Effect.provide(AgentRuntime.layerConfig.pipe(Layer.provideMerge(CircuitBreaker.layer()))), env(vars))

const run = (input: string) => Effect.flatMap(AgentRuntime.AgentRuntime, (runtime) => runtime.run({ input }))

describe("Provider", () => {
  describe("openai, against a fake OpenAI-compatible server", () => {
    it.scopedLive("runs the assistant: a calculator call, its result sent back, then the model's answer", () =>
      Effect.gen(function*() {
        const server = yield* fakeOpenAi((_, n) =>
          n === 1
            ? response([functionCall("call_1", "calculator", { expression: "6*7" })], { input: 40, output: 9 })
            : response([message("6*7 is 42.")], { input: 60, output: 5 })
        )
        const result = yield* run("what is 6*7?").pipe(configured({
          SG_MODEL: "openai",
          OPENAI_API_KEY: "sk-test-123",
          OPENAI_BASE_URL: server.baseUrl
        }))
        expect(result).toMatchObject({ status: "success", output: "6*7 is 42.", steps: 2 })
        expect(server.received.map((r) => [r.method, r.path, r.authorization])).toEqual([
          ["POST", "/v1/responses", "Bearer sk-test-123"],
          ["POST", "/v1/responses", "Bearer sk-test-123"]
        ])
        const [first, second] = server.received
        expect(first!.body.model).toBe("gpt-4o-mini")
        expect((first!.body.tools as Array<{ name: string }>).map((t) => t.name)).toEqual([
          "clock",
          "calculator",
          "fan_out"
        ])
        expect(first!.body.input).toEqual([
          expect.objectContaining({ role: "system" }),
          { role: "user", content: [{ type: "input_text", text: "what is 6*7?" }] }
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

    it.scopedLive("SG_MODEL_NAME picks the model; a server error is UpstreamError, counted by model:openai", () =>
      Effect.gen(function*() {
        const server = yield* fakeOpenAi(() => ({ status: 500, json: { error: { message: "overloaded" } } }))
        yield* Effect.gen(function*() {
          const error = yield* Effect.flip(run("hi"))
          expect(error).toMatchObject({ _tag: "UpstreamError", provider: "openai" })
          expect(error.message).toMatch(/^model provider "openai" failed: StatusCode: .*\(500 POST /)
          const breakers = yield* CircuitBreaker.CircuitBreaker
          expect((yield* breakers.status("model:openai")).failures).toBe(1)
        }).pipe(configured({
          SG_MODEL: "openai",
          OPENAI_API_KEY: "sk-test",
          OPENAI_BASE_URL: `${server.baseUrl}/`,
          SG_MODEL_NAME: "gpt-4.1-nano"
        }))
        expect(server.received).toHaveLength(1)
        expect(server.received[0]!.path).toBe("/v1/responses")
        expect(server.received[0]!.body.model).toBe("gpt-4.1-nano")
      }))
  })

  describe("configuration", () => {
    const settings = (vars: Record<string, string>) => Provider.config.pipe(env(vars))
    const problem = (vars: Record<string, string>) => Effect.map(Effect.flip(settings(vars)), String)

    it.effect("SG_MODEL defaults to demo", () =>
      Effect.gen(function*() {
        expect(yield* settings({})).toEqual({ kind: "demo" })
        const runtime = yield* AgentRuntime.AgentRuntime.pipe(configured({}))
        expect(runtime.agents).toEqual(["assistant", "researcher"])
      }))

    it.effect("openai: the key is redacted; the base URL and model have defaults", () =>
      Effect.gen(function*() {
        const openai = yield* settings({ SG_MODEL: "openai", OPENAI_API_KEY: "sk-secret" })
        expect(openai).toMatchObject({ kind: "openai", baseUrl: "https://api.openai.com/v1", model: "gpt-4o-mini" })
        if (openai.kind !== "openai") return
        expect(Redacted.value(openai.apiKey)).toBe("sk-secret")
        expect(String(openai.apiKey)).not.toContain("sk-secret")
      }))

    it.effect("a bad value is a ConfigError naming the variable", () =>
      Effect.gen(function*() {
        expect(yield* problem({ SG_MODEL: "claude" })).toMatch(/SG_MODEL.*Expected one of \(demo, openai\)/)
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
  })
})
