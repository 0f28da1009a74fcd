/**
 * The layers every `sg` verb composes, chosen from the environment: with `REDIS_URL` set, one Redis connection
 * shared by the trace store and the lease; without it, in-memory twins (said at start-up: nothing is shared with
 * other replicas). Configuration errors are `ConfigError`s naming the variable.
 */
import type * as RateLimiter from "@effect/experimental/RateLimiter"
import { RateLimit } from "@sg/gateway"
import * as RateLimitRedis from "@sg/gateway/RateLimit/Redis"
import { InvalidLeaseConfig, LeaderElection } from "@sg/leader"
import * as LeaseStoreRedis from "@sg/leader/LeaseStore/Redis"
import { RedisClient } from "@sg/redis"
import { BreakerPolicy, CircuitBreaker, type InvalidBreakerPolicy } from "@sg/resilience"
import * as SharedBreakers from "@sg/resilience/CircuitBreaker/Redis"
import { ExecutionStore, type InvalidTraceInput, TraceLifecycle, TraceStore, TraceWatchdog } from "@sg/trace"
import * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import {
  Config,
  ConfigError,
  Duration,
  Effect,
  Either,
  FiberRef,
  HashSet,
  Layer,
  Logger,
  Option,
  Redacted
} from "effect"

/** Which store the environment selects. */
export interface Backend {
  readonly kind: "redis" | "memory"
  /** `redis-cluster` when `REDIS_URL` names a Redis Cluster's seed nodes (`SG_REDIS_CLUSTER=1`, `redis+cluster://`). */
  readonly mode: "redis" | "redis-cluster" | "memory"
  /** The Redis URL with any password masked; `null` for the in-memory store. */
  readonly target: string | null
  /** What a process says at start-up about it. */
  readonly description: string
}

/** What a process without `REDIS_URL` says first. */
export const memoryNotice = "REDIS_URL is not set: using the in-memory store; nothing is shared with other replicas"

const redisScheme = /^rediss?(\+cluster)?:\/\/\S+$/

const parseRedisUrl = (
  url: Option.Option<string>
): Either.Either<Option.Option<Redacted.Redacted>, ConfigError.ConfigError> => {
  if (Option.isNone(url) || url.value === "") return Either.right(Option.none())
  if (redisScheme.test(url.value)) return Either.right(Option.some(Redacted.make(url.value)))
  return Either.left(
    ConfigError.InvalidData(["REDIS_URL"], "expected a URL like redis://[:password@]host:port[/db]")
  )
}

/**
 * `REDIS_URL`: `None` when unset or empty (the in-memory store); otherwise a `redis://` or `rediss://` URL, or a
 * Redis Cluster's seed nodes (comma-separated, with `SG_REDIS_CLUSTER=1`, or `redis+cluster://` URLs).
 */
export const redisUrl: Config.Config<Option.Option<Redacted.Redacted>> = Config.mapOrFail(
  Config.option(Config.string("REDIS_URL")),
  parseRedisUrl
).pipe(Config.withDescription("Redis URL; unset: an in-memory store for this process only"))

/** The backend `REDIS_URL` (and `SG_REDIS_CLUSTER`) selects. */
export const backend: Effect.Effect<Backend, ConfigError.ConfigError> = Effect.gen(function*() {
  const url = yield* redisUrl
  if (Option.isNone(url)) return { kind: "memory", mode: "memory", target: null, description: memoryNotice }
  const parsed = RedisClient.target(Redacted.value(url.value), yield* RedisClient.clusterConfig)
  if (Either.isLeft(parsed)) return yield* Effect.fail(ConfigError.InvalidData(["REDIS_URL"], parsed.left))
  const target = RedisClient.redactUrl(Redacted.value(url.value))
  if (parsed.right._tag === "Cluster") {
    const shards = yield* TraceStore.config.pipe(Effect.map((options) => options.indexShards))
    return {
      kind: "redis",
      mode: "redis-cluster",
      target,
      description: `using the Redis Cluster store at ${target} (seed nodes; keys in ${shards} shards)`
    }
  }
  return { kind: "redis", mode: "redis", target, description: `using the Redis store at ${target}` }
})

/** The one Redis connection of a process (layers are shared by reference within one build). */
const redisClient = RedisClient.layerConfig

/**
 * The trace store and the execution store `REDIS_URL` selects (Redis over one connection, or memory); building them
 * says which, first.
 */
export const storeLayer: Layer.Layer<TraceStore.TraceStore | ExecutionStore.ExecutionStore, ConfigError.ConfigError> =
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const selected = yield* backend
      if (selected.kind === "memory") {
        yield* Effect.logWarning(selected.description)
        return Layer.merge(TraceStore.layerMemoryConfig, ExecutionStore.layerMemoryConfig)
      }
      yield* Effect.logInfo(selected.description)
      return Layer.merge(TraceStoreRedis.layerConfig, ExecutionStoreRedis.layerConfig).pipe(Layer.provide(redisClient))
    })
  )

