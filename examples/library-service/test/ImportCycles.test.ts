/**
 * No import cycles in any package's sources: a module graph with a cycle evaluates one of its modules before what it
 * imports is defined (a class `extends undefined`, a layer built from `undefined`), depending on which module a
 * consumer happens to load first. Runtime imports are what count for every package (`import type` is erased, and an
 * `internal/` module may name its public module's types); `@sg/agent-runtime` keeps even its types acyclic, its
 * schemas and errors in the leaf module `Run`.
 */
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")

/** One import of a module: what it names, and whether only types come through it. */
interface Edge {
  readonly to: string
  readonly typeOnly: boolean
}

const clause = String.raw`\*(?:\s+as\s+\w+)?|\{[^}]*\}|\w+(?:\s*,\s*(?:\{[^}]*\}|\*\s+as\s+\w+))?`
const statement = new RegExp(String.raw`^\s*(import|export)\s+(type\s+)?(${clause})\s+from\s+"([^"]+)"`, "gm")
const bare = /^\s*import\s+"([^"]+)"/gm

/** The static imports and re-exports of a module's text (dynamic `import()` loads later and cannot deadlock). */
const importsOf = (text: string): Array<{ readonly specifier: string; readonly typeOnly: boolean }> => [
  ...Array.from(text.matchAll(statement), (match) => {
    const names = match[3]!
    const typeOnly = match[2] !== undefined || (names.startsWith("{") &&
      names.slice(1, -1).split(",").map((name) => name.trim()).filter((name) => name !== "")
        .every((name) => name.startsWith("type ")))
    return { specifier: match[4]!, typeOnly }
  }),
  ...Array.from(text.matchAll(bare), (match) => ({ specifier: match[1]!, typeOnly: false }))
]

/** The graph of `sources` (path to text): each module's relative imports that land on another of them. */
const graphOf = (sources: ReadonlyMap<string, string>): Map<string, Array<Edge>> =>
  new Map(Array.from(sources, ([file, text]) => [
    file,
    importsOf(text).flatMap(({ specifier, typeOnly }) => {
      if (!specifier.startsWith(".")) return []
      const to = path.resolve(path.dirname(file), specifier).replace(/\.js$/, ".ts")
      return sources.has(to) ? [{ to, typeOnly }] : []
    })
  ]))

/** The strongly connected components with a cycle (Tarjan), each sorted, following the edges `follow` keeps. */
const cyclesOf = (
  graph: ReadonlyMap<string, ReadonlyArray<Edge>>,
  follow: (edge: Edge) => boolean
): Array<Array<string>> => {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const found: Array<Array<string>> = []
  const visit = (node: string) => {
    index.set(node, index.size)
    low.set(node, index.get(node)!)
    stack.push(node)
    onStack.add(node)
    for (const edge of graph.get(node) ?? []) {
      if (!follow(edge)) continue
      if (!index.has(edge.to)) {
        visit(edge.to)
        low.set(node, Math.min(low.get(node)!, low.get(edge.to)!))
      } else if (onStack.has(edge.to)) {
        low.set(node, Math.min(low.get(node)!, index.get(edge.to)!))
      }
    }
    if (low.get(node) !== index.get(node)) return
    const component: Array<string> = []
    let member: string
    do {
      member = stack.pop()!
      onStack.delete(member)
      component.push(member)
    } while (member !== node)
    const selfLoop = (graph.get(node) ?? []).some((edge) => follow(edge) && edge.to === node)
    if (component.length > 1 || selfLoop) found.push(component.sort())
  }
  for (const node of graph.keys()) if (!index.has(node)) visit(node)
  return found
}

const filesUnder = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return filesUnder(full)
    return /\.tsx?$/.test(entry.name) && !entry.name.endsWith(".d.ts") ? [full] : []
  })

const projects = ["packages", "apps", "examples"].flatMap((group) =>
  fs.readdirSync(path.join(root, group)).map((name) => `${group}/${name}`)
).filter((dir) => fs.existsSync(path.join(root, dir, "src")))

const sourcesOf = (dir: string): Map<string, string> =>
  new Map(filesUnder(path.join(root, dir, "src")).map((file) => [file, fs.readFileSync(file, "utf8")]))

const shown = (cycles: ReadonlyArray<ReadonlyArray<string>>) =>
  cycles.map((cycle) => cycle.map((file) => path.relative(root, file)).join(" <-> "))

const runtime = (edge: Edge) => !edge.typeOnly

describe("import cycles", () => {
  it("the walker finds a cycle, and ignores one that only types close", () => {
    const sources = new Map([
      ["/p/src/A.ts", `import * as B from "./B.js"\nexport const a = B.b`],
      ["/p/src/B.ts", `import {\n  type A,\n  a\n} from "./A.js"\nexport * from "./internal/c.js"`],
      ["/p/src/internal/c.ts", `import type { A } from "../A.js"\nimport { type B } from "../B.js"`],
      ["/p/src/D.ts", `export { d } from "./D.js"\nconst later = () => import("./A.js")`]
    ])
    const graph = graphOf(sources)
    expect(cyclesOf(graph, runtime)).toEqual([["/p/src/A.ts", "/p/src/B.ts"], ["/p/src/D.ts"]])
    expect(cyclesOf(graph, () => true)).toEqual([
      ["/p/src/A.ts", "/p/src/B.ts", "/p/src/internal/c.ts"],
      ["/p/src/D.ts"]
    ])
  })

  it("every package sees its sources", () => {
    expect(projects).toContain("packages/agent-runtime")
    for (const dir of projects) expect(graphOf(sourcesOf(dir)).size, dir).toBeGreaterThan(0)
  })

  for (const dir of projects) {
    it(`${dir}: no cycle of runtime imports in src`, () => {
      expect(shown(cyclesOf(graphOf(sourcesOf(dir)), runtime))).toEqual([])
    })
  }

  it("packages/agent-runtime: no cycle in src, type imports included", () => {
    expect(shown(cyclesOf(graphOf(sourcesOf("packages/agent-runtime")), () => true))).toEqual([])
  })
})
