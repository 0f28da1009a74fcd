/**
 * A fake OpenAI-compatible server on a free loopback port: answers `POST /v1/responses` (what @effect/ai-openai
 * 0.41's `OpenAiLanguageModel` calls) from a script, and keeps every request it was sent.
 */
import { Effect } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/** A request the fake server received. */
export interface Received {
  readonly method: string
  readonly path: string
  readonly authorization: string | undefined
  readonly body: Record<string, unknown>
}

/** What the fake server answers. */
export interface Answer {
  readonly status: number
  readonly json: unknown
}

/** Starts the server for the scope; `respond` gets each request and its 1-based number. */
export const fakeOpenAi = (respond: (request: Received, n: number) => Answer) =>
  Effect.acquireRelease(
    Effect.async<{ readonly baseUrl: string; readonly received: Array<Received>; readonly server: Http.Server }>(
      (resume) => {
        const received: Array<Received> = []
        const server = Http.createServer((req, res) => {
          const chunks: Array<Buffer> = []
          req.on("data", (chunk: Buffer) => chunks.push(chunk))
          req.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8")
            const request: Received = {
              method: req.method ?? "",
              path: req.url ?? "",
              authorization: req.headers.authorization,
              body: text === "" ? {} : JSON.parse(text)
            }
            received.push(request)
            const answer = respond(request, received.length)
            res.writeHead(answer.status, { "content-type": "application/json" })
            res.end(JSON.stringify(answer.json))
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resume(Effect.succeed({ baseUrl: `http://127.0.0.1:${port}/v1`, received, server }))
        })
      }
    ),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
  )

/** A Responses API answer with `output` items. */
export const response = (output: ReadonlyArray<unknown>, usage = { input: 12, output: 7 }): Answer => ({
  status: 200,
  json: {
    id: "resp_1",
    object: "response",
    created_at: 1763870000,
    status: "completed",
    error: null,
    incomplete_details: null,
    output,
    instructions: null,
    model: "gpt-4o-mini",
    tools: [],
    tool_choice: "auto",
    parallel_tool_calls: true,
    metadata: null,
    temperature: null,
    top_p: null,
    usage: {
      input_tokens: usage.input,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: usage.output,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: usage.input + usage.output
    }
  }
})

/** An assistant message output item. */
export const message = (text: string) => ({
  type: "message",
  id: "msg_1",
  role: "assistant",
  status: "completed",
  content: [{ type: "output_text", text, annotations: [] }]
})

/** A function call output item. */
export const functionCall = (callId: string, name: string, args: unknown) => ({
  type: "function_call",
  id: `fc_${callId}`,
  call_id: callId,
  name,
  arguments: JSON.stringify(args),
  status: "completed"
})
