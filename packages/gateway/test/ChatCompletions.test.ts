import { HttpServer } from "@effect/platform"
import { describe, expect, layer } from "@effect/vitest"
import { ExecutionStore, Recorder, TraceId } from "@sg/trace"
import { Effect, Option } from "effect"
import OpenAI from "openai"
import * as RunGateway from "./utils/RunGateway.js"
import * as Sse from "./utils/sse.js"
import * as T from "./utils/TestGateway.js"

/** The real `openai` client, pointed at the gateway under test (10 s timeout, no retries). */
const client = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address
  if (address._tag !== "TcpAddress") throw new Error("not a TCP server")
  return new OpenAI({
    baseURL: `http://127.0.0.1:${address.port}/v1`,
    apiKey: "sg-does-not-check-it-yet",
    maxRetries: 0,
    timeout: 10_000
  })
})

const call = <A>(f: (openai: OpenAI) => Promise<A>) =>
  Effect.flatMap(client, (openai) => Effect.tryPromise({ try: () => f(openai), catch: (error) => error }))

const failure = <A>(f: (openai: OpenAI) => Promise<A>) => Effect.flip(call(f))

const recordOf = (id: string) =>
  Effect.gen(function*() {
    yield* Effect.flatMap(Recorder.Recorder, (recorder) => recorder.flush)
    const store = yield* ExecutionStore.ExecutionStore
    return yield* T.eventually(Effect.flatMap(store.get(id as TraceId.TraceId), (record) => record))
  })

const traceIdOf = (headers: Headers): string => {
  const id = headers.get("x-trace-id")
  expect(id).not.toBeNull()
  expect(Option.isSome(TraceId.parse(id!))).toBe(true)
  return id!
}

