/**
 * A local OTLP/HTTP trace receiver for tests: a plain `node:http` server on a free loopback port that decodes what it
 * is sent with the official OTLP definitions (the protobufjs code `@opentelemetry/otlp-transformer` 0.57 generates from
 * opentelemetry-proto; `http/protobuf` decoded as is, `http/json` through the same message types), keeps every span,
 * and can be made to refuse connections, answer slowly or fail, so tests see what an exporter does to a bad collector.
 *
 * Needs the optional peer `@opentelemetry/otlp-transformer@0.57`: only this module imports it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"
import { createRequire } from "node:module"
import type { AddressInfo, Socket } from "node:net"

interface MessageType {
  decode(bytes: Uint8Array): object
  verify(value: object): string | null
  fromObject(value: object): object
  toObject(message: object, options: Record<string, unknown>): Record<string, unknown>
}

const require = createRequire(import.meta.url)
interface Root {
  readonly opentelemetry: {
    readonly proto: {
      readonly collector: { readonly trace: { readonly v1: { readonly ExportTraceServiceRequest: MessageType } } }
    }
  }
}
const root = require("@opentelemetry/otlp-transformer/build/src/generated/root.js") as Root
const ExportTraceServiceRequest = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest

/** A span as the receiver decoded it: ids as hex, attributes as plain values. */
export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly kind: number
  readonly startTimeUnixNano: string
  readonly endTimeUnixNano: string
  readonly attributes: Readonly<Record<string, unknown>>
  readonly status: { readonly code: number; readonly message: string | undefined }
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: Readonly<Record<string, unknown>> }>
  readonly resource: Readonly<Record<string, unknown>>
  readonly scope: { readonly name: string; readonly version: string | undefined }
  readonly schemaUrl: string | undefined
}

/** One request the receiver answered. */
export interface ReceivedRequest {
  readonly contentType: string
  readonly headers: Http.IncomingHttpHeaders
  readonly spans: number
}

/** How the receiver answers. */
export type Behavior =
  | { readonly _tag: "Accept" }
  | { readonly _tag: "Slow"; readonly delay: Duration.DurationInput }
  | { readonly _tag: "Status"; readonly status: number }

/** The running receiver. */
export interface Receiver {
  readonly port: number
  /** `http://127.0.0.1:<port>/v1/traces`. */
  readonly url: string
  /** `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  readonly baseUrl: string
  /** Every span decoded so far, in the order received. */
  readonly spans: Effect.Effect<ReadonlyArray<ReceivedSpan>>
  readonly requests: Effect.Effect<ReadonlyArray<ReceivedRequest>>
  /** Requests that arrived, whatever they were answered. */
  readonly attempts: Effect.Effect<number>
  /** Bodies it could not decode, with why; a test expects none. */
  readonly errors: Effect.Effect<ReadonlyArray<string>>
  readonly setBehavior: (behavior: Behavior) => Effect.Effect<void>
  /** Stops listening (connections are refused) and closes the open ones. */
  readonly down: Effect.Effect<void>
  /** Listens again, on the same port. */
  readonly up: Effect.Effect<void>
  readonly clear: Effect.Effect<void>
}

const toHex = (value: unknown): string | undefined => {
  if (value instanceof Uint8Array) return value.length === 0 ? undefined : Buffer.from(value).toString("hex")
  return undefined
}

const hexToBytes = (value: unknown): unknown =>
  typeof value === "string" && /^[0-9a-fA-F]*$/.test(value) ? Buffer.from(value, "hex") : value

const valueOf = (any: Record<string, unknown> | undefined): unknown => {
  if (any === undefined) return undefined
  if ("stringValue" in any) return any["stringValue"]
  if ("boolValue" in any) return any["boolValue"]
  if ("intValue" in any) return Number(any["intValue"])
  if ("doubleValue" in any) return any["doubleValue"]
  if ("arrayValue" in any) {
    const values = (any["arrayValue"] as { values?: Array<Record<string, unknown>> }).values ?? []
    return values.map(valueOf)
  }
  if ("kvlistValue" in any) {
    return attributesOf((any["kvlistValue"] as { values?: Array<Record<string, unknown>> }).values)
  }
  if ("bytesValue" in any) return any["bytesValue"]
  return undefined
}

const attributesOf = (list: ReadonlyArray<Record<string, unknown>> | undefined): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const kv of list ?? []) out[String(kv["key"])] = valueOf(kv["value"] as Record<string, unknown> | undefined)
  return out
}

type Obj = Record<string, unknown>
const list = (value: unknown): Array<Obj> => (Array.isArray(value) ? (value as Array<Obj>) : [])

/** The JSON form's hex ids as bytes, so the protobuf message type reads it (OTLP/JSON differs there from proto3's). */
const idsToBytes = (request: Obj): Obj => {
  for (const resourceSpans of list(request["resourceSpans"])) {
    for (const scopeSpans of list(resourceSpans["scopeSpans"])) {
      for (const span of list(scopeSpans["spans"])) {
        for (const key of ["traceId", "spanId", "parentSpanId"]) if (key in span) span[key] = hexToBytes(span[key])
        for (const link of list(span["links"])) {
          for (const key of ["traceId", "spanId"]) if (key in link) link[key] = hexToBytes(link[key])
        }
      }
    }
  }
  return request
}

