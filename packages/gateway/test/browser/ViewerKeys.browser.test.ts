import { HttpServer } from "@effect/platform"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Access from "../utils/AccessGateway.js"
import { keys, send } from "../utils/AccessGateway.js"
import { mintedIdOf } from "../utils/headers.js"
import * as Chromium from "./Chromium.js"

const p = <A>(f: () => Promise<A>) => Effect.promise(f)

const baseUrl = Effect.map(HttpServer.HttpServer, (server) => {
  const address = server.address
  if (address._tag !== "TcpAddress") throw new Error("not a TCP server")
  return `http://127.0.0.1:${address.port}`
})

const missing = Chromium.missing()
const underCi = ["", "0", "false"].includes((process.env["CI"] ?? "").toLowerCase()) === false

if (missing === undefined) {
  layer(Layer.merge(Access.make(), Chromium.layer), { excludeTestServices: true, timeout: "60 seconds" })(
    "the trace viewer on a gateway with API keys, in headless Chromium",
    (it) => {
      it.scoped("asks for a key once, keeps it for the tab, sends it as a bearer header, says when it lacks read", () =>
        Effect.gen(function*() {
          const acme = mintedIdOf(yield* send("POST", "/v1/runs", keys.acme, { input: "acme in the viewer" }))
          const globex = mintedIdOf(yield* send("POST", "/v1/runs", keys.globex, { input: "globex in the viewer" }))
          const browser = yield* Chromium.Browser
          const base = yield* baseUrl
          const context = yield* Effect.acquireRelease(p(() => browser.newContext()), (c) => p(() => c.close()))
          const page = yield* p(() => context.newPage())
          page.setDefaultTimeout(5_000)
          const requested: Array<{ url: string; authorization: string | undefined }> = []
          page.on("request", (request) => {
            requested.push({ url: request.url(), authorization: request.headers()["authorization"] })
          })
          const errors: Array<string> = []
          page.on("pageerror", (error) => errors.push(error.message))

          yield* p(() => page.goto(`${base}/`))
          yield* p(() => page.locator("#key-form").waitFor())
          expect(yield* p(() => page.locator("main").innerText())).toContain("This gateway needs an API key")

          // A key without `read` (acme's run-only key): said plainly.
          yield* p(() => page.fill("#api-key", keys.runAcme))
          yield* p(() => page.click("#key-form button[type=submit]"))
          yield* p(() => page.getByText("lacks the read scope").waitFor())

          // A key the gateway does not know: dropped, and asked for again.
          yield* p(() => page.fill("#api-key", keys.wrong))
          yield* p(() => page.click("#key-form button[type=submit]"))
          yield* p(() => page.getByText("did not accept that API key").waitFor())

          // acme's read key: acme's traces only.
          yield* p(() => page.fill("#api-key", keys.acme))
          yield* p(() => page.click("#key-form button[type=submit]"))
          yield* p(() => page.locator(`#traces tbody tr[data-trace-id="${acme}"]`).waitFor())
          expect(yield* p(() => page.locator(`#traces tbody tr[data-trace-id="${globex}"]`).count())).toBe(0)

          // Kept for the tab: a reload and a trace page ask for nothing.
          yield* p(() => page.reload())
          yield* p(() => page.locator(`#traces tbody tr[data-trace-id="${acme}"]`).waitFor())
          yield* p(() => page.goto(`${base}/traces/${acme}`))
          yield* p(() => page.locator("#waterfall").waitFor())
          expect(yield* p(() => page.evaluate<string | null>("sessionStorage.getItem(\"sg.apiKey\")"))).toBe(keys.acme)
          expect(yield* p(() => page.evaluate<number>("localStorage.length"))).toBe(0)

          // Sent as a bearer header on the API calls, never in a URL.
          const api = requested.filter((r) => new URL(r.url).pathname.startsWith("/api/"))
          expect(api.length).toBeGreaterThan(3)
          expect(api.at(-1)!.authorization).toBe(`Bearer ${keys.acme}`)
          for (const r of requested) for (const key of Object.values(keys)) expect(r.url).not.toContain(key)
          expect(errors).toEqual([])
        }))
    }
  )
} else {
  describe("the trace viewer on a gateway with API keys, in headless Chromium", () => {
    it("runs wherever Chromium is installed, and always under CI", () => {
      if (underCi) expect.fail(`the browser tests must run under CI, but ${missing}`)
      console.log(`browser tests not run: ${missing}`)
      expect(underCi).toBe(false)
    })
  })
}
