/**
 * What an outside project relies on in each package's shape: publishable `package.json` fields, peers for `effect`
 * and `@effect/*`, internals blocked, a README that starts with an install line naming every required peer, and the
 * example importing sg only through public exports.
 */
import { describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const libraries = fs.readdirSync(path.join(root, "packages")).map((name) => `packages/${name}`)
  .filter((dir) => fs.existsSync(path.join(root, dir, "package.json")))

interface Manifest {
  readonly name: string
  readonly private?: boolean
  readonly version?: string
  readonly license?: string
  readonly files?: ReadonlyArray<string>
  readonly exports: Record<string, unknown>
  readonly dependencies?: Record<string, string>
  readonly peerDependencies?: Record<string, string>
  readonly peerDependenciesMeta?: Record<string, { readonly optional?: boolean }>
}

const manifest = (dir: string): Manifest => JSON.parse(fs.readFileSync(path.join(root, dir, "package.json"), "utf8"))

const sourceFiles = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "node_modules" || entry.name === "dist" ? [] : sourceFiles(full)
    return /\.tsx?$/.test(entry.name) ? [full] : []
  })

describe("package shape", () => {
  for (const dir of libraries) {
    const pkg = manifest(dir)
    it(`${pkg.name}: publishable, effect as a peer, internals blocked`, () => {
      expect(pkg.private).toBeUndefined()
      expect(pkg.version).toBe("0.2.0")
      expect(pkg.license).toBe("MIT")
      expect(pkg.files).toContain("dist")
      expect(pkg.exports["./internal/*"]).toBeNull()
      for (const [key, target] of Object.entries(pkg.exports)) {
        if (target === null) continue
        expect(target, key).toMatchObject({ types: expect.stringMatching(/^\.\/dist\/.*\.d\.ts$/) })
        expect(target, key).toMatchObject({ import: expect.stringMatching(/^\.\/dist\/.*\.js$/) })
      }
      const runtime = Object.keys(pkg.dependencies ?? {})
      expect(runtime.filter((name) => name === "effect" || name.startsWith("@effect/") || name === "ioredis")).toEqual([])
      expect(pkg.peerDependencies?.["effect"]).toBeDefined()
    })

    it(`${pkg.name}: the README starts with an install line naming every required peer`, () => {
      const readme = fs.readFileSync(path.join(root, dir, "README.md"), "utf8")
      const install = /^# [^\n]+\n\n```sh\n([\s\S]*?)```/.exec(readme)
      expect(install, "an install block right under the title").not.toBeNull()
      const words = install![1]!.split(/\s+/)
      expect(words.slice(0, 3)).toEqual(["pnpm", "add", pkg.name])
      const required = Object.keys(pkg.peerDependencies ?? {})
        .filter((name) => pkg.peerDependenciesMeta?.[name]?.optional !== true)
      for (const peer of required) expect(words, `${peer} in the install line`).toContain(peer)
    })
  }

  it("the example imports sg only through public exports", () => {
    const example = path.join(root, "examples/library-service")
    const offending = sourceFiles(path.join(example, "src")).concat(sourceFiles(path.join(example, "test")))
      .flatMap((file) =>
        Array.from(fs.readFileSync(file, "utf8").matchAll(/from "([^"]+)"/g), (match) => match[1]!)
          .filter((specifier) =>
            /^@sg\/[^/]+\/(src|dist|internal)\//.test(specifier) || /(^|\/)(packages|apps)\//.test(specifier))
          .map((specifier) => `${path.relative(root, file)}: ${specifier}`)
      )
    expect(offending).toEqual([])
  })
})
