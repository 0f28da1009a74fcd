import { describe, expect, it, layer } from "@effect/vitest"
import type { ExecutionRecord } from "@sg/trace"
import { Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Page } from "playwright-core"
import * as Chromium from "./Chromium.js"
import { markup, Seeds } from "./ViewerGateway.js"
import * as ViewerGateway from "./ViewerGateway.js"

const screenshots = Path.join(import.meta.dirname, "..", "..", "test-results")
const unknownId = "01900000-0000-7000-8000-0000000fffff"
// The screenshots' folder (gitignored).
Fs.mkdirSync(screenshots, { recursive: true })

/** What a page did besides rendering: dialogs it opened, errors it logged or threw. */
interface Watched {
  readonly page: Page
  readonly dialogs: Array<string>
  readonly errors: Array<string>
}

const p = <A>(f: () => Promise<A>) => Effect.promise(f)

/** A fresh page at `path` (closed with the test's scope), with its dialogs and errors watched. */
const open = (path: string) =>
  Effect.gen(function*() {
    const browser = yield* Chromium.Browser
    const { baseUrl } = yield* Seeds
    const page = yield* Effect.acquireRelease(
      p(() => browser.newPage({ viewport: { width: 1360, height: 900 } })),
      (page) => p(() => page.close())
    )
    page.setDefaultTimeout(5_000)
    const watched: Watched = { page, dialogs: [], errors: [] }
    page.on("dialog", (dialog) => {
      watched.dialogs.push(dialog.message())
      void dialog.dismiss()
    })
    page.on("pageerror", (error) => watched.errors.push(error.message))
    page.on("console", (msg) => {
      if (msg.type() === "error") watched.errors.push(msg.text())
    })
    const response = yield* p(() => page.goto(`${baseUrl}${path}`))
    return { ...watched, response }
  })

const apiRecord = (id: string) =>
  Effect.flatMap(Seeds, ({ baseUrl }) =>
    p(() =>
      fetch(`${baseUrl}/api/traces/${id}`).then((r) => r.json() as Promise<{ record: ExecutionRecord.ExecutionRecord }>)
    ))

/** The rows of the waterfall: kind, depth, status, circuit, label and where the bar sits in its track (0 to 1). */
const rowsOf = (page: Page) =>
  p(() =>
    page.locator("#waterfall .row").evaluateAll((rows) =>
      rows.map((row) => {
        const track = row.querySelector(".track")!.getBoundingClientRect()
        const bar = row.querySelector(".bar")!
        const box = bar.getBoundingClientRect()
        const view = row.ownerDocument.defaultView!
        const style = view.getComputedStyle(bar)
        return {
          kind: row.getAttribute("data-kind"),
          depth: Number(row.getAttribute("data-depth")),
          id: row.getAttribute("data-id"),
          status: row.getAttribute("data-status"),
          circuit: row.getAttribute("data-circuit"),
          name: row.querySelector(".name")!.textContent,
          label: row.querySelector(".label")!.textContent ?? "",
          indent: parseFloat(view.getComputedStyle(row.querySelector(".label")!).paddingLeft),
          track: { left: track.left, right: track.right, width: track.width },
          bar: { left: box.left, right: box.right, width: box.width },
          color: style.backgroundColor,
          image: style.backgroundImage
        }
      })
    )
  )

const rowIdsOf = (page: Page) =>
  p(() => page.locator("#traces tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-trace-id"))))

const cspViolations = (errors: ReadonlyArray<string>) => errors.filter((e) => e.includes("Content Security Policy"))

const suite = layer(Layer.mergeAll(ViewerGateway.layer, Chromium.layer), {
  excludeTestServices: true,
  timeout: "60 seconds"
})

const missing = Chromium.missing()
const underCi = ["", "0", "false"].includes((process.env["CI"] ?? "").toLowerCase()) === false

