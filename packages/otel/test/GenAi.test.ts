import { describe, expect, it } from "@effect/vitest"
import { GenAi, type OtlpExporter } from "@sg/otel"
import type * as OtlpTestReceiver from "@sg/otel/OtlpTestReceiver"
import { CircuitBreaker } from "@sg/resilience"
import { Redaction } from "@sg/trace"
import { Effect } from "effect"
import { asRequest, byName, demoRun, demoRuntime, exported, traceIdOf } from "./utils/exported.js"

const hex = "0190a1b2c3d47e5f8a6b7c8d9e0f1a2b"
const id = traceIdOf(hex)

const contentKeys = [...GenAi.contentAttributes, "sg.input", "sg.output", "parameters"]
const hasContent = (span: OtlpTestReceiver.ReceivedSpan) => contentKeys.some((key) => key in span.attributes)

describe.each<OtlpExporter.Protocol>(["http/protobuf", "http/json"])("export over %s", (protocol) => {
  it.scoped("a run with a tool call and two sub-agents arrives as one trace, as GenAI spans", () =>
    Effect.gen(function*() {
      const { errors, exit, records, spans } = yield* exported(
        demoRun("research circuit breakers with 2 researchers", "conv-1").pipe(
          asRequest(id),
          Effect.provide(demoRuntime)
        ),
        { otel: { protocol } }
      )
      expect(errors).toEqual([])
      expect(exit._tag).toBe("Success")
      const record = records[0]!
      const named = byName(spans)

      // 1 server span, 1 assistant run with 2 model calls and 1 tool call, 2 researchers with 1 model call each.
      expect(spans).toHaveLength(9)
      expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([hex]))
      expect(spans.map((s) => s.name)).not.toContain("LanguageModel.generateText")
      expect(spans.map((s) => s.name)).not.toContain("Toolkit.handle")
      for (const span of spans) {
        expect(span.scope.name).toBe("@sg/otel")
        expect(span.schemaUrl).toBe(GenAi.schemaUrl)
        expect(span.resource["service.name"]).toBe("sg")
        expect(hasContent(span), `${span.name} carries contents`).toBe(false)
      }

      const [root] = named("POST /v1/runs")
      expect(root!.parentSpanId).toBeUndefined()
      expect(root!.kind).toBe(2)
      expect(root!.attributes).toMatchObject({
        "http.response.status_code": 200,
        "sg.sampling.reason": "sampled",
        "sg.sampling.rate": 1,
        "sg.trace.status": "success"
      })

      const [assistantRun] = record.runs.filter((r) => r.agent_id === "assistant")
      const [assistant] = named("invoke_agent assistant")
      expect(assistant!.parentSpanId).toBe(root!.spanId)
      expect(assistant!.kind).toBe(1)
      expect(assistant!.attributes).toMatchObject({
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "assistant",
        "gen_ai.agent.id": assistantRun!.run_id,
        "gen_ai.conversation.id": "conv-1",
        "gen_ai.provider.name": "demo"
      })

      const chats = named("chat demo").filter((s) => s.parentSpanId === assistant!.spanId)
      expect(chats).toHaveLength(2)
      chats.forEach((chat, i) => {
        const call = assistantRun!.inference_calls[i]!
        expect(chat.kind).toBe(3)
        expect(chat.status.code).toBe(0)
        expect(chat.attributes).toMatchObject({
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": "demo",
          "gen_ai.request.model": "demo",
          "gen_ai.response.model": "demo",
          "gen_ai.usage.input_tokens": call.tokens.input,
          "gen_ai.usage.output_tokens": call.tokens.output,
          "gen_ai.response.finish_reasons": [i === 0 ? "tool_call" : "stop"],
          "gen_ai.conversation.id": "conv-1"
        })
      })

      const [tool] = named("execute_tool fan_out")
      expect(tool!.parentSpanId).toBe(assistant!.spanId)
      expect(tool!.attributes).toMatchObject({
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "fan_out",
        "gen_ai.tool.call.id": assistantRun!.tool_calls[0]!.call_id,
        "gen_ai.tool.type": "function"
      })

      // The sub-agents are children of the tool call that spawned them, each with a model call of its own.
      const researchers = named("invoke_agent researcher")
      expect(researchers.map((r) => r.parentSpanId)).toEqual([tool!.spanId, tool!.spanId])
      const childRuns = record.runs.filter((r) => r.agent_id === "researcher").map((r) => r.run_id).sort()
      expect(researchers.map((r) => r.attributes["gen_ai.agent.id"]).sort()).toEqual(childRuns)
      for (const researcher of researchers) {
        expect(researcher.attributes).toMatchObject({
          "gen_ai.agent.name": "researcher",
          "sg.parent_run_id": assistantRun!.run_id,
          "gen_ai.conversation.id": "conv-1"
        })
        expect(spans.filter((s) => s.parentSpanId === researcher.spanId).map((s) => s.name)).toEqual(["chat demo"])
      }
    }))

  it.scoped("a caller's traceparent: its trace id, and its span as the root's parent", () =>
    Effect.gen(function*() {
      const { spans } = yield* exported(
        demoRun("hello").pipe(asRequest(id, "00f067aa0ba902b7"), Effect.provide(demoRuntime)),
        { otel: { protocol } }
      )
      const [root] = byName(spans)("POST /v1/runs")
      expect(root!.traceId).toBe(hex)
      expect(root!.parentSpanId).toBe("00f067aa0ba902b7")
    }))

  it.scoped("contents only when asked: redacted and cut to the limit, the messages still JSON", () =>
    Effect.gen(function*() {
      const input = "key sk-abcdefghijklmnopqrstuvwxyz0123 says: what is 2+3*4? " + "x".repeat(200)
      const { spans } = yield* exported(
        demoRun(input).pipe(asRequest(id), Effect.provide(demoRuntime)),
        { otel: { protocol, content: true, truncate: 40 } }
      )
      const named = byName(spans)
      const [run] = named("invoke_agent assistant")
      const messages = JSON.parse(String(run!.attributes["gen_ai.input.messages"]))
      expect(messages).toEqual([{ role: "user", parts: [{ type: "text", content: expect.any(String) }] }])
      const text: string = messages[0].parts[0].content
      expect(text).toContain(Redaction.MASK)
      expect(text).not.toContain("sk-abc")
      expect(text).toMatch(/^.{40}…\[\d+ more chars cut\]$/u)
      const output = JSON.parse(String(run!.attributes["gen_ai.output.messages"]))
      expect(output[0]).toMatchObject({ role: "assistant", finish_reason: "stop" })

      const [first] = named("chat demo")
      const out = JSON.parse(String(first!.attributes["gen_ai.output.messages"]))
      expect(out).toEqual([{
        role: "assistant",
        parts: [{ type: "tool_call", id: expect.any(String), name: "calculator", arguments: expect.any(String) }],
        finish_reason: "tool_call"
      }])

      const [tool] = named("execute_tool calculator")
      expect(tool!.attributes["gen_ai.tool.call.arguments"]).toMatch(/^\{"expression":/)
      expect(tool!.attributes["gen_ai.tool.call.result"]).toBe(JSON.stringify({ expression: "2+3*4", value: 14 }))
    }))
})