/** A span time that is neither a decimal string nor a safe integer (which `fromObject` would quietly read as 0). */
const badTimes = (request: Obj): string | undefined => {
  for (const resourceSpans of list(request["resourceSpans"])) {
    for (const scopeSpans of list(resourceSpans["scopeSpans"])) {
      for (const span of list(scopeSpans["spans"])) {
        for (const key of ["startTimeUnixNano", "endTimeUnixNano"]) {
          const value = span[key]
          if (!(typeof value === "string" && /^\d+$/.test(value)) && !Number.isSafeInteger(value)) {
            return `span ${String(span["name"])}: ${key} is not a 64-bit integer`
          }
        }
      }
    }
  }
  return undefined
}

/** Decodes an export request body; the spans, or why it is not a valid `ExportTraceServiceRequest`. */
export const decode = (contentType: string, body: Buffer): ReadonlyArray<ReceivedSpan> | string => {
  let message: object
  try {
    if (contentType.startsWith("application/json")) {
      const json = idsToBytes(JSON.parse(body.toString("utf8")) as Obj)
      const times = badTimes(json)
      if (times !== undefined) return `invalid OTLP/JSON: ${times}`
      // `fromObject` reads the proto3 JSON mapping (64-bit integers as decimal strings); `verify` checks the result.
      message = ExportTraceServiceRequest.fromObject(json)
      const problem = ExportTraceServiceRequest.verify(message)
      if (problem !== null) return `invalid OTLP/JSON: ${problem}`
    } else if (contentType.startsWith("application/x-protobuf")) {
      message = ExportTraceServiceRequest.decode(body)
    } else {
      return `unexpected content-type ${contentType}`
    }
  } catch (error) {
    return `undecodable body: ${String(error)}`
  }
  const decoded = ExportTraceServiceRequest.toObject(message, { longs: String, enums: Number, bytes: Buffer })
  const spans: Array<ReceivedSpan> = []
  for (const resourceSpans of list(decoded["resourceSpans"])) {
    const resource = attributesOf(list((resourceSpans["resource"] as Obj | undefined)?.["attributes"]))
    for (const scopeSpans of list(resourceSpans["scopeSpans"])) {
      const scope = (scopeSpans["scope"] ?? {}) as Obj
      for (const span of list(scopeSpans["spans"])) {
        const status = (span["status"] ?? {}) as Obj
        spans.push({
          traceId: toHex(span["traceId"]) ?? "",
          spanId: toHex(span["spanId"]) ?? "",
          parentSpanId: toHex(span["parentSpanId"]),
          name: String(span["name"] ?? ""),
          kind: Number(span["kind"] ?? 0),
          startTimeUnixNano: String(span["startTimeUnixNano"] ?? "0"),
          endTimeUnixNano: String(span["endTimeUnixNano"] ?? "0"),
          attributes: attributesOf(list(span["attributes"])),
          status: { code: Number(status["code"] ?? 0), message: status["message"] as string | undefined },
          events: list(span["events"]).map((event) => ({
            name: String(event["name"] ?? ""),
            attributes: attributesOf(list(event["attributes"]))
          })),
          resource,
          scope: { name: String(scope["name"] ?? ""), version: scope["version"] as string | undefined },
          schemaUrl: scopeSpans["schemaUrl"] as string | undefined
        })
      }
    }
  }
  return spans
}

/** Starts a receiver on a free loopback port for the scope. */
export const make: Effect.Effect<Receiver, never, Scope.Scope> = Effect.gen(function*() {
  const spans: Array<ReceivedSpan> = []
  const requests: Array<ReceivedRequest> = []
  const errors: Array<string> = []
  let behavior: Behavior = { _tag: "Accept" }
  let attempts = 0
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()

  const server = Http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      attempts++
      const answer = () => {
        if (behavior._tag === "Status") {
          res.writeHead(behavior.status, { "content-type": "application/json" })
          return res.end("{}")
        }
        const contentType = String(req.headers["content-type"] ?? "")
        const decoded = decode(contentType, Buffer.concat(chunks))
        if (typeof decoded === "string") {
          errors.push(decoded)
          res.writeHead(400, { "content-type": "application/json" })
          return res.end(JSON.stringify({ message: decoded }))
        }
        requests.push({ contentType, headers: req.headers, spans: decoded.length })
        spans.push(...decoded)
        // An empty ExportTraceServiceResponse in the request's encoding.
        if (contentType.startsWith("application/json")) {
          res.writeHead(200, { "content-type": "application/json" })
          res.end("{}")
        } else {
          res.writeHead(200, { "content-type": "application/x-protobuf" })
          res.end()
        }
      }
      if (behavior._tag === "Slow") {
        const timer = setTimeout(() => {
          timers.delete(timer)
          answer()
        }, Duration.toMillis(Duration.decode(behavior.delay)))
        timers.add(timer)
      } else {
        answer()
      }
    })
  })
  server.on("connection", (socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
  })

  const listen = (port: number) =>
    Effect.async<number>((resume) => {
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
    })
  const close = Effect.async<void>((resume) => {
    for (const timer of timers) clearTimeout(timer)
    timers.clear()
    if (!server.listening) return resume(Effect.void)
    server.close(() => resume(Effect.void))
    for (const socket of sockets) socket.destroy()
  })

  const port = yield* Effect.acquireRelease(listen(0), () => close)
  return {
    port,
    url: `http://127.0.0.1:${port}/v1/traces`,
    baseUrl: `http://127.0.0.1:${port}`,
    spans: Effect.sync(() => spans.slice()),
    requests: Effect.sync(() => requests.slice()),
    attempts: Effect.sync(() => attempts),
    errors: Effect.sync(() => errors.slice()),
    setBehavior: (next) => Effect.sync(() => void (behavior = next)),
    down: close,
    up: Effect.asVoid(listen(port)),
    clear: Effect.sync(() => {
      spans.length = 0
      requests.length = 0
      errors.length = 0
      attempts = 0
    })
  }
})
