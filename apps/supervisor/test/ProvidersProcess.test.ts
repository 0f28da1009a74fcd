import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Request from "./utils/http.js"
import { startServe } from "./utils/serve.js"

/** A Chat Completions upstream: streams `Hello from upstream.` or, while `down`, answers 503 with Retry-After. */
const upstream = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly server: Http.Server; readonly state: { down: boolean } }>((resume) => {
    const state = { down: false }
    const server = Http.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        if (state.down) {
          res.writeHead(503, { "content-type": "application/json", "retry-after": "30" })
          res.end(JSON.stringify({ error: { message: "The engine is currently overloaded", type: "server_error" } }))
          return
        }
        const chunk = (delta: unknown, finish: string | null) => {
          const choices = [{ index: 0, delta, finish_reason: finish }]
          const value = { id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices }
          return `data: ${JSON.stringify(value)}\n\n`
        }
        const usage = { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 }
        res.writeHead(200, { "content-type": "text/event-stream" })
        res.end(
          chunk({ role: "assistant", content: "" }, null) + chunk({ content: "Hello from " }, null) +
            chunk({ content: "upstream." }, null) + chunk({}, "stop") +
            `data: ${JSON.stringify({ id: "c", choices: [], usage })}\n\n` +
            "data: [DONE]\n\n"
        )
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}/v1`, server, state }))
    })
  }),
  ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

const chat = (port: number, body: unknown) =>
  Request.request(port, {
    method: "POST",
    path: "/v1/chat/completions",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body)
  })

describe("sg serve with SG_MODEL=openai-compat,demo, as a process", () => {
  it.scopedLive("speaks Chat Completions both ways, and falls back to demo while the upstream is down", () =>
    Effect.gen(function*() {
      const up = yield* upstream
      const { port } = yield* startServe("serve-compat", {
        REDIS_URL: "",
        SG_MODEL: "openai-compat,demo",
        SG_COMPAT_BASE_URL: up.url,
        SG_COMPAT_MODEL: "llama3.2",
        SG_SAMPLE_SUCCESS: "1"
      })

      const models = yield* Request.get(port, "/v1/models")
      expect(models.json.data.map((m: { id: string }) => m.id)).toEqual(["assistant", "researcher"])

      const streamed = yield* chat(port, {
        model: "assistant",
        messages: [{ role: "user", content: "hi" }],
        stream: true,
        stream_options: { include_usage: true }
      })
      expect(streamed.status).toBe(200)
      expect(streamed.headers["x-sg-provider"]).toBe("openai-compat")
      const data = streamed.text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6))
      expect(data.at(-1)).toBe("[DONE]")
      const chunks = data.slice(0, -1).map((d) => JSON.parse(d))
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("Hello from upstream.")
      expect(chunks.at(-1).usage).toEqual({ prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 })

      up.state.down = true
      const fallback = yield* Request.postRun(port, { input: "hello" })
      expect(fallback.status).toBe(200)
      expect(fallback.json.output).toMatch(/^I am the demo model/)
      expect([fallback.headers["x-sg-provider"], fallback.headers["x-sg-attempts"]]).toEqual(["demo", "2"])
      // The 503's Retry-After opened the upstream's breaker: the next call skips it without asking.
      const status = yield* Request.get(port, "/api/status")
      expect(status.json.circuits).toEqual(expect.arrayContaining([
        expect.objectContaining({ name: "model:openai-compat", state: "open" })
      ]))
      const skipped = yield* chat(port, { model: "assistant", messages: [{ role: "user", content: "hello" }] })
      expect(skipped.status).toBe(200)
      expect(skipped.json.choices[0].message.content).toMatch(/^I am the demo model/)
      expect(skipped.headers["x-sg-attempts"]).toBe("2")
    }), { timeout: 90_000 })
})
