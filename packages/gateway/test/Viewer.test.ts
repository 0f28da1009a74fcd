import { NodeContext } from "@effect/platform-node"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Viewer from "../src/Viewer.js"
import { mintedIdOf } from "./utils/headers.js"
import * as T from "./utils/TestGateway.js"

const file = Fs.readFileSync(Viewer.pageUrl, "utf8")

/** The text between an opening tag that starts with `open` and its closing tag, found without a regex. */
const between = (html: string, open: string, close: string): string => {
  const start = html.indexOf(">", html.indexOf(open)) + 1
  return html.slice(start, html.indexOf(close, start))
}
const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`
const script = between(file, "<script", "</script>")

layer(T.layerMemory, { excludeTestServices: true })("the viewer page, served by the gateway", (it) => {
  it.effect("GET /, /traces/:id: the page, HTML, under a CSP allowing only its own script and style", () =>
    Effect.gen(function*() {
      for (const path of ["/", "/traces/01900000-0000-7000-8000-0000000fffff", "/traces/not-an-id", "/?status=error"]) {
        const answer = yield* T.raw({ path })
        expect(answer.status, path).toBe(200)
        expect(answer.headers["content-type"]).toBe("text/html; charset=utf-8")
        expect(answer.text).toBe(file.replace(/\r\n?/g, "\n"))
        const csp = answer.headers["content-security-policy"]
        expect(csp).toBe(
          `default-src 'none'; script-src ${sha256(script)}; style-src ${
            sha256(between(file, "<style", "</style>"))
          }; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`
        )
        expect(answer.headers["x-content-type-options"]).toBe("nosniff")
        // The ingress wraps the page too.
        mintedIdOf(answer)
      }
    }))

  it.effect("only the page's own routes answer HTML: other paths stay JSON 404s", () =>
    Effect.gen(function*() {
      for (const path of ["/traces", "/traces/a/b", "/index.html", "/viewer.js"]) {
        const answer = yield* T.raw({ path })
        expect(answer.status, path).toBe(404)
        expect(answer.json).toMatchObject({ error: "not_found" })
      }
      const post = yield* T.raw({ method: "POST", path: "/" })
      expect(post.status).toBe(404)
    }))
})

describe("Viewer", () => {
  it("the page reads only the public /api/traces routes and never writes HTML from data", () => {
    expect([...new Set(script.match(/\/api\/[a-z]+/g))]).toEqual(["/api/traces"])
    for (const sink of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"]) {
      expect(script.includes(sink), sink).toBe(false)
    }
  })

  it("hashes what the browser hashes: line endings normalized to LF", () => {
    const page = Viewer.fromHtml("<style>\r\nb{}\r\n</style><script type=\"module\">\r\n1\r</script>")
    expect(new TextDecoder().decode(page.html)).toBe("<style>\nb{}\n</style><script type=\"module\">\n1\n</script>")
    expect(page.contentSecurityPolicy).toContain(`script-src ${sha256("\n1\n")};`)
    expect(page.contentSecurityPolicy).toContain(`style-src ${sha256("\nb{}\n")};`)
  })

  it("allows no script or style at all when the page has none inline; scripts with src are not hashed", () => {
    const csp = Viewer.contentSecurityPolicyOf("<p>hi</p><script src=\"/x.js\"></script>")
    expect(csp).toContain("script-src 'none';")
    expect(csp).toContain("style-src 'none';")
  })

  it.effect("a page that cannot be read is a ViewerUnavailable naming where it looked", () =>
    Effect.gen(function*() {
      const url = new URL("../viewer/missing.html", Viewer.pageUrl)
      const error = yield* Effect.flip(Viewer.load(url))
      expect(error._tag).toBe("ViewerUnavailable")
      expect(error.path).toBe(url.href)
      expect(error.message).toContain(`cannot be read from ${url.href}`)
    }).pipe(Effect.provide(NodeContext.layer)))

  it.effect("loads the package's own page", () =>
    Effect.gen(function*() {
      const page = yield* Viewer.load()
      expect(page.html.byteLength).toBe(Buffer.byteLength(file.replace(/\r\n?/g, "\n")))
      expect(page.contentSecurityPolicy).toContain(sha256(script))
    }).pipe(Effect.provide(NodeContext.layer)))
})
