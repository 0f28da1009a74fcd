/**
 * sg as another project installs it: each package packed (`pnpm pack`, as it would be published), installed into a
 * fresh project outside the workspace (offline, from the store this workspace filled), type-checked there with
 * `tsc` and run with plain `node`, reading `dist/` through the `exports` maps. Needs the build (`pnpm build`,
 * which `pnpm test` runs first).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const packages = ["redis", "trace", "resilience", "leader"]

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (cwd: string, file: string, args: ReadonlyArray<string>) =>
  Effect.async<Ran>((resume) => {
    execFile(file, args, { cwd, timeout: 120_000, env: { ...process.env, CI: "true" } }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
      resume(Effect.succeed({ code, stdout, stderr }))
    })
  })

const ok = (ran: Ran, what: string) => {
  expect(ran.code, `${what}:\n${ran.stdout}\n${ran.stderr}`).toBe(0)
  return ran
}

describe("sg's packages, packed and installed by another project", () => {
  it.scopedLive("type-check and run against dist/, with one copy of effect and no ioredis", () =>
    Effect.gen(function*() {
      for (const name of packages) {
        const built = path.join(root, "packages", name, "dist", "index.js")
        expect(fs.existsSync(built), `${built} is missing: run pnpm build`).toBe(true)
      }
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "sg-consumer-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const packs = path.join(dir, "packs")
      for (const name of packages) {
        ok(yield* run(path.join(root, "packages", name), "pnpm", ["pack", "--pack-destination", packs]), `pack ${name}`)
      }
      const tarball = (name: string) => `file:${path.join(packs, `sg-${name}-0.2.0.tgz`)}`
      const effect = JSON.parse(fs.readFileSync(path.join(root, "node_modules/effect/package.json"), "utf8")).version
      const project = path.join(dir, "app")
      fs.mkdirSync(project)
      fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({
        name: "consumer",
        private: true,
        type: "module",
        dependencies: { "@sg/trace": tarball("trace"), "@sg/resilience": tarball("resilience"), effect }
      }))
      // The packed packages name each other by version; point those at the tarballs too.
      fs.writeFileSync(
        path.join(project, "pnpm-workspace.yaml"),
        `overrides:\n${packages.map((name) => `  "@sg/${name}": "${tarball(name)}"\n`).join("")}`
      )
      ok(yield* run(project, "pnpm", ["install", "--offline"]), "pnpm install")

      fs.copyFileSync(path.join(root, "examples/library-service/test/consumer/main.ts"), path.join(project, "main.ts"))
      fs.writeFileSync(path.join(project, "tsconfig.json"), JSON.stringify({
        compilerOptions: {
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          strict: true,
          exactOptionalPropertyTypes: true,
          skipLibCheck: true,
          outDir: "out"
        },
        files: ["main.ts"]
      }))
      ok(yield* run(project, process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "."]), "tsc")

      const answer = ok(yield* run(project, process.execPath, ["out/main.js"]), "node out/main.js")
      expect(JSON.parse(answer.stdout)).toMatchObject({ state: "COMPLETED", answer: 42 })

      // One effect for every package (peer dependencies), and no ioredis for a memory-only project.
      const store = fs.readdirSync(path.join(project, "node_modules/.pnpm"))
      expect(store.filter((entry) => entry.startsWith("effect@"))).toEqual([`effect@${effect}`])
      expect(store.filter((entry) => entry.startsWith("ioredis@"))).toEqual([])

      // Internals are not part of the contract.
      const internal = yield* run(project, process.execPath, ["-e", "import('@sg/trace/internal/uuidv7.js')"])
      expect(internal.code).not.toBe(0)
      expect(internal.stderr).toContain("ERR_PACKAGE_PATH_NOT_EXPORTED")
    }), { timeout: 180_000 })
})