if (missing === undefined) {
  suite("the trace viewer in headless Chromium", (it) => {
    it.scoped("GET / serves the page under its CSP; the list shows every record, newest first", () =>
      Effect.gen(function*() {
        const seeds = yield* Seeds
        const { errors, page, response } = yield* open("/")
        const headers = response!.headers()
        expect(response!.status()).toBe(200)
        expect(headers["content-type"]).toBe("text/html; charset=utf-8")
        expect(headers["content-security-policy"]).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/)
        expect(headers["x-trace-id"]).toMatch(/^[0-9a-f-]{36}$/)
        expect(headers["traceparent"]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)

        yield* p(() => page.locator("#traces tbody tr").first().waitFor())
        const ids = yield* rowIdsOf(page)
        expect(ids).toEqual([...seeds.all].reverse())
        const first = page.locator(`#traces tbody tr[data-trace-id="${seeds.timeout}"] td`)
        expect(yield* p(() => first.nth(2).textContent())).toBe("timeout")
        expect(yield* p(() => first.nth(3).textContent())).toBe("assistant")
        const fanOut = page.locator(`#traces tbody tr[data-trace-id="${seeds.fanOut}"] td`)
        expect(yield* p(() => fanOut.nth(3).textContent())).toBe("assistant, researcher")
        expect(yield* p(() => fanOut.nth(5).textContent())).toBe("4")
        expect(errors).toEqual([])
        yield* p(() => page.screenshot({ path: Path.join(screenshots, "viewer-list.png"), fullPage: true }))
      }))

    it.scoped("filters by status and agent, and pages with the API's cursor both ways", () =>
      Effect.gen(function*() {
        const seeds = yield* Seeds
        const { errors, page } = yield* open("/")
        yield* p(() => page.locator("#traces tbody tr").first().waitFor())

        yield* p(() => page.selectOption("select[name=status]", "error"))
        yield* p(() => page.waitForURL(/status=error/))
        yield* p(() => page.locator(`#traces tbody tr[data-trace-id="${seeds.rejected}"]`).waitFor())
        expect(yield* rowIdsOf(page)).toEqual([seeds.rejected, ...[...seeds.failed].reverse()])

        yield* p(() => page.selectOption("select[name=status]", "timeout"))
        yield* p(() => page.waitForURL(/status=timeout/))
        yield* p(() => page.locator(`#traces tbody tr[data-trace-id="${seeds.timeout}"]`).waitFor())
        expect(yield* rowIdsOf(page)).toEqual([seeds.timeout])

        yield* p(() => page.selectOption("select[name=status]", ""))
        yield* p(() => page.fill("input[name=agent]", "researcher"))
        yield* p(() => page.click("form.filters button[type=submit]"))
        yield* p(() => page.waitForURL(/agent=researcher/))
        yield* p(() => page.locator(`#traces tbody tr[data-trace-id="${seeds.script}"]`).waitFor())
        expect(yield* rowIdsOf(page)).toEqual([seeds.script, seeds.fanOut])

        // Pages of three: 8 records make pages of 3, 3 and 2; "Newer" walks back through the same pages.
        const newest = [...seeds.all].reverse()
        yield* p(() => page.goto(`${seeds.baseUrl}/?limit=3`))
        const pageAt = (n: number) => newest.slice(n * 3, n * 3 + 3)
        const expectPage = (n: number) =>
          Effect.gen(function*() {
            yield* p(() => page.locator(`#traces tbody tr[data-trace-id="${pageAt(n)[0]}"]`).waitFor())
            expect(yield* rowIdsOf(page)).toEqual(pageAt(n))
            expect(yield* p(() => page.locator(".pager span").textContent())).toBe(`page ${n + 1}`)
          })
        yield* expectPage(0)
        expect(yield* p(() => page.isDisabled("#newer"))).toBe(true)
        yield* p(() => page.click("#older"))
        yield* expectPage(1)
        expect(page.url()).toMatch(/cursor=/)
        yield* p(() => page.click("#older"))
        yield* expectPage(2)
        expect(yield* p(() => page.isDisabled("#older"))).toBe(true)
        yield* p(() => page.click("#newer"))
        yield* expectPage(1)
        yield* p(() => page.click("#newer"))
        yield* expectPage(0)
        yield* p(() => page.goBack())
        yield* expectPage(1)
        expect(errors).toEqual([])
      }))

    it.scoped("opens a record as a waterfall: runs, sub-agents indented under the parent, calls, bars on an axis", () =>
      Effect.gen(function*() {
        const seeds = yield* Seeds
        const { errors, page } = yield* open("/")
        yield* p(() => page.click(`#traces a[href="/traces/${seeds.fanOut}"]`))
        yield* p(() => page.waitForURL(`${seeds.baseUrl}/traces/${seeds.fanOut}`))
        yield* p(() => page.locator("#waterfall .row").first().waitFor())

        const rows = yield* rowsOf(page)
        expect(rows.map((r) => `${r.depth} ${r.kind} ${r.name}`)).toEqual([
          "0 run assistant",
          "1 inference demo",
          "1 tool fan_out",
          "1 run researcher",
          "2 inference demo",
          "1 run researcher",
          "2 inference demo",
          "1 run researcher",
          "2 inference demo",
          "1 inference demo"
        ])
        const root = rows[0]!
        const researchers = rows.filter((r) => r.kind === "run" && r.depth === 1)
        for (const sub of researchers) expect(sub.indent).toBeGreaterThan(root.indent)

        // Tokens per run, as the record has them.
        const { record } = yield* apiRecord(seeds.fanOut)
        for (const run of record.runs) {
          const row = rows.find((r) => r.id === run.run_id)!
          const steps = `${run.steps} step${run.steps === 1 ? "" : "s"}`
          expect(row.label).toContain(`${steps} · ${run.tokens.input} → ${run.tokens.output} tokens`)
        }

        // Each bar sits where its start and duration put it on the record's axis, inside its track.
        const all = [...record.runs, ...record.runs.flatMap((r) => [...r.inference_calls, ...r.tool_calls])]
        const start = Math.min(Date.parse(record.started_at), ...all.map((s) => Date.parse(s.started_at)))
        // The axis ends at the latest of the record's end and every span's start + duration, the record's own included
        // (its duration is monotonic and may exceed ended_at - started_at by a millisecond).
        const end = Math.max(
          Date.parse(record.ended_at),
          Date.parse(record.started_at) + record.duration_ms,
          ...all.map((s) => Date.parse(s.started_at) + s.duration_ms)
        )
        for (const row of rows) {
          const item = all.find((s) => ("run_id" in s ? s.run_id : s.call_id) === row.id)!
          expect(row.bar.left).toBeGreaterThanOrEqual(row.track.left - 0.5)
          expect(row.bar.right).toBeLessThanOrEqual(row.track.right + 0.5)
          const left = (row.bar.left - row.track.left) / row.track.width
          expect(left).toBeCloseTo((Date.parse(item.started_at) - start) / (end - start), 2)
          const width = row.bar.width / row.track.width
          if (row.bar.width > 2.5) expect(width).toBeCloseTo(item.duration_ms / (end - start), 2)
        }
        for (const sub of researchers) {
          expect(sub.bar.left).toBeGreaterThanOrEqual(root.bar.left)
          expect(sub.bar.right).toBeLessThanOrEqual(root.bar.right + 0.5)
        }
        expect(yield* p(() => page.locator("#waterfall .axis .ticks span").first().textContent())).toBe("0 ms")

        // The lifecycle from Redis beside the record.
        expect(yield* p(() => page.locator("#lifecycle-state").textContent())).toBe("COMPLETED")
        expect(yield* p(() => page.locator("#record-status").textContent())).toBe("success")

        // A call opens on click with its input and output; a second click closes it.
        const tool = page.locator("#waterfall .row[data-kind=tool]")
        yield* p(() => tool.click())
        const detail = page.locator("#waterfall .detail")
        expect(yield* p(() => detail.locator("pre.input").textContent())).toBe(
          record.runs[0]!.tool_calls[0]!.input
        )
        expect(yield* p(() => detail.locator("pre.output").textContent())).toContain("\"answers\"")
        yield* p(() => page.screenshot({ path: Path.join(screenshots, "viewer.png"), fullPage: true }))
        yield* p(() => tool.click())
        expect(yield* p(() => detail.count())).toBe(0)

        // Back to the list it came from.
        yield* p(() => page.click("#back"))
        yield* p(() => page.waitForURL(`${seeds.baseUrl}/`))
        yield* p(() => page.locator("#traces tbody tr").first().waitFor())
        expect(cspViolations(errors)).toEqual([])
        expect(errors).toEqual([])
      }))

    it.scoped("errors, timeouts and breaker rejections stand out in colour and are marked", () =>
      Effect.gen(function*() {
        const seeds = yield* Seeds
        const { page } = yield* open(`/traces/${seeds.toolError}`)
        yield* p(() => page.locator("#waterfall .row").first().waitFor())
        const withError = yield* rowsOf(page)
        const failedTool = withError.find((r) => r.kind === "tool")!
        expect(failedTool.status).toBe("error")
        expect(failedTool.label).toContain("error")
        const okModel = withError.find((r) => r.kind === "inference" && r.status === "success")!

        yield* p(() => page.goto(`${seeds.baseUrl}/traces/${seeds.fanOut}`))
        yield* p(() => page.locator("#waterfall .row").first().waitFor())
        const okTool = (yield* rowsOf(page)).find((r) => r.kind === "tool")!
        expect(okTool.status).toBe("success")
        expect(failedTool.color).not.toBe(okTool.color)
        expect(failedTool.color).not.toBe(okModel.color)

        yield* p(() => page.goto(`${seeds.baseUrl}/traces/${seeds.timeout}`))
        yield* p(() => page.locator("#waterfall .row").first().waitFor())
        const timedOut = (yield* rowsOf(page)).find((r) => r.kind === "tool")!
        expect(timedOut.status).toBe("timeout")
        expect(new Set([timedOut.color, failedTool.color, okTool.color]).size).toBe(3)
        expect(yield* p(() => page.locator("#lifecycle-state").textContent())).toBe("EGRESS")

        yield* p(() => page.goto(`${seeds.baseUrl}/traces/${seeds.rejected}`))
        yield* p(() => page.locator("#waterfall .row").first().waitFor())
        const rejected = (yield* rowsOf(page)).find((r) => r.kind === "inference")!
        expect(rejected.circuit).toBe("model:demo")
        expect(rejected.label).toContain("breaker model:demo open")
        expect(rejected.image).toContain("repeating-linear-gradient")
        expect(yield* p(() => page.locator("#lifecycle-state").textContent())).toBe("ERRORED")
        expect(yield* p(() => page.locator("#lifecycle").textContent())).toContain("circuit_open")
        yield* p(() => page.locator("#waterfall .row[data-kind=inference]").click())
        expect(yield* p(() => page.locator("#waterfall .detail pre.circuit").textContent())).toContain("model:demo")
        yield* p(() => page.screenshot({ path: Path.join(screenshots, "viewer-rejected.png"), fullPage: true }))

        yield* p(() => page.goto(`${seeds.baseUrl}/traces/${seeds.failed[2]}`))
        yield* p(() => page.locator("#waterfall .row").first().waitFor())
        const upstream = yield* rowsOf(page)
        expect(upstream.map((r) => [r.kind, r.status])).toEqual([["run", "error"], ["inference", "error"]])
        expect(upstream[1]!.color).toBe(failedTool.color)
      }))

    it.scoped("what a record holds shows as text: <script> in outputs and errors runs nothing", () =>
      Effect.gen(function*() {
        const seeds = yield* Seeds
        const { dialogs, errors, page } = yield* open(`/traces/${seeds.script}`)
        yield* p(() => page.locator("#waterfall .row[data-kind=tool]").click())
        const output = page.locator("#waterfall .detail pre.output")
        expect(yield* p(() => output.innerText())).toContain("Notes on <script>alert(1)</script> (background)")
        expect(yield* p(() => output.innerHTML())).toContain("&lt;script&gt;alert(1)&lt;/script&gt;")

        yield* p(() => page.goto(`${seeds.baseUrl}/traces/${seeds.timeout}`))
        yield* p(() => page.locator("#waterfall .row[data-kind=tool]").click())
        const toolError = page.locator("#waterfall .detail pre.error-text")
        expect(yield* p(() => toolError.innerText())).toContain(markup.toolError)
        expect(yield* p(() => page.locator("#record").innerText())).toContain(markup.runError)
        expect(yield* p(() => page.locator("#lifecycle").innerText())).toContain(markup.platform)
        yield* p(() => page.locator("#waterfall .row[data-kind=run]").click())
        expect(yield* p(() => page.locator("#waterfall .detail pre.error-text").first().innerText())).toBe(
          markup.runError
        )
        yield* p(() => page.screenshot({ path: Path.join(screenshots, "viewer-markup.png"), fullPage: true }))

        const created = yield* p(() => page.evaluate<string>("`${document.scripts.length} ${document.images.length}`"))
        expect(created, "script and img elements in the page").toBe("1 0")
        yield* p(() => page.waitForTimeout(100))
        expect(dialogs).toEqual([])
        expect(errors).toEqual([])
      }))

    it.scoped("a shared link opens its trace; an unknown or malformed id says so", () =>
      Effect.gen(function*() {
        const seeds = yield* Seeds
        const { page } = yield* open(`/#/traces/${seeds.fanOut}`)
        yield* p(() => page.locator("#waterfall .row").first().waitFor())
        expect(page.url()).toBe(`${seeds.baseUrl}/traces/${seeds.fanOut}`)
        expect(yield* p(() => page.title())).toBe(`sg trace ${seeds.fanOut}`)

        yield* p(() => page.goto(`${seeds.baseUrl}/traces/${unknownId}`))
        const unknown = page.locator("#message[data-kind=unknown]")
        yield* p(() => unknown.waitFor())
        expect(yield* p(() => unknown.textContent())).toContain(`No trace ${unknownId}`)

        yield* p(() => page.goto(`${seeds.baseUrl}/traces/not-a-trace-id`))
        const malformed = page.locator("#message[data-kind=malformed]")
        yield* p(() => malformed.waitFor())
        expect(yield* p(() => malformed.textContent())).toContain("“not-a-trace-id” is not a trace id")

        yield* p(() => page.goto(`${seeds.baseUrl}/traces/${seeds.toolError.toUpperCase()}`))
        yield* p(() => malformed.waitFor())
        yield* p(() => malformed.locator("a").click())
        yield* p(() => page.waitForURL(`${seeds.baseUrl}/traces/${seeds.toolError}`))
        yield* p(() => page.locator("#waterfall .row").first().waitFor())

        yield* p(() => page.goto(`${seeds.baseUrl}/traces/%3Cscript%3Ealert(1)%3C%2Fscript%3E`))
        yield* p(() => malformed.waitFor())
        expect(yield* p(() => malformed.innerText())).toContain("“<script>alert(1)</script>” is not a trace id")
        expect(yield* p(() => page.evaluate<number>("document.scripts.length"))).toBe(1)
      }))
  })
} else {
  describe("the trace viewer in headless Chromium", () => {
    it("runs wherever Chromium is installed, and always under CI", () => {
      if (underCi) expect.fail(`the browser tests must run under CI, but ${missing}`)
      console.log(`browser tests not run: ${missing}`)
      expect(underCi).toBe(false)
    })
  })
}
