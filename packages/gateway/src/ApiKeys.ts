/**
 * API keys: who may call the gateway, for which tenant, with which scopes (DESIGN.md, "Access").
 *
 * Keys come from `SG_API_KEYS` (comma-separated entries) and `SG_API_KEYS_FILE` (one entry a line, `#` comments;
 * reloaded on SIGHUP). An entry is `<key>` (scopes `run,read` on tenant `default`) or `<key>:<tenant>:<scopes>`, the
 * scopes `run`, `read`, `admin` joined by `,` or `+` (`admin` is all three). A key is 16 to 512 printable ASCII
 * characters without `:`, `,` or spaces. Only the SHA-256 of each key is kept; a presented key is hashed and compared
 * with every one in constant time. Keys never reach a log line or an error: a key's name there is the first 6 hex
 * digits of its hash, and a bad entry is named by its position.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import { ExecutionRecord } from "@sg/trace"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type { Scope as ResourceScope } from "effect/Scope"
import { createHash, timingSafeEqual } from "node:crypto"

/** What a key may do: `run` agents (`/v1/*`), `read` its tenant's traces (`/api/*`), `admin` everything. */
export const Scope = Schema.Literal("run", "read", "admin")

/** What a key may do. */
export type Scope = typeof Scope.Type

/** The tenant of a bare key. */
export const defaultTenant = "default"

/** The scopes of a bare key. */
export const defaultScopes: ReadonlyArray<Scope> = ["run", "read"]

/** Who is calling: a configured key, by its log name, with its tenant and scopes. */
export interface Principal {
  /** The first 6 hex digits of the key's SHA-256: its name in logs. */
  readonly name: string
  /** A longer digest of the key (32 hex digits), to key per-key state such as rate limits. */
  readonly id: string
  readonly tenant: string
  readonly scopes: ReadonlySet<Scope>
}

/** Whether a principal has a scope (`admin` has every scope). */
export const allows = (principal: Principal, scope: Scope): boolean =>
  principal.scopes.has("admin") || principal.scopes.has(scope)

/** The key a request came with, once the gateway has checked it; absent when access is open (no keys configured). */
export class CurrentPrincipal extends Context.Tag("@sg/gateway/ApiKeys/CurrentPrincipal")<
  CurrentPrincipal,
  Principal
>() {}

/**
 * What a route asks of its caller, as an annotation on the `Api` declaration's groups and endpoints: a `scope`, or
 * `open` (no key needed); and in which shape its errors go, sg's JSON or OpenAI's error object.
 */
export class Rule extends Context.Tag("@sg/gateway/ApiKeys/Rule")<Rule, {
  readonly scope: Scope | "open"
  readonly shape: "sg" | "openai"
}>() {}

/** A rule (sg's error shape unless told otherwise). */
export const rule = (scope: Scope | "open", shape: "sg" | "openai" = "sg"): Rule["Type"] => ({ scope, shape })

/**
 * Keys could not be read: a bad entry (`entry` is its position, 1-based: the entry of `SG_API_KEYS` or the line of
 * the file), or a file that cannot be read (`entry` 0). `source` is `SG_API_KEYS` or the file's path. The message
 * never holds the key.
 */
export class InvalidApiKeys extends Schema.TaggedError<InvalidApiKeys>("@sg/gateway/InvalidApiKeys")(
  "InvalidApiKeys",
  { source: Schema.String, entry: Schema.Number, message: Schema.String }
) {}

/** One configured key: its hash, never the key. */
export interface Entry {
  readonly hash: Uint8Array
  readonly principal: Principal
}

/** The keys in force. */
export interface KeySet {
  readonly entries: ReadonlyArray<Entry>
  /** The tenants they file runs under, sorted, each once. */
  readonly tenants: ReadonlyArray<string>
}

/** No keys: access is open. */
export const empty: KeySet = { entries: [], tenants: [] }

const sha256 = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest()

const keyPattern = /^[\x21-\x7e]{16,512}$/
const isTenant = Schema.is(ExecutionRecord.Tenant)
const isScope = Schema.is(Scope)

/** One entry's text and where it came from. */
interface Raw {
  readonly text: string
  readonly position: number
}

/** Splits `SG_API_KEYS`: entries by commas, where a bare scope name continues the scopes of the entry before it. */
const splitList = (text: string): Array<Raw> => {
  const raws: Array<{ text: string; position: number }> = []
  for (const token of text.split(",").map((t) => t.trim())) {
    if (token === "") continue
    const last = raws[raws.length - 1]
    if (isScope(token) && last !== undefined && last.text.split(":").length === 3) {
      last.text = `${last.text},${token}`
      continue
    }
    raws.push({ text: token, position: raws.length + 1 })
  }
  return raws
}