layer(RunGateway.make(), { excludeTestServices: true })("OpenAI-compatible routes, with the openai client", (it) => {
  describe("POST /v1/chat/completions", () => {
    it.effect("chat.completions.create: the agent's answer, usage filled, x-trace-id on the raw response", () =>
      Effect.gen(function*() {
        const { data, response } = yield* call((openai) =>
          openai.chat.completions.create({
            model: "assistant",
            messages: [{ role: "system", content: "be kind" }, { role: "user", content: "hi" }]
          }).withResponse()
        )
        expect(response.status).toBe(200)
        expect(data.object).toBe("chat.completion")
        expect(data.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/)
        expect(data.model).toBe("assistant")
        expect(data.choices).toEqual([{
          index: 0,
          message: { role: "assistant", content: "Hello: hi", refusal: null },
          logprobs: null,
          finish_reason: "stop"
        }])
        expect(data.usage).toEqual({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 })
        expect(response.headers.get("x-sg-provider")).toBe("primary")
        const id = traceIdOf(response.headers)
        expect((yield* T.writesOf(id)).map((w) => [w.op, w.state])).toEqual([
          ["create", "RECEIVED"],
          ["transition", "INFERRING"],
          ["finish", "COMPLETED"]
        ])
        const record = yield* recordOf(id)
        expect(record.runs[0]).toMatchObject({
          agent_id: "assistant",
          status: "success",
          tokens: { input: 7, output: 3 }
        })
      }))

    it.effect("messages become the run: the last user message its input, the rest its history", () =>
      Effect.gen(function*() {
        const data = yield* call((openai) =>
          openai.chat.completions.create({
            model: "assistant",
            messages: [
              { role: "developer", content: "terse" },
              { role: "user", content: [{ type: "text", text: "first" }] },
              { role: "assistant", content: "ok" },
              { role: "user", content: "count" }
            ]
          })
        )
        // The agent's instructions, the three messages of history, and the input.
        expect(data.choices[0]!.message.content).toBe("5 messages")
      }))

    it.effect("stream: true streams chat.completion.chunk events ending in [DONE], usage in the last chunk", () =>
      Effect.gen(function*() {
        const { data: stream, response } = yield* call((openai) =>
          openai.chat.completions.create({
            model: "assistant",
            messages: [{ role: "user", content: "hi" }],
            stream: true,
            stream_options: { include_usage: true }
          }).withResponse()
        )
        expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8")
        const id = traceIdOf(response.headers)
        const chunks = yield* Effect.promise(async () => {
          const all: Array<OpenAI.Chat.Completions.ChatCompletionChunk> = []
          for await (const chunk of stream) all.push(chunk)
          return all
        })
        expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.model === "assistant")).toBe(true)
        expect(new Set(chunks.map((c) => c.id)).size).toBe(1)
        expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" })
        expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("Hello: hi")
        expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("stop")
        expect(chunks.at(-1)).toMatchObject({
          choices: [],
          usage: { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 }
        })
        expect((yield* T.writesOf(id)).at(-1)).toMatchObject({ op: "finish", state: "COMPLETED" })

        const raw = yield* T.raw({
          method: "POST",
          path: "/v1/chat/completions",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "plain", messages: [{ role: "user", content: "hi" }], stream: true })
        })
        const events = Sse.parse(raw.text)
        expect(events.at(-1)).toEqual({ event: "message", data: "[DONE]" })
        expect(events.slice(0, -1).every((e) => e.data.usage === undefined)).toBe(true)
      }))

    it.effect("errors in OpenAI's shape with sg's statuses: unknown model, a failed provider, a bad message", () =>
      Effect.gen(function*() {
        const missing = yield* failure((openai) =>
          openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })
        )
        expect(missing).toBeInstanceOf(OpenAI.NotFoundError)
        expect(missing).toMatchObject({
          status: 404,
          code: "model_not_found",
          param: "model",
          type: "invalid_request_error"
        })
        expect((missing as Error).message).toContain("sg serves the agents assistant, plain")

        const down = yield* failure((openai) =>
          openai.chat.completions.create({ model: "assistant", messages: [{ role: "user", content: "all-down" }] })
        )
        expect(down).toBeInstanceOf(OpenAI.APIError)
        expect(down).toMatchObject({ status: 502, code: "upstream_error", type: "api_error" })
        expect((down as InstanceType<typeof OpenAI.APIError>).headers?.get("x-trace-id")).toBeTruthy()

        // Streaming: the failure comes before the first output, so it is the response's status, not a 200.
        const streamed = yield* failure((openai) =>
          openai.chat.completions.create({
            model: "assistant",
            messages: [{ role: "user", content: "all-down" }],
            stream: true
          })
        )
        expect(streamed).toMatchObject({ status: 502, code: "upstream_error" })

        const bad = yield* failure((openai) =>
          openai.chat.completions.create({
            model: "assistant",
            messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }]
          })
        )
        expect(bad).toBeInstanceOf(OpenAI.BadRequestError)
        expect(bad).toMatchObject({ status: 400, code: "bad_request", param: "messages.1.role" })

        const empty = yield* T.raw({
          method: "POST",
          path: "/v1/chat/completions",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "assistant", messages: [] })
        })
        expect(empty.status).toBe(400)
        expect(empty.json).toEqual({
          error: {
            message: "messages: must hold at least one message",
            type: "invalid_request_error",
            param: "messages",
            code: "bad_request"
          }
        })
      }))

    it.effect("a failure after the stream started ends it with an error event the client throws", () =>
      Effect.gen(function*() {
        const stream = yield* call((openai) =>
          openai.chat.completions.create({
            model: "assistant",
            messages: [{ role: "user", content: "cut" }],
            stream: true
          })
        )
        const outcome = yield* Effect.promise(async () => {
          const text: Array<string> = []
          try {
            for await (const chunk of stream) text.push(chunk.choices[0]?.delta.content ?? "")
            return { text, error: undefined }
          } catch (error) {
            return { text, error }
          }
        })
        expect(outcome.text.join("")).toBe("partial ")
        expect(outcome.error).toBeInstanceOf(OpenAI.APIError)
        expect((outcome.error as Error).message).toContain("no fallback")
      }))
  })

  describe("GET /v1/models", () => {
    it.effect("models.list lists the agents; models.retrieve finds one", () =>
      Effect.gen(function*() {
        const page = yield* call((openai) => openai.models.list())
        expect(page.data.map((m) => [m.id, m.object, m.owned_by])).toEqual([
          ["assistant", "model", "sg"],
          ["plain", "model", "sg"]
        ])
        expect(page.data.every((m) => Number.isInteger(m.created) && m.created > 0)).toBe(true)
        expect((yield* call((openai) => openai.models.retrieve("plain"))).id).toBe("plain")
        expect(yield* failure((openai) => openai.models.retrieve("nope"))).toBeInstanceOf(OpenAI.NotFoundError)
      }))
  })
})
