/**
 * The Redis connection every sg package shares: one ioredis client per scope (a `Redis`, or a `Cluster` over a Redis
 * Cluster's seed nodes), typed errors, keys under a configurable prefix, and Lua scripts registered once.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { type ChainableCommander, Cluster, type ClusterOptions, type Redis, type RedisOptions } from "ioredis"
import { classify, redactUrl as redact } from "./internal/classify.js"
import { mastersOf, newClient } from "./internal/connect.js"
import { parseTarget, type Target } from "./internal/target.js"
import { RedisCommandError, type RedisError, RedisUnavailable } from "./RedisError.js"
import type { RedisScript } from "./RedisScript.js"

/** A standalone server (`redis`) or a Redis Cluster (`redis-cluster`). */
export type Mode = "redis" | "redis-cluster"

/** The ioredis client of either mode: every command method is shared by both. */
export type Connection = Redis | Cluster

/** How to reach Redis and how quickly to give up on it. */
export interface Options {
  /**
   * `redis://[:password@]host:port[/db]`; for a cluster, its seed nodes, comma-separated (`redis://a:7000,redis://b:7001`
   * or `redis+cluster://a:7000`); redacted in every log line.
   */
  readonly url: string | Redacted.Redacted<string>
  /** Connect to a Redis Cluster (implied by a `redis+cluster://` URL); defaults to false. */
  readonly cluster?: boolean | undefined
  /** Prefix of every key (`<prefix>:trace:<id>`); defaults to `sg`. */
  readonly prefix?: string | undefined
  /** How long a connection attempt may take; defaults to 2 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** How long a command may wait for its reply, queued or sent; defaults to 2 seconds. */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** How many commands may wait for a connection at once before new ones fail at once; defaults to 1000. */
  readonly offlineQueueLimit?: number | undefined
  /** Further ioredis options, applied last (to each node's connection, in cluster mode). */
  readonly clientOptions?: RedisOptions | undefined
  /** Further ioredis `Cluster` options, applied last (cluster mode only). */
  readonly clusterOptions?: ClusterOptions | undefined
}

/** A Redis connection with typed errors. */
export interface Service {
  /** The key prefix, without the trailing colon. */
  readonly prefix: string
  /** Joins parts under the prefix: `key("trace", id)` is `sg:trace:<id>`. */
  readonly key: (...parts: ReadonlyArray<string>) => string
  /** The server's URL with any password masked. */
  readonly target: string
  /** `redis` or `redis-cluster`. */
  readonly mode: Mode
  /**
   * A key part as a hash tag: `{name}` on a cluster, so that every key holding it lands in one slot (the keys one
   * script or MULTI touches must), and `name` as it is on a standalone server, whose keyspace stays as it was.
   */
  readonly tag: (name: string) => string
  /** The masters this client sees now (`host:port`): the one server standalone, every master of a cluster. */
  readonly masters: Effect.Effect<ReadonlyArray<string>>
  /** The ioredis client, for what this interface does not cover. Its promises reject with raw errors. */
  readonly client: Connection
  /**
   * A new client of the same configuration, not connected yet (`connect()` it), for a connection of its own (a
   * subscriber); the caller quits it.
   */
  readonly duplicate: () => Connection
  /** Runs one ioredis call; `command` names it in errors. */
  readonly use: <A>(command: string, f: (client: Connection) => Promise<A>) => Effect.Effect<A, RedisError>
  /** Runs the commands `f` queues as one MULTI/EXEC; fails if any of them failed. */
  readonly multi: (
    command: string,
    f: (transaction: ChainableCommander) => ChainableCommander
  ) => Effect.Effect<ReadonlyArray<unknown>, RedisError>
  /** Runs a Lua script (registered on first use) and decodes its reply. */
  readonly eval: <A, I>(
    script: RedisScript<A, I>,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string | number>
  ) => Effect.Effect<A, RedisError>
  /** PING: succeeds only when Redis answers. */
  readonly ping: Effect.Effect<void, RedisError>
  /** Whether the connection is up right now (no round trip). */
  readonly isReady: Effect.Effect<boolean>
}

/** A Redis URL with any password replaced by `***`, fit for logs: `redis://:***@host:6379/0`. */
export const redactUrl: (url: string) => string = redact

/** The shared Redis connection. */
export class RedisClient extends Context.Tag("@sg/redis/RedisClient")<RedisClient, Service>() {}

/**
 * Where `url` points, as `parseTarget` reads it: one server, or a cluster's seed nodes (with `cluster`, or any
 * `redis+cluster://` URL). The `Left` says what is wrong with it.
 */
export const target = (url: string, cluster: boolean): Either.Either<Target, string> => parseTarget(url, cluster)

