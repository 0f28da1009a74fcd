import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as Http from "node:http"
import { mintedIdOf } from "./utils/headers.js"
import * as T from "./utils/TestGateway.js"

interface Case {
  readonly name: string
  readonly request: T.RawRequest
  readonly status: number
  /** The `error` code of the JSON body. */
  readonly code: string
  /** The field the message names (and starts with). */
  readonly field?: string
  /** A text the message contains. */
  readonly message?: string
}

const json = { "content-type": "application/json" }
const post = (
  body: string | Uint8Array | ReadonlyArray<Uint8Array>,
  headers: Record<string, string> = json
): T.RawRequest => ({
  method: "POST",
  path: "/v1/runs",
  headers,
  body
})
const mib = 1024 * 1024
const chunks = (count: number, size: number) => Array.from({ length: count }, () => new Uint8Array(size).fill(0x20))

/** 400 `bad_request`, the message naming `field` (and containing `message`). */
const bad = (name: string, request: T.RawRequest, field: string, message?: string): Case =>
  message === undefined
    ? { name, request, status: 400, code: "bad_request", field }
    : { name, request, status: 400, code: "bad_request", field, message }
const tooLarge = (name: string, request: T.RawRequest): Case => ({
  name,
  request,
  status: 413,
  code: "payload_too_large"
})
const notFound = (name: string, request: T.RawRequest): Case => ({ name, request, status: 404, code: "not_found" })
const get = (path: string): T.RawRequest => ({ path })
const run = (body: unknown) => post(JSON.stringify(body))
/** `n` objects nested in one another (`{"a":{"a":…1…}}`); `n` arrays likewise. */
const objects = (n: number) => "{\"a\":".repeat(n) + "1" + "}".repeat(n)
const arrays = (n: number) => "[".repeat(n) + "1" + "]".repeat(n)
const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`key${i}`, "v"]))
const badUtf8 = new Uint8Array([0x7b, 0x22, 0x69, 0x6e, 0x70, 0x75, 0x74, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])

const cases: ReadonlyArray<Case> = [
  // bodies of POST /v1/runs
  bad("not JSON", post("{input: hi}"), "body", "body is not valid JSON"),
  bad("truncated JSON", post("{\"input\": \"hi\""), "body"),
  bad("empty body", post(""), "body", "body is empty"),
  bad("whitespace body", post("  \n "), "body"),
  bad("JSON array", post("[]"), "body", "must be a JSON object"),
  bad("JSON string", post("\"hi\""), "body"),
  bad("JSON null", post("null"), "body"),
  bad("JSON number", post("42"), "body"),
  bad("no input", post("{}"), "input", "input: is missing"),
  bad("empty input", run({ input: "" }), "input", "input: must not be empty"),
  bad("input of the wrong type", run({ input: 5 }), "input"),
  bad("input too long", run({ input: "x".repeat(100_001) }), "input"),
  bad("agent with a path in it", run({ input: "hi", agent: "../../etc/passwd" }), "agent"),
  bad("unknown agent", run({ input: "hi", agent: "nobody" }), "agent"),
  bad("empty conversation_id", run({ input: "hi", conversation_id: "" }), "conversation_id"),
  bad("metadata not strings", run({ input: "hi", metadata: { a: 1 } }), "metadata.a"),
  bad("metadata an array", run({ input: "hi", metadata: ["a"] }), "metadata"),
  bad(
    "__proto__ in metadata",
    post("{\"input\":\"hi\",\"metadata\":{\"__proto__\":{\"polluted\":\"yes\"}}}"),
    "metadata.__proto__"
  ),
  bad("metadata a string", run({ input: "hi", metadata: "a" }), "metadata"),
  bad("metadata null", run({ input: "hi", metadata: null }), "metadata"),
  bad("metadata value null", run({ input: "hi", metadata: { a: null } }), "metadata.a", "must be a string"),
  bad("metadata value an object", run({ input: "hi", metadata: { a: { b: "c" } } }), "metadata.a"),
  bad("metadata of 33 keys", run({ input: "hi", metadata: keys(33) }), "metadata", "at most 32 keys"),
  bad("metadata with an empty key", run({ input: "hi", metadata: { "": "x" } }), "metadata.", "must not be empty"),
  bad(
    "metadata with a 65-character key",
    run({ input: "hi", metadata: { ["k".repeat(65)]: "x" } }),
    `metadata.${"k".repeat(64)}…`,
    "at most 64 characters"
  ),
  bad("metadata naming the store's state", run({ input: "hi", metadata: { state: "COMPLETED" } }), "metadata.state"),
  bad("metadata naming created_at", run({ input: "hi", metadata: { created_at: "0" } }), "metadata.created_at"),
  bad("metadata naming the ingress's route", run({ input: "hi", metadata: { route: "/x" } }), "metadata.route"),
  bad("metadata naming error", run({ input: "hi", metadata: { error: "none" } }), "metadata.error"),
  bad("invalid UTF-8", post(badUtf8), "body", "not valid UTF-8"),
  bad("deeply nested JSON", post("[".repeat(200_000) + "]".repeat(200_000)), "body", "more than 64 levels"),
  bad("input nesting 2,050 objects (10 KB)", post(`{"input":${objects(2050)}}`), "input", "more than 64 levels"),
  bad("input nesting 100 objects", post(`{"input":${objects(100)}}`), "input", "more than 64 levels"),
  bad("input nesting 10,000 objects", post(`{"input":${objects(10_000)}}`), "input", "more than 64 levels"),
  bad("input nesting 100 arrays", post(`{"input":${arrays(100)}}`), "input", "more than 64 levels"),
  bad("input nesting 10,000 arrays", post(`{"input":${arrays(10_000)}}`), "input", "more than 64 levels"),
  bad("metadata nesting 100 objects", post(`{"input":"hi","metadata":${objects(100)}}`), "metadata", "levels"),
  bad("an unknown field nesting 100 arrays", post(`{"input":"hi","extra":${arrays(100)}}`), "extra", "levels"),
  bad("a body of 100 arrays", post(arrays(100)), "body", "more than 64 levels"),
  bad("nesting 64 levels (the limit) is decoded", post(`{"input":${objects(63)}}`), "input", "Expected string"),
  bad("nesting in a string does not count", run({ input: "{".repeat(10_000), metadata: "[" }), "metadata"),
  bad("text/plain", post("{\"input\":\"hi\"}", { "content-type": "text/plain" }), "content-type"),
  bad("a form", post("input=hi", { "content-type": "application/x-www-form-urlencoded" }), "content-type"),
  bad("multipart", post("--x--", { "content-type": "multipart/form-data; boundary=x" }), "content-type"),
  tooLarge("2 MiB with content-length", run({ input: "x".repeat(2 * mib) })),
  tooLarge("2 MiB chunked", post(chunks(32, 64 * 1024))),
  tooLarge("a lying content-length (over the limit)", post("{}", { ...json, "content-length": String(2 * mib) })),
  // query parameters of GET /api/traces
  bad("limit not a number", get("/api/traces?limit=abc"), "limit"),
  bad("limit zero", get("/api/traces?limit=0"), "limit"),
  bad("limit too large", get("/api/traces?limit=1000"), "limit"),
  bad("limit fractional", get("/api/traces?limit=1.5"), "limit"),
  bad("limit twice", get("/api/traces?limit=1&limit=2"), "limit"),
  bad("unknown status", get("/api/traces?status=bogus"), "status"),
  bad("empty status", get("/api/traces?status="), "status"),
  bad("bad percent-encoding in a query", get("/api/traces?status=%ZZ"), "status"),
  bad("a cursor no listing returned", get("/api/traces?cursor=garbage"), "cursor"),
  // path parameters
  bad("trace id not a UUID", get("/api/traces/hello"), "trace_id"),
  bad("trace id in upper case", get("/api/traces/0AF76519-16CD-43DD-8448-EB211C80319C"), "trace_id"),
  bad("the nil trace id", get("/api/traces/00000000-0000-0000-0000-000000000000"), "trace_id"),
  bad("encoded path traversal in the id", get("/api/traces/..%2F..%2Fetc%2Fpasswd"), "trace_id"),
  notFound("bad percent-encoding in the id (the router matches nothing)", get("/api/traces/%E0%A4%A")),
  notFound("path traversal", get("/../../etc/passwd")),
  notFound("traversal under /api", get("/api/traces/../../../etc/passwd")),
  notFound("an 8 KiB path", get(`/${"a".repeat(8 * 1024)}`)),
  // methods
  notFound("GET /v1/runs", get("/v1/runs")),
  notFound("PUT /v1/runs", { ...run({ input: "hi" }), method: "PUT" }),
  notFound("DELETE a trace", { method: "DELETE", path: "/api/traces/01900000-0000-7000-8000-000000000001" }),
  notFound("POST /healthz", { method: "POST", path: "/healthz", headers: json, body: "{}" }),
  notFound("PURGE (a method no route has)", { method: "PURGE", path: "/healthz" }),
  notFound("OPTIONS", { method: "OPTIONS", path: "/v1/runs" })
]

