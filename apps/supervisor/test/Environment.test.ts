import { describe, expect, it, layer } from "@effect/vitest"
import { LeaderElection } from "@sg/leader"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { TraceStore, TraceWatchdog } from "@sg/trace"
import * as Environment from "@sg/supervisor/Environment"
import { ConfigProvider, Effect, Exit, Layer, Logger, Option, Schedule } from "effect"
import { RateLimit } from "@sg/gateway"

/** Runs with exactly these environment variables. */
const withEnv = (entries: Readonly<Record<string, string>>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(entries))))

interface Line {
  readonly level: string
  readonly message: string
}

/** Runs `effect` with its log lines collected. */
const logged = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const lines: Array<Line> = []
    const collect = Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ logLevel, message }) => {
        lines.push({ level: logLevel.label, message: Array.isArray(message) ? message.join(" ") : String(message) })
      })
    )
    return Effect.map(Effect.provide(effect, collect), (a) => [a, lines] as const)
  })

describe("Environment", () => {
  it.effect.each([{}, { REDIS_URL: "" }])("without REDIS_URL (%o): the in-memory store, said first", (env) =>
    Effect.gen(function*() {
      const [kind, lines] = yield* logged(
        Effect.gen(function*() {
          const store = yield* TraceStore.TraceStore
          yield* LeaderElection.LeaderElection
          return store.backend
        }).pipe(Effect.provide(Layer.merge(Environment.storeLayer, Environment.leaderLayer)), withEnv(env))
      )
      expect(kind).toBe("memory")
      expect(lines[0]).toEqual({
        level: "WARN",
        message: "REDIS_URL is not set: using the in-memory store; nothing is shared with other replicas"
      })
      expect(yield* withEnv(env)(Environment.backend)).toEqual({
        kind: "memory",
        mode: "memory",
        target: null,
        description: Environment.memoryNotice
      })
    }))

  it.effect.each([
    [{}, "local"],
    [{ SG_BREAKER_SHARED: "on" }, "local"],
    [{ REDIS_URL: "redis://127.0.0.1:1" }, "shared"],
    [{ REDIS_URL: "redis://127.0.0.1:1", SG_BREAKER_SHARED: "on" }, "shared"],
    [{ REDIS_URL: "redis://127.0.0.1:1", SG_BREAKER_SHARED: "off" }, "local"]
  ] as const)("breakers for %o: %s", ([env, mode]) =>
    Effect.gen(function*() {
      expect(yield* withEnv(env)(Environment.breakerMode)).toBe(mode)
    }))

  it.effect("describes a Redis URL with its password masked", () =>
    Effect.gen(function*() {
      const selected = yield* withEnv({ REDIS_URL: "redis://:s3cret@cache.internal:6380/2" })(Environment.backend)
      expect(selected).toEqual({
        kind: "redis",
        mode: "redis",
        target: "redis://:***@cache.internal:6380/2",
        description: "using the Redis store at redis://:***@cache.internal:6380/2"
      })
    }))

  it.effect("describes a Redis Cluster's seed nodes, passwords masked, and its shards", () =>
    Effect.gen(function*() {
      const seeds = "redis://:s3cret@10.0.0.1:7000,redis://:s3cret@10.0.0.2:7001"
      for (const env of [{ REDIS_URL: seeds, SG_REDIS_CLUSTER: "1" }, { REDIS_URL: "redis+cluster://10.0.0.1:7000" }]) {
        const selected = yield* withEnv(env)(Environment.backend)
        expect(selected).toMatchObject({ kind: "redis", mode: "redis-cluster" })
        expect(selected.description).toMatch(/^using the Redis Cluster store at .* \(seed nodes; keys in 16 shards\)$/)
        expect(selected.description).not.toContain("s3cret")
      }
    }))

  it.effect.each([
    [{ REDIS_URL: "localhost:6379" }, "REDIS_URL"],
    [{ REDIS_URL: "redis://10.0.0.1:7000,redis://10.0.0.2:7001" }, "REDIS_URL"],
    [{ REDIS_URL: "redis+cluster://10.0.0.1:7000", SG_INDEX_SHARDS: "0" }, "SG_INDEX_SHARDS"],
    [{ SG_LEASE_TTL: "soon" }, "SG_LEASE_TTL"],
    [{ SG_LEASE_TTL: "500 millis" }, "SG_LEASE_TTL"],
    [{ SG_SWEEP_INTERVAL: "0 minutes" }, "SG_SWEEP_INTERVAL"],
    [{ SG_ORPHAN_THRESHOLD: "never" }, "SG_ORPHAN_THRESHOLD"]
  ] as const)("%o is refused with a configuration error naming %s", ([env, variable]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        TraceWatchdog.TraceWatchdog.pipe(Effect.provide(Environment.watchdogLayer), Effect.scoped, withEnv(env))
      )
      expect(error._tag).toBe("ConfigError")
      expect(String(error)).toContain(variable)
    }))
})
describe("where sg serve listens (Environment.bind)", () => {
  it.each(["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]"])("%s is loopback", (host) => {
    expect(Environment.isLoopback(host)).toBe(true)
  })
  it.each(["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.com", "128.0.0.1"])("%s is not", (host) => {
    expect(Environment.isLoopback(host)).toBe(false)
  })

  it.effect("the default: 127.0.0.1 without keys, 0.0.0.0 with them; SG_HOST overrides either", () =>
    Effect.gen(function*() {
      expect(yield* Environment.bind(0).pipe(withEnv({}))).toEqual({ host: "127.0.0.1", loopback: true })
      expect(yield* Environment.bind(2).pipe(withEnv({}))).toEqual({ host: "0.0.0.0", loopback: false })
      expect(yield* Environment.bind(2).pipe(withEnv({ SG_HOST: "127.0.0.1" }))).toEqual({
        host: "127.0.0.1",
        loopback: true
      })
      expect(yield* Environment.bind(0).pipe(withEnv({ SG_HOST: "::1" }))).toEqual({ host: "::1", loopback: true })
      expect(yield* Environment.bind(0).pipe(withEnv({ SG_HOST: "" }))).toEqual({ host: "127.0.0.1", loopback: true })
    }))

  it.effect("a non-loopback SG_HOST without keys is refused, naming SG_INSECURE; SG_INSECURE=on lets it, warned", () =>
    Effect.gen(function*() {
      for (const host of ["0.0.0.0", "::", "10.0.0.5"]) {
        const refused = yield* Effect.exit(Environment.bind(0).pipe(withEnv({ SG_HOST: host })))
        expect(Exit.isFailure(refused)).toBe(true)
        expect(String(Exit.isFailure(refused) && refused.cause)).toContain("SG_INSECURE=on")
        expect(String(Exit.isFailure(refused) && refused.cause)).toContain("SG_HOST")
      }
      const off = yield* Effect.exit(Environment.bind(0).pipe(withEnv({ SG_HOST: "0.0.0.0", SG_INSECURE: "off" })))
      expect(Exit.isFailure(off)).toBe(true)
      const allowed = yield* Environment.bind(0).pipe(withEnv({ SG_HOST: "0.0.0.0", SG_INSECURE: "on" }))
      expect(allowed).toMatchObject({ host: "0.0.0.0", loopback: false })
      expect(allowed.warning).toContain("no API keys")
    }))

  it.effect("SG_RATE_LIMIT: none unset; in memory without REDIS_URL", () =>
    Effect.gen(function*() {
      const limit = (env: Record<string, string>) =>
        Effect.serviceOption(RateLimit.RequestLimit).pipe(Effect.provide(Environment.rateLimitLayer), withEnv(env))
      expect(Option.isNone(yield* limit({}))).toBe(true)
      const some = yield* limit({ SG_RATE_LIMIT: "2/second" })
      expect(Option.map(some, (s) => s.limit.text)).toEqual(Option.some("2/second"))
      const service = Option.getOrThrow(some)
      const decisions = yield* Effect.forEach([1, 2, 3], () => service.check("k"))
      expect(decisions.map((d) => d.allowed)).toEqual([true, true, false])
    }))
})

