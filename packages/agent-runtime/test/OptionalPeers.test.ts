/**
 * `@effect/ai-openai` and `@effect/ai-anthropic` are optional peers: importing the package (its compiled `dist/`, as a
 * consumer does) loads neither; only building their provider loads its client. Watched with a module resolve hook in
 * a plain `node` process, so it needs the build (`pnpm build`, which `pnpm test` runs first).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Appends every module URL the process resolves to the file `SG_RESOLVED` names. */
const hook = `
import { appendFileSync } from "node:fs"
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  appendFileSync(process.env.SG_RESOLVED, resolved.url + "\\n")
  return resolved
}`

/** Imports the package, then builds the `openai` and then the `anthropic` provider, marking the log between steps. */
const program = `
import { register } from "node:module"
import { appendFileSync } from "node:fs"
register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hook)}))
const mark = (step) => appendFileSync(process.env.SG_RESOLVED, "--- " + step + "\\n")
const { Provider } = await import("@sg/agent-runtime")
const { ConfigProvider, Effect, Layer } = await import("effect")
mark("index")
const build = (vars) => Effect.runPromise(Effect.scoped(Layer.build(Provider.layerConfig)).pipe(
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))
))
await build({ SG_MODEL: "demo" })
mark("demo")
await build({ SG_MODEL: "openai", OPENAI_API_KEY: "test" })
mark("openai")
await build({ SG_MODEL: "anthropic", ANTHROPIC_API_KEY: "test" })
mark("anthropic")
`

const openai = /@effect[+/]ai-openai/
const anthropic = /@effect[+/]ai-anthropic/

describe("optional peers", () => {
  it.scopedLive("the index loads neither; building the openai or anthropic provider loads its own", () =>
    Effect.gen(function*() {
      const built = path.join(dir, "dist", "index.js")
      expect(fs.existsSync(built), `${built} is missing: run pnpm build`).toBe(true)
      const log = yield* Effect.acquireRelease(
        Effect.sync(() => path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sg-peers-")), "resolved.txt")),
        (file) => Effect.sync(() => fs.rmSync(path.dirname(file), { recursive: true, force: true }))
      )
      fs.writeFileSync(log, "")
      const ran = yield* Effect.async<{ code: number; stderr: string }>((resume) => {
        execFile(
          process.execPath,
          ["--input-type=module", "-e", program],
          { cwd: dir, timeout: 60_000, env: { ...process.env, SG_RESOLVED: log } },
          (error, _stdout, stderr) => resume(Effect.succeed({ code: error === null ? 0 : 1, stderr }))
        )
      })
      expect(ran.code, ran.stderr).toBe(0)

      const steps = new Map<string, Array<string>>()
      let urls: Array<string> = []
      for (const line of fs.readFileSync(log, "utf8").split("\n")) {
        if (line.startsWith("--- ")) {
          steps.set(line.slice(4), urls)
          urls = []
        } else if (line !== "") urls.push(line)
      }
      const index = steps.get("index") ?? []
      expect(index.some((url) => url.endsWith("/agent-runtime/dist/index.js")), "the compiled index is imported").toBe(
        true
      )
      expect(index.filter((url) => openai.test(url) || anthropic.test(url))).toEqual([])
      expect((steps.get("demo") ?? []).filter((url) => openai.test(url) || anthropic.test(url))).toEqual([])
      expect((steps.get("openai") ?? []).some((url) => openai.test(url))).toBe(true)
      expect((steps.get("openai") ?? []).some((url) => anthropic.test(url))).toBe(false)
      expect((steps.get("anthropic") ?? []).some((url) => anthropic.test(url))).toBe(true)
    }), { timeout: 90_000 })

  it("no declaration the index reaches names either of them", () => {
    const seen = new Set<string>()
    const visit = (file: string) => {
      if (seen.has(file) || !fs.existsSync(file)) return
      seen.add(file)
      const text = fs.readFileSync(file, "utf8")
      expect(text, path.relative(dir, file)).not.toMatch(/(?:from\s*|import\(\s*)"@effect\/ai-(?:openai|anthropic)/)
      for (const match of text.matchAll(/(?:from|import\()\s*"(\.{1,2}\/[^"]+)\.js"/g)) {
        visit(path.resolve(path.dirname(file), `${match[1]}.d.ts`))
      }
    }
    visit(path.join(dir, "dist", "index.d.ts"))
    expect(seen.size).toBeGreaterThan(10)
  })
})