/** Splits a keys file: one entry a line; blank lines and `#` comments are skipped, lines counted from 1. */
const splitLines = (text: string): Array<Raw> =>
  text.split(/\r?\n/).flatMap((line, i) => {
    const trimmed = line.trim()
    return trimmed === "" || trimmed.startsWith("#") ? [] : [{ text: trimmed, position: i + 1 }]
  })

const parseEntry = (raw: Raw, where: string): Either.Either<{ key: string; principal: Omit<Principal, "name" | "id"> }, string> => {
  const parts = raw.text.split(":")
  if (parts.length !== 1 && parts.length !== 3) {
    return Either.left(`${where}: expected <key> or <key>:<tenant>:<scopes>`)
  }
  const key = parts[0]!
  if (!keyPattern.test(key) || key.includes(",")) {
    return Either.left(`${where}: a key must be 16 to 512 printable ASCII characters without ':', ',' or spaces`)
  }
  if (parts.length === 1) return Either.right({ key, principal: { tenant: defaultTenant, scopes: new Set(defaultScopes) } })
  const tenant = parts[1]!
  if (!isTenant(tenant)) {
    return Either.left(
      `${where}: the tenant must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`
    )
  }
  const names = parts[2]!.split(/[,+]/).map((s) => s.trim())
  const scopes = new Set<Scope>()
  for (const name of names) {
    if (!isScope(name)) {
      return Either.left(
        name === ""
          ? `${where}: no scopes (give run, read or admin, joined by ',' or '+')`
          : `${where}: an unknown scope (the scopes are run, read and admin)`
      )
    }
    scopes.add(name)
  }
  if (scopes.has("admin")) for (const scope of Scope.literals) scopes.add(scope)
  return Either.right({ key, principal: { tenant, scopes } })
}

/** Where the keys of a `parse` come from: `SG_API_KEYS` (comma-separated) or a file (one a line). */
export type Source =
  | { readonly _tag: "List"; readonly text: string }
  | { readonly _tag: "File"; readonly path: string; readonly text: string }

/** Parses the sources in order into one key set; the first bad entry (or a key given twice) fails, naming it. */
export const parse = (sources: ReadonlyArray<Source>): Either.Either<KeySet, InvalidApiKeys> => {
  const entries: Array<Entry> = []
  const seen = new Map<string, string>()
  for (const source of sources) {
    const name = source._tag === "List" ? "SG_API_KEYS" : source.path
    const raws = source._tag === "List" ? splitList(source.text) : splitLines(source.text)
    for (const raw of raws) {
      const where = source._tag === "List" ? `${name} entry ${raw.position}` : `${name} line ${raw.position}`
      const parsed = parseEntry(raw, where)
      if (Either.isLeft(parsed)) {
        return Either.left(new InvalidApiKeys({ source: name, entry: raw.position, message: parsed.left }))
      }
      const hash = sha256(parsed.right.key)
      const hex = hash.toString("hex")
      const earlier = seen.get(hex)
      if (earlier !== undefined) {
        return Either.left(
          new InvalidApiKeys({ source: name, entry: raw.position, message: `${where} repeats the key of ${earlier}` })
        )
      }
      seen.set(hex, where)
      entries.push({ hash, principal: { ...parsed.right.principal, name: hex.slice(0, 6), id: hex.slice(0, 32) } })
    }
  }
  const tenants = Array.from(new Set(entries.map((e) => e.principal.tenant))).sort()
  return Either.right({ entries, tenants })
}

/** The key among `keys` that `presented` is, compared with every one in constant time. */
export const lookup = (keys: KeySet, presented: string): Option.Option<Principal> => {
  const digest = sha256(presented)
  let found: Principal | undefined
  for (const entry of keys.entries) {
    if (timingSafeEqual(entry.hash, digest) && found === undefined) found = entry.principal
  }
  return Option.fromNullable(found)
}

/** The configured keys. */
export interface Service {
  /** The keys in force now (they change when the file is reloaded). */
  readonly current: Effect.Effect<KeySet>
  /** Whom a presented key belongs to; `None` for a key that is not configured. */
  readonly authenticate: (presented: string) => Effect.Effect<Option.Option<Principal>>
  /**
   * Reads the sources again (the file's current content). A bad file leaves the keys as they were; so does one that
   * would leave no key while some are in force (the gateway may be listening beyond loopback because of them).
   */
  readonly reload: Effect.Effect<KeySet, InvalidApiKeys>
}