/**
 * `SG_LEASE_TTL` (15 seconds), at least 1 second: renewals come every third of it and a leader steps down after two
 * thirds, so a shorter lease would flap on ordinary event-loop delays.
 */
export const leaseTtl: Config.Config<Duration.Duration> = Config.mapOrFail(LeaderElection.config, (ttl) =>
  Duration.greaterThanOrEqualTo(ttl, Duration.seconds(1))
    ? Either.right(ttl)
    : Either.left(ConfigError.InvalidData(["SG_LEASE_TTL"], `must be at least 1 second, not ${Duration.format(ttl)}`)))

/** Invalid lease timings, as a configuration error naming `SG_LEASE_TTL` (the one variable they derive from). */
const leaseTtlError = (error: InvalidLeaseConfig | ConfigError.ConfigError): ConfigError.ConfigError =>
  error instanceof InvalidLeaseConfig ? ConfigError.InvalidData(["SG_LEASE_TTL"], error.message) : error

/** Leader election over the lease store `REDIS_URL` selects (Redis, or this process' memory), timed by
 * `SG_LEASE_TTL`. */
export const leaderLayer: Layer.Layer<LeaderElection.LeaderElection, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const selected = yield* backend
    const ttl = yield* leaseTtl
    return selected.kind === "redis"
      ? Layer.provide(LeaseStoreRedis.layer({ ttl }), redisClient)
      : LeaderElection.layerMemory({ ttl })
  })
).pipe(Layer.mapError(leaseTtlError))

/** The orphan watchdog (`SG_SWEEP_INTERVAL`) under the lease, with the store and the election it runs on. */
export const watchdogLayer: Layer.Layer<
  TraceWatchdog.TraceWatchdog | TraceStore.TraceStore | ExecutionStore.ExecutionStore | LeaderElection.LeaderElection,
  ConfigError.ConfigError | InvalidTraceInput
> = Layer.provideMerge(TraceWatchdog.layerConfig, Layer.merge(storeLayer, leaderLayer))

/**
 * What `sg serve` runs on: `watchdogLayer` (the stores, the election, the watchdog under the lease); with
 * `REDIS_URL`, one Redis connection shared by all of them and the breakers.
 */
export const backendLayer: Layer.Layer<
  TraceWatchdog.TraceWatchdog | TraceStore.TraceStore | ExecutionStore.ExecutionStore | LeaderElection.LeaderElection,
  ConfigError.ConfigError | InvalidTraceInput
> = watchdogLayer

/**
 * `SG_BREAKER_SHARED` (on): with `REDIS_URL`, breakers are shared by every replica through Redis; `off` keeps them
 * local.
 */
export const breakersShared: Config.Config<boolean> = Config.boolean("SG_BREAKER_SHARED").pipe(
  Config.withDefault(true),
  Config.withDescription("with REDIS_URL, share circuit breakers among replicas through Redis (on/off)")
)

/** How the breakers of a process are kept: shared through Redis, or in this process. */
export const breakerMode: Effect.Effect<"shared" | "local", ConfigError.ConfigError> = Effect.gen(function*() {
  const selected = yield* backend
  return selected.kind === "redis" && (yield* breakersShared) ? "shared" : "local"
})

/**
 * The circuit breakers (`SG_BREAKER_THRESHOLD`, `SG_BREAKER_COOLDOWN`, `SG_BREAKER_COOLDOWN_MAX`): shared through
 * the one Redis connection when `breakerMode` says so, except the trace store's own breaker, which guards Redis
 * itself and stays in this process with its own cool-down (`SG_STORE_BREAKER_COOLDOWN`); in this process otherwise.
 */
export const breakersLayer: Layer.Layer<
  CircuitBreaker.CircuitBreaker,
  ConfigError.ConfigError | InvalidBreakerPolicy
> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const mode = yield* breakerMode
    // The trace store's own breaker recovers as fast as Redis does (`SG_STORE_BREAKER_COOLDOWN`, 1 second).
    const policies = TraceLifecycle.breakerPolicy(yield* TraceLifecycle.storeBreakerCooldown)
    return mode === "shared"
      ? Layer.provide(SharedBreakers.layerConfig({ local: [TraceLifecycle.breakerName], policies }), redisClient)
      : Layer.unwrapEffect(
        Effect.map(BreakerPolicy.config, (defaults) => CircuitBreaker.layer({ ...defaults, policies }))
      )
  })
)