const server = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

layer(server, { excludeTestServices: true })("Environment with REDIS_URL", (it) => {
  it.effect("the Redis store, the Redis lease and the watchdog share one connection; closing releases the lease", () =>
    Effect.gen(function*() {
      const test = yield* RedisTestServer.RedisTestServer
      const client = yield* RedisClient.RedisClient
      const leaseHolder = Effect.orDie(client.use("GET", (c) => c.get("sg:lease:trace-watchdog")))
      const connections = Effect.orDie(client.use("CLIENT", (c) => c.client("LIST"))).pipe(
        Effect.map((list) => String(list).trim().split("\n").length)
      )
      const before = yield* connections
      yield* Effect.gen(function*() {
        const watchdog = yield* TraceWatchdog.TraceWatchdog
        const store = yield* TraceStore.TraceStore
        expect(store.backend).toBe("redis")
        yield* watchdog.status.pipe(
          Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (s) => s.leader && s.last_sweep !== null }),
          Effect.timeout("10 seconds")
        )
        expect(yield* leaseHolder).toMatch(/:\d+:[0-9a-f]{16}$/)
        expect(yield* connections).toBe(before + 1)
      }).pipe(
        Effect.provide(Environment.watchdogLayer),
        withEnv({ REDIS_URL: test.url, SG_LEASE_TTL: "3 seconds" })
      )
      expect(yield* leaseHolder).toBeNull()
    }))
})
