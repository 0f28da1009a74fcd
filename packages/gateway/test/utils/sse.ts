/**
 * Test helpers for event streams: parse `text/event-stream` bodies, and open a stream that the test reads part of and
 * then walks away from (a client that goes away).
 */
import { HttpServer } from "@effect/platform"
import { Effect } from "effect"
import * as Http from "node:http"

/** One parsed event: its name (`message` when unnamed) and its `data`, JSON-parsed when it is JSON. */
export interface Event {
  readonly event: string
  readonly data: any
}

/** The events of a `text/event-stream` body. */
export const parse = (text: string): Array<Event> =>
  text.split("\n\n").filter((block) => block.trim() !== "").map((block) => {
    let event = "message"
    const data: Array<string> = []
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7)
      else if (line.startsWith("data: ")) data.push(line.slice(6))
    }
    const joined = data.join("\n")
    try {
      return { event, data: JSON.parse(joined) }
    } catch {
      return { event, data: joined }
    }
  })

/** A stream opened by `openStream`: its status and headers, the first body chunk, and the way to walk away. */
export interface Opened {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly first: string
  readonly close: () => void
}

/** POSTs `body` to `path` and resolves once the first body chunk arrived (failing after 10 s of nothing). */
export const openStream = (path: string, body: unknown) =>
  Effect.flatMap(HttpServer.HttpServer, (server) =>
    Effect.async<Opened, Error>((resume) => {
      const address = server.address
      if (address._tag !== "TcpAddress") return resume(Effect.fail(new Error("not a TCP server")))
      const timer = setTimeout(() => {
        req.destroy()
        resume(Effect.fail(new Error("no first chunk within 10s")))
      }, 10_000)
      const req = Http.request({
        host: "127.0.0.1",
        port: address.port,
        method: "POST",
        path,
        headers: { "content-type": "application/json" },
        agent: false
      }, (res) => {
        res.once("data", (chunk: Buffer) => {
          clearTimeout(timer)
          resume(Effect.succeed({
            status: res.statusCode ?? 0,
            headers: res.headers,
            first: chunk.toString("utf8"),
            close: () => {
              res.destroy()
              req.destroy()
            }
          }))
        })
      })
      req.on("error", () => undefined)
      req.end(JSON.stringify(body))
    }))