/** `SG_REDIS_CLUSTER` (off): whether `REDIS_URL` names a Redis Cluster's seed nodes. */
export const clusterConfig: Config.Config<boolean> = Config.boolean("SG_REDIS_CLUSTER").pipe(
  Config.withDefault(false),
  Config.withDescription("REDIS_URL names a Redis Cluster's seed nodes (comma-separated)")
)

/**
 * `REDIS_URL` (required), `SG_REDIS_CLUSTER` (off), `SG_KEY_PREFIX` (sg) and the timeouts, read through `Config`. On a
 * cluster the prefix may hold no `{` or `}` (it would move keys' hash tags).
 */
export const config: Config.Config<Options> = Config.all({
  url: Config.redacted("REDIS_URL").pipe(
    Config.withDescription("Redis URL, redis://host:port/db; a cluster's seed nodes, comma-separated")
  ),
  cluster: clusterConfig,
  prefix: Config.string("SG_KEY_PREFIX").pipe(
    Config.withDefault("sg"),
    Config.validate({
      message: "SG_KEY_PREFIX must be non-empty and contain no spaces",
      validation: (s) => /^\S+$/.test(s)
    })
  ),
  connectTimeout: Config.duration("SG_REDIS_CONNECT_TIMEOUT").pipe(Config.withDefault(Duration.seconds(2))),
  commandTimeout: Config.duration("SG_REDIS_COMMAND_TIMEOUT").pipe(Config.withDefault(Duration.seconds(2))),
  offlineQueueLimit: Config.integer("SG_REDIS_OFFLINE_QUEUE").pipe(
    Config.withDefault(1000),
    Config.validate({ message: "SG_REDIS_OFFLINE_QUEUE must be at least 0", validation: (n) => n >= 0 })
  )
}).pipe(
  Config.mapOrFail((options) => {
    const parsed = parseTarget(Redacted.value(options.url), options.cluster)
    if (Either.isLeft(parsed)) return Either.left(ConfigError.InvalidData(["REDIS_URL"], parsed.left))
    if (parsed.right._tag === "Cluster" && /[{}]/.test(options.prefix)) {
      return Either.left(ConfigError.InvalidData(["SG_KEY_PREFIX"], "on a Redis Cluster the prefix may hold no { or }"))
    }
    return Either.right({ ...options, cluster: parsed.right._tag === "Cluster" })
  })
)

interface ScriptHost {
  readonly [name: string]: (...args: ReadonlyArray<string | number>) => Promise<unknown>
}

