/**
 * Helpers for the OTLP process tests: spans of one trace from the test receiver, waited for, and a fake OpenAI
 * Responses endpoint that keeps the `traceparent` of each request it gets.
 */
import type * as OtlpTestReceiver from "@sg/otel/OtlpTestReceiver"
import { Effect, Option } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { waitFor } from "./processes.js"

/** The 32 hex digits of a trace id. */
export const hexOf = (id: string) => id.replaceAll("-", "")

/** The spans of `traceId` once `count` of them have arrived (and none more within a short settle). */
export const traceSpans = (
  receiver: OtlpTestReceiver.Receiver,
  traceId: string,
  count: number,
  context?: () => string
): Effect.Effect<ReadonlyArray<OtlpTestReceiver.ReceivedSpan>> =>
  Effect.gen(function*() {
    const of = Effect.map(receiver.spans, (spans) => spans.filter((s) => s.traceId === hexOf(traceId)))
    const spans = yield* waitFor(
      `${count} spans of trace ${traceId}`,
      Effect.map(of, (spans) => (spans.length >= count ? Option.some(spans) : Option.none())),
      "15 seconds",
      () => (context?.() ?? "")
    )
    yield* Effect.sleep("200 millis")
    const settled = yield* of
    return settled.length === spans.length ? spans : settled
  })

/** The spans by name; dies naming what arrived when one is missing. */
export const named = (spans: ReadonlyArray<OtlpTestReceiver.ReceivedSpan>) => (name: string) => {
  const found = spans.filter((span) => span.name === name)
  if (found.length === 0) throw new Error(`no span named ${name}; got ${spans.map((s) => s.name).join(", ")}`)
  return found
}

/** A request the fake OpenAI endpoint got. */
export interface ModelRequest {
  readonly traceparent: string | undefined
  readonly body: Record<string, unknown>
}

/** An assistant message in the Responses API's format, with token usage. */
const answer = (text: string) => ({
  id: "resp_1",
  object: "response",
  created_at: 1763870000,
  status: "completed",
  error: null,
  incomplete_details: null,
  output: [{
    type: "message",
    id: "msg_1",
    role: "assistant",
    status: "completed",
    content: [{ type: "output_text", text, annotations: [] }]
  }],
  instructions: null,
  model: "gpt-4o-mini-2024-07-18",
  tools: [],
  tool_choice: "auto",
  parallel_tool_calls: true,
  metadata: null,
  temperature: null,
  top_p: null,
  usage: {
    input_tokens: 12,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 7,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 19
  }
})

/** The same answer as the Responses API streams it (`stream: true`), event by event. */
const streamed = (text: string): string => {
  const whole = answer(text)
  const [item] = whole.output
  const events: Array<[string, Record<string, unknown>]> = [
    ["response.created", { response: { ...whole, status: "in_progress", output: [], usage: null } }],
    ["response.output_item.added", { output_index: 0, item: { ...item, status: "in_progress", content: [] } }],
    ["response.output_text.delta", { item_id: item!.id, output_index: 0, content_index: 0, delta: text, logprobs: [] }],
    ["response.output_item.done", { output_index: 0, item }],
    ["response.completed", { response: whole }]
  ]
  return events.map(([type, fields], n) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: n, ...fields })}\n\n`
  ).join("")
}

/** A fake OpenAI endpoint on a free loopback port answering every `POST /v1/responses` with `text` (streamed when asked). */
export const fakeOpenAi = (text: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly baseUrl: string; readonly received: Array<ModelRequest>; readonly server: Http.Server }>(
      (resume) => {
        const received: Array<ModelRequest> = []
        const server = Http.createServer((req, res) => {
          const chunks: Array<Buffer> = []
          req.on("data", (chunk: Buffer) => chunks.push(chunk))
          req.on("end", () => {
            const raw = req.headers["traceparent"]
            received.push({
              traceparent: typeof raw === "string" ? raw : undefined,
              body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}")
            })
            const body = received[received.length - 1]!.body
            if (body["stream"] === true) {
              res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
              res.end(streamed(text))
            } else {
              res.writeHead(200, { "content-type": "application/json" })
              res.end(JSON.stringify(answer(text)))
            }
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resume(Effect.succeed({ baseUrl: `http://127.0.0.1:${port}/v1`, received, server }))
        })
      }
    ),
    ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )

/** The value of a Prometheus sample (`name{labels} value`) in a `/metrics` text; 0 when absent. */
export const sample = (metrics: string, series: string): number => {
  for (const line of metrics.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
  }
  return 0
}
