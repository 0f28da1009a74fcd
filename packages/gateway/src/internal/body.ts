/**
 * Reads a JSON request body under a size limit, with an error naming what is wrong for every way it can be bad.
 *
 * Hand-written rather than `request.json`: that one dies on bad JSON (a 500), decodes bad UTF-8 into U+FFFD
 * silently, and on an oversized body destroys the socket, so the client never sees its 413. Here a declared
 * `content-length` over the limit is refused before a byte is read, and a chunked body that grows past it stops
 * being buffered; its remaining bytes are discarded, so the connection stays usable and the 413 arrives.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { Readable } from "node:stream"
import { BadRequest, PayloadTooLarge } from "../ApiError.js"
import { type Path, tooDeep } from "./depth.js"

/** How deep a body may nest (objects and arrays, the body itself level 1); deeper is refused before parsing. */
export const maxDepth = 64

const tooLarge = (limit: number) =>
  new PayloadTooLarge({ limit_bytes: limit, message: `body is larger than ${limit} bytes` })

const isJsonMediaType = (contentType: string | undefined): boolean => {
  if (contentType === undefined) return true
  const media = contentType.split(";", 1)[0]!.trim().toLowerCase()
  return media === "" || media === "application/json" || media.endsWith("+json")
}

const fromNode = (source: Readable, limit: number): Effect.Effect<Uint8Array, BadRequest | PayloadTooLarge> =>
  Effect.async((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const cleanup = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
      source.off("close", onClose)
    }
    function onData(chunk: Buffer) {
      size += chunk.length
      if (size > limit) {
        cleanup()
        // Keep reading, into nothing: the socket must be drained for the 413 to be read and the connection reused.
        source.resume()
        resume(Effect.fail(tooLarge(limit)))
      } else {
        chunks.push(chunk)
      }
    }
    function onEnd() {
      cleanup()
      resume(Effect.succeed(Buffer.concat(chunks, size)))
    }
    function onError() {
      cleanup()
      resume(Effect.fail(new BadRequest({ field: "body", message: "body could not be read: the connection failed" })))
    }
    function onClose() {
      cleanup()
      resume(Effect.fail(new BadRequest({ field: "body", message: "body was cut off before its end" })))
    }
    if (source.readableEnded) return resume(Effect.succeed(new Uint8Array(0)))
    source.on("data", onData)
    source.once("end", onEnd)
    source.once("error", onError)
    source.once("close", onClose)
    return Effect.sync(cleanup)
  })

const fromStream = (
  request: HttpServerRequest.HttpServerRequest,
  limit: number
): Effect.Effect<Uint8Array, BadRequest | PayloadTooLarge> =>
  Stream.runFoldEffect(
    request.stream,
    { chunks: [] as Array<Uint8Array>, size: 0 },
    (acc, chunk): Effect.Effect<{ chunks: Array<Uint8Array>; size: number }, PayloadTooLarge> => {
      acc.size += chunk.length
      if (acc.size > limit) return Effect.fail(tooLarge(limit))
      acc.chunks.push(chunk)
      return Effect.succeed(acc)
    }
  ).pipe(
    Effect.catchTag("RequestError", () =>
      Effect.fail(new BadRequest({ field: "body", message: "body could not be read" }))),
    Effect.map(({ chunks, size }) => {
      const out = new Uint8Array(size)
      let offset = 0
      for (const chunk of chunks) {
        out.set(chunk, offset)
        offset += chunk.length
      }
      return out
    })
  )

/** The raw body bytes, refused past `limit` bytes (before reading when `content-length` says so). */
export const readBytes = (
  request: HttpServerRequest.HttpServerRequest,
  limit: number
): Effect.Effect<Uint8Array, BadRequest | PayloadTooLarge> =>
  Effect.suspend(() => {
    const declared = request.headers["content-length"]
    if (declared !== undefined && Number(declared) > limit) return Effect.fail(tooLarge(limit))
    const source: unknown = NodeHttpServerRequest.toIncomingMessage(request)
    return source instanceof Readable ? fromNode(source, limit) : fromStream(request, limit)
  })

const utf8 = new TextDecoder("utf-8", { fatal: true })

const segment = (key: string | number): string =>
  typeof key === "number" ? String(key) : key.length > 64 ? `${key.slice(0, 64)}…` : key

/** Too deep: named by the body's field it happened in (`body` for an array), the path shown shortened. */
const tooDeepError = (path: Path): BadRequest => {
  const field = typeof path[0] === "string" ? segment(path[0]) : "body"
  const shown = path.length <= 6
    ? path.map(segment)
    : [...path.slice(0, 3).map(segment), "…", ...path.slice(-2).map(segment)]
  return new BadRequest({
    field,
    message: `${field}: nests more than ${maxDepth} levels deep (objects and arrays), at ${shown.join(".")}`
  })
}

/**
 * The body parsed as JSON: a JSON media type, at most `limit` bytes, valid UTF-8, non-empty, at most `maxDepth`
 * levels deep, valid JSON.
 */
export const readJson = (
  request: HttpServerRequest.HttpServerRequest,
  limit: number
): Effect.Effect<unknown, BadRequest | PayloadTooLarge> => {
  const contentType = request.headers["content-type"]
  if (!isJsonMediaType(contentType)) {
    return Effect.fail(
      new BadRequest({
        field: "content-type",
        message: `content-type: expected application/json, got ${JSON.stringify(contentType)}`
      })
    )
  }
  return Effect.flatMap(readBytes(request, limit), (bytes) => {
    let text: string
    try {
      text = utf8.decode(bytes)
    } catch {
      return Effect.fail(new BadRequest({ field: "body", message: "body is not valid UTF-8" }))
    }
    if (text.trim() === "") {
      return Effect.fail(new BadRequest({ field: "body", message: "body is empty: expected a JSON object" }))
    }
    const deep = tooDeep(text, maxDepth)
    if (deep !== undefined) return Effect.fail(tooDeepError(deep))
    try {
      return Effect.succeed(JSON.parse(text) as unknown)
    } catch {
      return Effect.fail(new BadRequest({ field: "body", message: "body is not valid JSON" }))
    }
  })
}
