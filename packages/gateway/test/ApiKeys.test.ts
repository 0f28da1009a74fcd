import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Option, Redacted, Schedule } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as ApiKeys from "../src/ApiKeys.js"

const a = "sk-aaaaaaaaaaaaaaaa-0001"
const b = "sk-bbbbbbbbbbbbbbbb-0002"
const c = "sk-cccccccccccccccc-0003"

const list = (text: string) => ApiKeys.parse([{ _tag: "List", text }])
const failure = (text: string) => Either.getLeft(list(text)).pipe(Option.getOrThrow)
const principal = (keys: ApiKeys.KeySet, key: string) => Option.getOrThrow(ApiKeys.lookup(keys, key))
const scopes = (p: ApiKeys.Principal) => Array.from(p.scopes).sort()

describe("ApiKeys", () => {
  it("a bare key is run,read on tenant default; <key>:<tenant>:<scopes> says both; admin is every scope", () => {
    const keys = Either.getOrThrow(list(`${a}, ${b}:acme:read , ${c}:ops:admin`))
    expect(keys.entries).toHaveLength(3)
    expect(keys.tenants).toEqual(["acme", "default", "ops"])
    const bare = principal(keys, a)
    expect(bare.tenant).toBe("default")
    expect(scopes(bare)).toEqual(["read", "run"])
    expect(scopes(principal(keys, b))).toEqual(["read"])
    expect(scopes(principal(keys, c))).toEqual(["admin", "read", "run"])
    expect(ApiKeys.allows(principal(keys, c), "run")).toBe(true)
    expect(ApiKeys.allows(principal(keys, b), "run")).toBe(false)
    expect(ApiKeys.lookup(keys, "sk-not-configured-at-all")).toEqual(Option.none())
    expect(ApiKeys.lookup(keys, `${a} `)).toEqual(Option.none())
  })

  it("scopes go after the tenant joined by ',' (continuing the entry) or '+'", () => {
    const keys = Either.getOrThrow(list(`${a}:acme:run,read,${b}:globex:run+read,admin`))
    expect(keys.entries).toHaveLength(2)
    expect(scopes(principal(keys, a))).toEqual(["read", "run"])
    expect(scopes(principal(keys, b))).toEqual(["admin", "read", "run"])
  })

  it("keeps only hashes: a key's name is the first 6 hex digits of its SHA-256, its id 32", () => {
    const keys = Either.getOrThrow(list(a))
    const p = principal(keys, a)
    expect(p.name).toMatch(/^[0-9a-f]{6}$/)
    expect(p.id.startsWith(p.name)).toBe(true)
    expect(p.id).toHaveLength(32)
    expect(JSON.stringify(keys.entries.map((e) => ({ ...e.principal, scopes: [...e.principal.scopes] })))).not
      .toContain(a)
    expect(Buffer.from(keys.entries[0]!.hash).toString("utf8")).not.toContain(a)
  })

  it("a bad entry is an InvalidApiKeys naming its position, never holding the key", () => {
    const cases: ReadonlyArray<[string, number, string]> = [
      [`${a},short`, 2, "16 to 512"],
      [`${a}:acme`, 1, "<key>:<tenant>:<scopes>"],
      [`${a}:acme:run:extra`, 1, "<key>:<tenant>:<scopes>"],
      [`${b},${a}:bad tenant:run`, 2, "tenant"],
      [`${a}:acme:write`, 1, "unknown scope"],
      [`${a}:acme:`, 1, "no scopes"],
      [`${a}:acme:run,${b}:acme:${c}`, 2, "unknown scope"],
      [`${a},${b},${a}:other:read`, 3, "repeats the key of SG_API_KEYS entry 1"]
    ]
    for (const [text, entry, says] of cases) {
      const error = failure(text)
      expect(error._tag).toBe("InvalidApiKeys")
      expect(error.source).toBe("SG_API_KEYS")
      expect(error.entry, text).toBe(entry)
      expect(error.message).toContain(`SG_API_KEYS entry ${entry}`)
      expect(error.message).toContain(says)
      for (const key of [a, b, c]) expect(error.message).not.toContain(key)
      expect(JSON.stringify(error)).not.toContain(a)
    }
  })

  it("a file has one entry a line; blank lines and # comments are skipped; errors name the line", () => {
    const keys = ApiKeys.parse([
      { _tag: "List", text: a },
      { _tag: "File", path: "/etc/sg/keys", text: `# keys\n\n${b}:acme:run,read\n  ${c}:ops:admin  \n` }
    ])
    expect(Either.getOrThrow(keys).entries).toHaveLength(3)
    const bad = Either.getLeft(ApiKeys.parse([{ _tag: "File", path: "/etc/sg/keys", text: `# x\n${b}\n${b}:t:nope\n` }]))
    expect(Option.getOrThrow(bad)).toMatchObject({ source: "/etc/sg/keys", entry: 3 })
    expect(Option.getOrThrow(bad).message).toContain("/etc/sg/keys line 3")
  })

  it.scopedLive("SG_API_KEYS_FILE is read at start-up and again on SIGHUP; a bad or emptying reload keeps the keys", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sg-keys-"))
      const file = Path.join(dir, "keys")
      Fs.writeFileSync(file, `${a}:acme:run\n`)
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      const config = ConfigProvider.fromMap(new Map([["SG_API_KEYS_FILE", file], ["SG_API_KEYS", c]]))
      const options = yield* Effect.withConfigProvider(ApiKeys.config, config)
      expect(Redacted.isRedacted(options.keys)).toBe(true)
      const service = yield* ApiKeys.make(options).pipe(Effect.provide(NodeFileSystem.layer))
      const tenantOf = (key: string) =>
        Effect.map(service.authenticate(key), Option.map((p) => `${p.tenant}:${scopes(p).join(",")}`))
      expect(yield* tenantOf(a)).toEqual(Option.some("acme:run"))
      expect(yield* tenantOf(c)).toEqual(Option.some("default:read,run"))

      Fs.writeFileSync(file, `${a}:acme:read\n${b}:globex:run\n`)
      process.emit("SIGHUP", "SIGHUP")
      // The reload reads the file on its own fiber: wait (real time) until it has.
      yield* Effect.repeat(tenantOf(b), { until: Option.isSome, schedule: Schedule.spaced("10 millis"), times: 300 })
      expect(yield* tenantOf(b)).toEqual(Option.some("globex:run"))
      expect(yield* tenantOf(a)).toEqual(Option.some("acme:read"))
      expect((yield* service.current).tenants).toEqual(["acme", "default", "globex"])

      Fs.writeFileSync(file, `${a}:acme:nope\n`)
      const bad = yield* Effect.flip(service.reload)
      expect(bad.message).toContain(`${file} line 1`)
      expect(yield* tenantOf(b)).toEqual(Option.some("globex:run"))

      Fs.rmSync(file)
      expect((yield* Effect.flip(service.reload)).message).toContain("cannot be read")
      expect(yield* tenantOf(b)).toEqual(Option.some("globex:run"))
    }))

  it.scoped("a reload that would leave no key is refused", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sg-keys-"))
      const file = Path.join(dir, "keys")
      Fs.writeFileSync(file, `${a}\n`)
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      const service = yield* ApiKeys.make({ file, reloadOnHangup: false }).pipe(Effect.provide(NodeFileSystem.layer))
      Fs.writeFileSync(file, "# nothing\n")
      expect((yield* Effect.flip(service.reload)).message).toContain("would leave no API key")
      expect((yield* service.current).entries).toHaveLength(1)
    }))
})
