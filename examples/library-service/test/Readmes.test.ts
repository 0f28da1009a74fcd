/**
 * Every README's checked snippets: a ```ts block right after `<!-- snippet: <path> -->` must be the file at `<path>`
 * (relative to the README), and that file must be in its package's tsconfig, so `pnpm typecheck` compiles what the
 * README shows and the README cannot drift from it.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

const root = path.resolve(import.meta.dirname, "../../..")

/** The READMEs whose main snippet must be checked. */
const required = [
  "packages/redis",
  "packages/trace",
  "packages/resilience",
  "packages/leader",
  "packages/otel",
  "packages/agent-runtime",
  "examples/library-service"
]

const packages = ["packages", "apps", "examples"].flatMap((group) =>
  fs.readdirSync(path.join(root, group)).map((name) => `${group}/${name}`)
).filter((dir) => fs.existsSync(path.join(root, dir, "README.md")))

interface Snippet {
  readonly file: string
  readonly code: string | undefined
}

const marker = /<!-- snippet: (\S+) -->\n(?:```ts\n([\s\S]*?)^```$)?/gm

const snippetsOf = (readme: string): Array<Snippet> =>
  Array.from(readme.matchAll(marker), (match) => ({ file: match[1]!, code: match[2] }))

/** What a package's type check covers: the `include` of its source and test projects. */
const includes = (dir: string): ReadonlyArray<string> =>
  ["tsconfig.src.json", "tsconfig.test.json"].flatMap((name) => {
    const file = path.join(root, dir, name)
    if (!fs.existsSync(file)) return []
    const tsconfig = JSON.parse(fs.readFileSync(file, "utf8")) as { include?: unknown }
    return Array.isArray(tsconfig.include) ? tsconfig.include.filter((entry) => typeof entry === "string") : []
  })

describe("README snippets", () => {
  it("the READMEs of the libraries and the example each have a checked snippet", () => {
    for (const dir of required) {
      expect(packages).toContain(dir)
      const snippets = snippetsOf(fs.readFileSync(path.join(root, dir, "README.md"), "utf8"))
      expect(snippets.length, `${dir}/README.md has no <!-- snippet: ... --> block`).toBeGreaterThan(0)
    }
  })

  for (const dir of packages) {
    const readme = fs.readFileSync(path.join(root, dir, "README.md"), "utf8")
    for (const snippet of snippetsOf(readme)) {
      it(`${dir}/README.md shows ${snippet.file} as it is, and the type check covers it`, () => {
        expect(snippet.code, `the marker for ${snippet.file} must be followed by a \`\`\`ts block`).toBeDefined()
        const file = path.join(root, dir, snippet.file)
        expect(fs.existsSync(file), `${dir}/${snippet.file} does not exist`).toBe(true)
        expect(snippet.code).toBe(fs.readFileSync(file, "utf8"))
        const top = snippet.file.split("/")[0]!
        expect(includes(dir), `${dir}/tsconfig.json must include ${top}`).toContain(top)
      })
    }
  }
})