/** Connects (in the background: a down Redis does not fail start-up) and quits when the scope closes. */
export const make = (options: Options): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url
    const parsed = parseTarget(url, options.cluster ?? false)
    if (Either.isLeft(parsed)) return yield* Effect.dieMessage(`RedisClient: REDIS_URL ${redact(url)}: ${parsed.left}`)
    const where = parsed.right
    const mode: Mode = where._tag === "Cluster" ? "redis-cluster" : "redis"
    const target = redact(url)
    const prefix = options.prefix ?? "sg"
    const offlineQueueLimit = options.offlineQueueLimit ?? 1000
    const commandTimeout = Duration.decode(options.commandTimeout ?? Duration.seconds(2))
    const settings = {
      connectTimeoutMs: Duration.toMillis(options.connectTimeout ?? Duration.seconds(2)),
      commandTimeoutMs: Duration.toMillis(commandTimeout),
      clientOptions: options.clientOptions,
      clusterOptions: options.clusterOptions
    }
    const runtime = yield* Effect.runtime<never>()
    const log = (effect: Effect.Effect<void>) =>
      Runtime.runFork(runtime)(effect.pipe(Effect.annotateLogs({ package: "@sg/redis", redis: target })))

    const client = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const client = newClient(where, settings)
        let down = false
        client.on("error", (error: Error) => {
          if (down) return
          down = true
          log(Effect.logWarning(`Redis unreachable: ${error.message}; retrying in the background`))
        })
        client.on("ready", () => {
          if (!down) return
          down = false
          log(Effect.logInfo("Redis reachable again"))
        })
        if (client instanceof Cluster) {
          client.on("+node", (node: Redis) => log(Effect.logDebug(`cluster node ${node.options.host}:${node.options.port} joined`)))
          client.on("-node", (node: Redis) => log(Effect.logDebug(`cluster node ${node.options.host}:${node.options.port} left`)))
        }
        client.connect().catch(() => undefined)
        return client
      }),
      (client) =>
        Effect.tryPromise(() => client.quit()).pipe(
          Effect.timeout("1 second"),
          Effect.ignore,
          Effect.ensuring(Effect.sync(() => {
            client.disconnect()
            client.removeAllListeners()
          }))
        )
    )

    let waitingOffline = 0
    // One callback pair per call, passed positionally: the hot path of every Redis command, where
    // `Effect.tryPromise({ try, catch })` cost two extra closures (and, under tsx, two `__name` property writes).
    const call = <A>(command: string, f: (client: Connection) => Promise<A>): Effect.Effect<A, RedisError> =>
      Effect.async<A, RedisError>((resume) => {
        f(client).then(
          (a) => resume(Effect.succeed(a)),
          (error) => resume(Effect.fail(classify(command, error, target)))
        )
      })

    // A cluster keeps commands sent before it is ready in a queue with no deadline: they wait here instead, for at
    // most the command timeout, so that nothing piles up in ioredis while the cluster is out of reach.
    const whenReady = (command: string) =>
      Effect.async<void, RedisUnavailable>((resume) => {
        const ready = () => resume(Effect.void)
        const ended = () => resume(Effect.fail(new RedisUnavailable({ command, message: `Redis client for ${target} is closed` })))
        client.once("ready", ready)
        client.once("end", ended)
        return Effect.sync(() => {
          client.off("ready", ready)
          client.off("end", ended)
        })
      }).pipe(
        Effect.timeoutFail({
          duration: commandTimeout,
          onTimeout: () =>
            new RedisUnavailable({
              command,
              message: `Redis Cluster at ${target} did not become ready within ${Duration.format(commandTimeout)} (${command})`
            })
        })
      )

    const use = <A>(command: string, f: (client: Connection) => Promise<A>): Effect.Effect<A, RedisError> =>
      Effect.suspend(() => {
        if (client.status === "ready") return call(command, f)
        if (client.status === "end" || waitingOffline >= offlineQueueLimit) {
          return Effect.fail(
            new RedisUnavailable({
              command,
              message: client.status === "end"
                ? `Redis client for ${target} is closed`
                : `Redis at ${target} is not connected and ${waitingOffline} commands already wait for it`
            })
          )
        }
        waitingOffline++
        const sent = mode === "redis-cluster" ? Effect.zipRight(whenReady(command), call(command, f)) : call(command, f)
        return Effect.ensuring(sent, Effect.sync(() => waitingOffline--))
      })

    const multi = (command: string, f: (transaction: ChainableCommander) => ChainableCommander) =>
      Effect.flatMap(use(command, (client) => f(client.multi()).exec()), (replies) => {
        if (replies === null) {
          return Effect.fail(new RedisCommandError({ command, message: `${command}: transaction aborted` }))
        }
        const results: Array<unknown> = []
        for (const [error, result] of replies) {
          if (error !== null) return Effect.fail(classify(command, error, target))
          results.push(result)
        }
        return Effect.succeed(results)
      })

    // Replies decode synchronously (an `Either`): one effect step fewer on every script call.
    const scripts = new Map<string, { readonly lua: string; readonly decode: (u: unknown) => Either.Either<unknown, ParseResult.ParseError> }>()
    const host = client as unknown as ScriptHost
    const evalScript = <A, I>(script: RedisScript<A, I>, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) =>
      Effect.suspend(() => {
        let entry = scripts.get(script.name)
        if (entry === undefined) {
          client.defineCommand(
            script.name,
            script.numberOfKeys === "variable" ? { lua: script.lua } : { numberOfKeys: script.numberOfKeys, lua: script.lua }
          )
          entry = { lua: script.lua, decode: Schema.decodeUnknownEither(script.reply) }
          scripts.set(script.name, entry)
        } else if (entry.lua !== script.lua) {
          return Effect.dieMessage(`two different Lua scripts are both named ${script.name}`)
        }
        const decode = entry.decode as (u: unknown) => Either.Either<A, ParseResult.ParseError>
        const call = script.numberOfKeys === "variable"
          ? () => host[script.name]!(keys.length, ...keys, ...args)
          : () => host[script.name]!(...keys, ...args)
        return Effect.flatMap(use(script.name, call), (reply) => {
          const decoded = decode(reply)
          return Either.isRight(decoded) ? Effect.succeed(decoded.right) : Effect.fail(
            new RedisCommandError({
              command: script.name,
              message: `unexpected reply from script ${script.name}: ${
                ParseResult.TreeFormatter.formatErrorSync(decoded.left)
              }`,
              cause: decoded.left
            })
          )
        })
      })

    return RedisClient.of({
      prefix,
      key: (...parts) => `${prefix}:${parts.join(":")}`,
      target,
      mode,
      tag: mode === "redis-cluster" ? (name) => `{${name}}` : (name) => name,
      masters: Effect.sync(() => mastersOf(client)),
      client,
      duplicate: () => newClient(where, settings),
      use,
      multi,
      eval: evalScript,
      ping: Effect.asVoid(use("PING", (client) => client.ping())),
      isReady: Effect.sync(() => client.status === "ready")
    })
  })

/** A client for the given options. */
export const layer = (options: Options): Layer.Layer<RedisClient> => Layer.scoped(RedisClient, make(options))

/** A client configured from the environment (see `config`). */
export const layerConfig: Layer.Layer<RedisClient, ConfigError.ConfigError> = Layer.scoped(
  RedisClient,
  Effect.flatMap(config, make)
)