layer(T.layerMemory, { excludeTestServices: true })("malformed requests", (it) => {
  it.effect.each(cases)("$name: $status $code", (c) =>
    Effect.gen(function*() {
      const answer = yield* T.raw(c.request)
      expect(answer.status, answer.text.slice(0, 300)).toBe(c.status)
      expect(answer.json?.error, answer.text.slice(0, 300)).toBe(c.code)
      expect(typeof answer.json.message).toBe("string")
      if (c.field !== undefined) {
        expect(answer.json.field).toBe(c.field)
        expect(answer.json.message.startsWith(c.field) || answer.json.message.startsWith(`${c.field}:`)).toBe(true)
      }
      if (c.message !== undefined) expect(answer.json.message).toContain(c.message)
      mintedIdOf(answer)
    }))

  it.effect("a method Node's parser does not know is refused by Node itself with 400, and the server goes on", () =>
    Effect.gen(function*() {
      const answer = yield* T.raw({ method: "BREW", path: "/healthz" })
      expect(answer.status).toBe(400)
      expect((yield* T.postRun({ input: "still here" })).status).toBe(200)
    }))

  it.effect("a 413 leaves the kept-alive connection usable: the refused body is drained, not the socket closed", () =>
    Effect.gen(function*() {
      for (const body of [JSON.stringify({ input: "x".repeat(2 * mib) }), chunks(32, 64 * 1024)]) {
        const agent = new Http.Agent({ keepAlive: true, maxSockets: 1 })
        const refused = yield* T.raw({ ...post(body), agent })
        expect(refused.status).toBe(413)
        const next = yield* T.raw({ ...post(JSON.stringify({ input: "next" })), agent })
        expect(next.status).toBe(200)
        expect(next.json.output).toBe("echo: next")
        expect(next.reusedSocket).toBe(true)
        agent.destroy()
      }
    }))

  it.effect("after the whole table the server still answers, and no answer was a 5xx", () =>
    Effect.gen(function*() {
      for (const c of cases) expect(c.status).toBeLessThan(500)
      const answer = yield* T.postRun({ input: "still here" })
      expect(answer.status).toBe(200)
      expect(answer.json.output).toBe("echo: still here")
    }))
})
