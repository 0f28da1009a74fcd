/**
 * sg as another project installs it: each package packed (`pnpm pack`, as it would be published), installed into a
 * fresh project outside the workspace (offline, from the store this workspace filled), type-checked there with
 * `tsc` and run with plain `node`, reading `dist/` through the `exports` maps: once over the memory stores (no ioredis
 * installed), once over Redis. Needs the build (`pnpm build`, which `pnpm test` runs first).
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const packages = ["redis", "trace", "resilience", "leader", "agent-runtime", "gateway"]

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const run = (cwd: string, file: string, args: ReadonlyArray<string>, env?: Record<string, string>) =>
  Effect.async<Ran>((resume) => {
    execFile(file, args, { cwd, timeout: 120_000, env: { ...process.env, CI: "true", ...env } }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
      resume(Effect.succeed({ code, stdout, stderr }))
    })
  })

const ok = (ran: Ran, what: string) => {
  expect(ran.code, `${what}:\n${ran.stdout}\n${ran.stderr}`).toBe(0)
  return ran
}

/** The version of a dependency the workspace has installed, for the consumer to install the same. */
const installed = (name: string): string => {
  const where = ["node_modules", "node_modules/.pnpm/node_modules"].map((dir) => path.join(root, dir, name, "package.json"))
  const found = where.find((file) => fs.existsSync(file))
  expect(found, `${name} is not installed in the workspace`).toBeDefined()
  return JSON.parse(fs.readFileSync(found!, "utf8")).version
}

/** The peers the consumer installs beside the tarballs (the optional ones left out), and node's types. */
const peers = ["effect", "@effect/platform", "@effect/platform-node", "@effect/ai", "@effect/experimental", "@types/node"]

/** Packs every package once into a temp directory; the projects below install from it. */
const packAll = Effect.gen(function*() {
  for (const name of packages) {
    const built = path.join(root, "packages", name, "dist", "index.js")
    expect(fs.existsSync(built), `${built} is missing: run pnpm build`).toBe(true)
  }
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "sg-consumer-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const packs = path.join(dir, "packs")
  yield* Effect.forEach(packages, (name) =>
    Effect.map(
      run(path.join(root, "packages", name), "pnpm", ["pack", "--pack-destination", packs]),
      (ran) => ok(ran, `pack ${name}`)
    ), { concurrency: 3 })
  return { dir, tarball: (name: string) => `file:${path.join(packs, `sg-${name}-0.2.0.tgz`)}` }
})

/** A fresh project in `dir/name` that depends on the tarballs and `extra`, installed offline, `files` copied in. */
const project = (
  packed: Effect.Effect.Success<typeof packAll>,
  name: string,
  extra: ReadonlyArray<string>,
  files: ReadonlyArray<string>
) =>
  Effect.gen(function*() {
    const dir = path.join(packed.dir, name)
    fs.mkdirSync(dir)
    const dependencies: Record<string, string> = {}
    for (const pkg of ["trace", "resilience", "leader", "gateway", "redis"]) dependencies[`@sg/${pkg}`] = packed.tarball(pkg)
    for (const peer of [...peers, ...extra]) dependencies[peer] = installed(peer)
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name, private: true, type: "module", dependencies }))
    // The packed packages name each other by version; point those at the tarballs too.
    fs.writeFileSync(
      path.join(dir, "pnpm-workspace.yaml"),
      `overrides:\n${packages.map((pkg) => `  "@sg/${pkg}": "${packed.tarball(pkg)}"\n`).join("")}` +
        // The optional native file watcher of @effect/platform-node and msgpackr's: not needed, not built.
        "allowBuilds:\n  '@parcel/watcher': false\n  msgpackr-extract: false\n"
    )
    ok(yield* run(dir, "pnpm", ["install", "--offline"]), `pnpm install (${name})`)
    for (const file of files) {
      fs.copyFileSync(path.join(root, "examples/library-service/test/consumer", file), path.join(dir, file))
    }
    fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        lib: ["es2022", "dom"],
        strict: true,
        exactOptionalPropertyTypes: true,
        skipLibCheck: true,
        outDir: "out"
      },
      files
    }))
    ok(yield* run(dir, process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "."]), `tsc (${name})`)
    return dir
  })

/** What the consumer's program prints for a served request: a v7 trace id, its lifecycle and its record. */
const expectServed = (stdout: string) => {
  // Effect's logger writes to stdout too: the answer is the line that is JSON.
  expect(stdout).not.toMatch(/level=(WARN|ERROR|FATAL)/)
  const line = stdout.split("\n").find((l) => l.startsWith("{"))
  expect(line, stdout).toBeDefined()
  const answer = JSON.parse(line!)
  expect(answer).toMatchObject({ status: 200, body: "hello", version: 7, state: "COMPLETED", led: "led" })
  expect(answer.record).toEqual({ trace_id: answer.trace_id, status: "success", tools: ["greet"] })
}

describe("sg's packages, packed and installed by another project", () => {
  it.scopedLive("memory: type-checks and runs against dist/, with one copy of effect and no ioredis", () =>
    Effect.gen(function*() {
      const packed = yield* packAll
      const dir = yield* project(packed, "memory", [], ["app.ts", "main.ts"])
      expectServed(ok(yield* run(dir, process.execPath, ["out/main.js"]), "node out/main.js").stdout)

      // One effect for every package (peer dependencies), and no ioredis for a memory-only project.
      const store = fs.readdirSync(path.join(dir, "node_modules/.pnpm"))
      expect(store.filter((entry) => entry.startsWith("effect@"))).toEqual([`effect@${installed("effect")}`])
      expect(store.filter((entry) => entry.startsWith("ioredis@"))).toEqual([])

      // Internals are not part of the contract.
      const internal = yield* run(dir, process.execPath, ["-e", "import('@sg/trace/internal/uuidv7.js')"])
      expect(internal.code).not.toBe(0)
      expect(internal.stderr).toContain("ERR_PACKAGE_PATH_NOT_EXPORTED")
    }), { timeout: 240_000 })

  it.scopedLive("Redis: the same program over TraceStore/Redis, ExecutionStore/Redis and LeaseStore/Redis", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const packed = yield* packAll
      const dir = yield* project(packed, "redis", ["ioredis"], ["app.ts", "redis.ts"])
      const ran = ok(
        yield* run(dir, process.execPath, ["out/redis.js"], { REDIS_URL: server.url, SG_KEY_PREFIX: server.prefix }),
        "node out/redis.js"
      )
      expectServed(ran.stdout)
      // The records are in Redis, where another replica would read them.
      const id: string = JSON.parse(ran.stdout.split("\n").find((l) => l.startsWith("{"))!).trace_id
      const redis = yield* RedisClient.RedisClient
      expect(yield* redis.use("EXISTS", (client) => client.exists(redis.key("exec", id)))).toBe(1)
      expect(yield* redis.use("HGET", (client) => client.hget(redis.key("trace", id), "state"))).toBe("COMPLETED")
    }).pipe(Effect.provide(RedisTestServer.layerWithClient)), { timeout: 240_000 })
})
