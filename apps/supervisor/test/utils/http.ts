/**
 * Raw HTTP for process-level tests: requests with `node:http` (so method, path, headers and body bytes go out as
 * given), each on a connection of its own, and a request whose body is sent in two halves with a pause between them.
 */
import { Deferred, type Duration, Effect, type Scope } from "effect"
import * as Http from "node:http"

/** What a request got back. */
export interface Answer {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
  /** The body parsed as JSON; `undefined` when it is not JSON. */
  readonly json: any
}

/** A request. */
export interface Request {
  readonly method?: string
  readonly path: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: string | Uint8Array
  /** How long the answer may take before the call fails (30 seconds): a hang fails instead of waiting forever. */
  readonly timeout?: Duration.DurationInput
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const open = (port: number, request: Request, resume: (answer: Effect.Effect<Answer, Error>) => void) => {
  const req = Http.request({
    host: "127.0.0.1",
    port,
    method: request.method ?? "GET",
    path: request.path,
    headers: { ...request.headers },
    agent: false
  }, (res) => {
    const chunks: Array<Buffer> = []
    res.on("data", (chunk: Buffer) => chunks.push(chunk))
    res.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8")
      resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, text, json: parse(text) }))
    })
    res.on("error", (error) => resume(Effect.fail(error)))
  })
  req.on("error", (error) => resume(Effect.fail(error)))
  return req
}

/** Sends a request to the server on `port` of this machine. */
export const request = (port: number, request: Request): Effect.Effect<Answer, Error> =>
  Effect.async<Answer, Error>((resume) => {
    const req = open(port, request, resume)
    if (request.body === undefined) req.end()
    else req.end(request.body)
    return Effect.sync(() => req.destroy())
  }).pipe(
    Effect.timeoutFail({
      duration: request.timeout ?? "30 seconds",
      onTimeout: () => new Error(`${request.method ?? "GET"} ${request.path} got no answer in time`)
    })
  )

/** A JSON `POST /v1/runs`. */
export const postRun = (port: number, body: unknown, headers?: Readonly<Record<string, string>>) =>
  request(port, {
    method: "POST",
    path: "/v1/runs",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })

/** A `GET`. */
export const get = (port: number, path: string) => request(port, { path })

/** A request whose headers and first half of body are out, waiting for `finish` to send the rest. */
export interface HalfSent {
  /** Sends the rest of the body and waits for the answer. */
  readonly finish: Effect.Effect<Answer, Error>
  /** Waits for the answer (or the connection's end) without sending the rest. */
  readonly answer: Effect.Effect<Answer, Error>
}

/** Starts a JSON `POST /v1/runs` and sends only the first half of its body (with its full `content-length`). */
export const halfSentRun = (
  port: number,
  body: unknown,
  headers?: Readonly<Record<string, string>>
): Effect.Effect<HalfSent, never, Scope.Scope> =>
  Effect.gen(function*() {
    const bytes = Buffer.from(JSON.stringify(body))
    const answer = yield* Deferred.make<Answer, Error>()
    const req = open(port, {
      method: "POST",
      path: "/v1/runs",
      headers: { "content-type": "application/json", "content-length": String(bytes.length), ...headers }
    }, (result) => Deferred.unsafeDone(answer, result))
    yield* Effect.addFinalizer(() => Effect.sync(() => req.destroy()))
    const half = Math.floor(bytes.length / 2)
    req.flushHeaders()
    req.write(bytes.subarray(0, half))
    return {
      finish: Effect.zipRight(Effect.sync(() => req.end(bytes.subarray(half))), Deferred.await(answer)),
      answer: Deferred.await(answer)
    }
  })