describe("failures", () => {
  it.scoped("a failed model call and run: status ERROR, error.type and an exception event", () =>
    Effect.gen(function*() {
      const { records, spans } = yield* exported(
        demoRun("fail: the provider is down").pipe(asRequest(id), Effect.provide(demoRuntime)),
        { otel: { sampleSuccess: 0 }, recorder: { sampleSuccess: 0 } }
      )
      expect(records.map((r) => r.status)).toEqual(["error"])
      const named = byName(spans)
      const [run] = named("invoke_agent assistant")
      expect(run!.status.code).toBe(2)
      expect(run!.status.message).toContain("UpstreamError")
      expect(run!.attributes["error.type"]).toBe("UpstreamError")
      expect(run!.events.map((e) => e.name)).toEqual(["exception"])
      const [chat] = named("chat demo")
      expect(chat!.status.code).toBe(2)
      expect(chat!.attributes["error.type"]).toBe("UpstreamError")
      const [root] = named("POST /v1/runs")
      expect(root!.attributes["sg.sampling.reason"]).toBe("error")
    }))

  it.scoped("a call the breaker rejected names the breaker and its state; a tool's returned failure is an error", () =>
    Effect.gen(function*() {
      const program = Effect.gen(function*() {
        yield* demoRun("what is 1/0?").pipe(asRequest(traceIdOf("0190a1b2c3d47e5f8a6b7c8d9e0f1a01")))
        const breakers = yield* CircuitBreaker.CircuitBreaker
        yield* breakers.isolate("model:demo")
        yield* Effect.exit(demoRun("hello").pipe(asRequest(traceIdOf("0190a1b2c3d47e5f8a6b7c8d9e0f1a02"))))
      }).pipe(Effect.provide(demoRuntime))
      const { spans } = yield* exported(program)
      const named = byName(spans)
      const [calculator] = named("execute_tool calculator")
      expect(calculator!.status.code).toBe(2)
      expect(calculator!.attributes["error.type"]).toBe("tool_error")
      const rejected = named("chat demo").filter((s) => s.traceId.endsWith("1a02"))
      expect(rejected).toHaveLength(1)
      expect(rejected[0]!.attributes).toMatchObject({
        "error.type": "circuit_open",
        "sg.breaker.name": "model:demo",
        "sg.breaker.state": "open"
      })
    }))
})
