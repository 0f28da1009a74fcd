/**
 * A fake model provider on a free loopback port: each request gets the answer a script gives it, written byte for
 * byte as the provider's documented examples show (a JSON body, server-sent events), or a misbehaviour (the
 * connection cut after some events, a stall that sends nothing). Every request it received is kept.
 */
import { Effect } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/** A request the fake server received. */
export interface Received {
  readonly method: string
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Record<string, unknown>
}

/** What the fake server answers. */
export type Answer =
  /** A whole body (a JSON document, usually). */
  | { readonly _tag: "body"; readonly status: number; readonly headers?: Record<string, string>; readonly body: string }
  /** Server-sent events, each written as its own chunk; `cut`: the socket is destroyed after them, mid-stream. */
  | { readonly _tag: "events"; readonly events: ReadonlyArray<string>; readonly cut?: boolean }
  /** Nothing: no status line, no byte, until the client gives up. */
  | { readonly _tag: "stall" }

/** A JSON body. */
export const json = (status: number, value: unknown, headers?: Record<string, string>): Answer => ({
  _tag: "body",
  status,
  body: typeof value === "string" ? value : JSON.stringify(value),
  headers: { "content-type": "application/json", ...headers }
})

/** Server-sent events, given as the exact text of each (`data: {...}\n\n`). */
export const events = (events: ReadonlyArray<string>, options?: { readonly cut?: boolean }): Answer => ({
  _tag: "events",
  events,
  ...(options?.cut === true ? { cut: true } : {})
})

/** A stall. */
export const stall: Answer = { _tag: "stall" }

/** The running fake server. */
export interface Server {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string
  readonly received: Array<Received>
}

/** Starts the server for the scope; `respond` gets each request and its 1-based number. */
export const fakeUpstream = (respond: (request: Received, n: number) => Answer) =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: Http.Server; readonly sockets: Set<import("node:net").Socket> } & Server>(
      (resume) => {
        const received: Array<Received> = []
        const sockets = new Set<import("node:net").Socket>()
        const server = Http.createServer((req, res) => {
          const chunks: Array<Buffer> = []
          req.on("data", (chunk: Buffer) => chunks.push(chunk))
          req.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8")
            const request: Received = {
              method: req.method ?? "",
              path: req.url ?? "",
              headers: req.headers,
              body: text === "" ? {} : JSON.parse(text)
            }
            received.push(request)
            const answer = respond(request, received.length)
            switch (answer._tag) {
              case "body":
                res.writeHead(answer.status, answer.headers ?? {})
                res.end(answer.body)
                return
              case "stall":
                return
              case "events": {
                res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
                for (const event of answer.events) res.write(event)
                if (answer.cut === true) {
                  // Let the written events leave first, then drop the connection without ending the chunked body.
                  setTimeout(() => res.socket?.destroy(), 20)
                } else {
                  res.end()
                }
                return
              }
            }
          })
        })
        server.on("connection", (socket) => {
          sockets.add(socket)
          socket.once("close", () => sockets.delete(socket))
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, received, server, sockets }))
        })
      }
    ),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )

/** `data: <json>\n\n`, as Chat Completions and the Responses API stream. */
export const data = (value: unknown): string => `data: ${typeof value === "string" ? value : JSON.stringify(value)}\n\n`

/** `event: <name>\ndata: <json>\n\n`, as the Anthropic Messages API streams. */
export const named = (name: string, value: unknown): string => `event: ${name}\ndata: ${JSON.stringify(value)}\n\n`