/**
 * The per-key rate limit (`SG_RATE_LIMIT`, `<n>/<second|minute|hour>`; unset: none, and no `RequestLimit` in the
 * context): with `REDIS_URL`, counted in Redis on the one connection, so every replica spends one budget per key;
 * otherwise in this process. Present in the context only with a limit (not in the type, as `backendLayer`'s client).
 */
export const rateLimitLayer: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const limit = yield* RateLimit.config
    if (Option.isNone(limit)) return Layer.empty
    const selected = yield* backend
    if (selected.kind === "memory") return RateLimit.layerMemory(limit.value)
    const store: Layer.Layer<RateLimiter.RateLimiterStore, ConfigError.ConfigError> = Layer.provide(
      RateLimitRedis.layerStore,
      redisClient
    )
    return Layer.provide(RateLimit.layer(limit.value), store)
  })
)

/** `SG_METRICS_PUBLIC` (off): `/metrics` answers without a key even when API keys are configured. */
export const metricsPublic: Config.Config<boolean> = Config.boolean("SG_METRICS_PUBLIC").pipe(
  Config.withDefault(false),
  Config.withDescription("with API keys, let /metrics answer without one (on/off)")
)

/** Where `sg serve` listens, and what to say about it. */
export interface Bind {
  /** The address to bind (`SG_HOST`). */
  readonly host: string
  /** Whether it is loopback only (this machine). */
  readonly loopback: boolean
  /** Set when `SG_INSECURE=on` let it serve beyond loopback without keys: the warning to log. */
  readonly warning?: string | undefined
}

/** Whether a host is this machine only: `localhost`, `127.0.0.0/8`, `::1`. */
export const isLoopback = (host: string): boolean => {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, "$1")
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === "::ffff:127.0.0.1"
}

/** `SG_INSECURE` (off): serve beyond loopback with no API keys (anyone who reaches the port may run and read). */
export const insecure: Config.Config<boolean> = Config.boolean("SG_INSECURE").pipe(
  Config.withDefault(false),
  Config.withDescription("serve on a non-loopback SG_HOST with no API keys (on/off)")
)

/** `SG_HOST`, unset or empty: `None`. */
const hostConfig: Config.Config<Option.Option<string>> = Config.option(Config.string("SG_HOST")).pipe(
  Config.map(Option.filter((host) => host.trim() !== "")),
  Config.withDescription("the address to listen on: 127.0.0.1 without API keys, 0.0.0.0 with them")
)

/**
 * Where `sg serve` listens, given how many API keys are configured: `SG_HOST`, by default `0.0.0.0` with keys and
 * `127.0.0.1` without. A non-loopback `SG_HOST` with no keys is a `ConfigError` naming `SG_HOST` and `SG_INSECURE`,
 * unless `SG_INSECURE=on`, which lets it through with a warning.
 */
export const bind = (keys: number): Effect.Effect<Bind, ConfigError.ConfigError> =>
  Effect.gen(function*(): Effect.fn.Return<Bind, ConfigError.ConfigError> {
    const host = Option.getOrElse(yield* hostConfig, () => (keys > 0 ? "0.0.0.0" : "127.0.0.1")).trim()
    const loopback = isLoopback(host)
    if (loopback || keys > 0) return { host, loopback }
    if (!(yield* insecure)) {
      return yield* Effect.fail(ConfigError.InvalidData(
        ["SG_HOST"],
        `SG_HOST=${host} would serve beyond this machine with no API key configured (SG_API_KEYS or ` +
          `SG_API_KEYS_FILE): anyone who reaches the port could run agents and read every trace. Configure keys, ` +
          `or set SG_INSECURE=on to serve it open anyway`
      ))
    }
    return {
      host,
      loopback,
      warning: `SG_INSECURE=on: listening on ${host} with no API keys: anyone who reaches the port can run agents ` +
        `on this server's model keys and read every trace`
    }
  })

/** Logs on stderr, so stdout carries only a verb's output: pretty on a terminal, logfmt lines otherwise. */
export const stderrLogger: Logger.Logger<unknown, void> = process.stderr.isTTY === true
  ? Logger.prettyLogger({ stderr: true, colors: true })
  : Logger.withConsoleError(Logger.logfmtLogger)

/**
 * Sends the current fiber's logs to `stderrLogger` from now on. It sets the fiber's loggers rather than scoping a
 * layer, so that on the main fiber it also covers the failure report `NodeRuntime.runMain` logs after the verb.
 */
export const logToStderr: Effect.Effect<void> = FiberRef.update(
  FiberRef.currentLoggers,
  (loggers) =>
    loggers.pipe(
      HashSet.remove(Logger.defaultLogger),
      HashSet.remove(Logger.prettyLoggerDefault),
      HashSet.add(stderrLogger)
    )
)