/** The configured keys. */
export class ApiKeys extends Context.Tag("@sg/gateway/ApiKeys")<ApiKeys, Service>() {}

/** Where keys come from. */
export interface Options {
  /** `SG_API_KEYS`: comma-separated entries. */
  readonly keys?: Redacted.Redacted<string> | string | undefined
  /** `SG_API_KEYS_FILE`: a file of entries, one a line. */
  readonly file?: string | undefined
  /** Reload the file on SIGHUP (true when a file is given). */
  readonly reloadOnHangup?: boolean | undefined
}

/** `SG_API_KEYS` (redacted) and `SG_API_KEYS_FILE`, both optional. */
export const config: Config.Config<Options> = Config.all({
  keys: Config.option(Config.redacted("SG_API_KEYS")).pipe(
    Config.map(Option.getOrUndefined),
    Config.withDescription("API keys: <key> or <key>:<tenant>:<scopes>, comma-separated")
  ),
  file: Config.option(Config.string("SG_API_KEYS_FILE")).pipe(
    Config.map((file) => Option.getOrUndefined(Option.filter(file, (path) => path.trim() !== ""))),
    Config.withDescription("a file of API keys, one entry a line, reloaded on SIGHUP")
  )
})

/** A short account of a key set for logs: counts and tenants, never keys. */
export const describe = (keys: KeySet): string =>
  keys.entries.length === 0
    ? "no API keys"
    : `${keys.entries.length} API key${keys.entries.length === 1 ? "" : "s"} (tenants: ${keys.tenants.join(", ")})`

/** Reads the keys (the file now), checks them, and on SIGHUP reads the file again. */
export const make = (
  options: Options
): Effect.Effect<Service, InvalidApiKeys, FileSystem.FileSystem | ResourceScope> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const list = options.keys === undefined
      ? undefined
      : Redacted.isRedacted(options.keys)
      ? Redacted.value(options.keys)
      : options.keys
    const file = options.file
    const read: Effect.Effect<KeySet, InvalidApiKeys> = Effect.gen(function*() {
      const sources: Array<Source> = []
      if (list !== undefined) sources.push({ _tag: "List", text: list })
      if (file !== undefined) {
        const text = yield* fs.readFileString(file, "utf-8").pipe(
          Effect.mapError((error) =>
            new InvalidApiKeys({
              source: file,
              entry: 0,
              message: `SG_API_KEYS_FILE ${file} cannot be read: ${error.message}`
            })
          )
        )
        sources.push({ _tag: "File", path: file, text })
      }
      return yield* parse(sources)
    })
    const keys = yield* Ref.make(yield* read)

    const reload = Effect.gen(function*() {
      const next = yield* read
      const now = yield* Ref.get(keys)
      if (next.entries.length === 0 && now.entries.length > 0) {
        return yield* new InvalidApiKeys({
          source: file ?? "SG_API_KEYS",
          entry: 0,
          message: `the reload would leave no API key while ${now.entries.length} are in force: keys kept as they were`
        })
      }
      yield* Ref.set(keys, next)
      return next
    })

    if (file !== undefined && options.reloadOnHangup !== false) {
      const runtime = yield* Effect.runtime<never>()
      const onHangup = () =>
        Runtime.runFork(runtime)(
          reload.pipe(
            Effect.matchEffect({
              onSuccess: (next) => Effect.logInfo(`SIGHUP: API keys reloaded from ${file}: ${describe(next)}`),
              onFailure: (error) => Effect.logWarning(`SIGHUP: API keys not reloaded: ${error.message}`)
            }),
            Effect.annotateLogs({ package: "@sg/gateway", module: "ApiKeys" })
          )
        )
      yield* Effect.acquireRelease(
        Effect.sync(() => process.on("SIGHUP", onHangup)),
        () => Effect.sync(() => process.off("SIGHUP", onHangup))
      )
    }

    return ApiKeys.of({
      current: Ref.get(keys),
      authenticate: (presented) => Effect.map(Ref.get(keys), (set) => lookup(set, presented)),
      reload
    })
  })

/** The keys from `options`. */
export const layer = (options: Options): Layer.Layer<ApiKeys, InvalidApiKeys, FileSystem.FileSystem> =>
  Layer.scoped(ApiKeys, make(options))

/** The keys from `SG_API_KEYS` and `SG_API_KEYS_FILE`. */
export const layerConfig: Layer.Layer<
  ApiKeys,
  InvalidApiKeys | ConfigError.ConfigError,
  FileSystem.FileSystem
> = Layer.scoped(ApiKeys, Effect.flatMap(config, make))
