import { describe, expect, it, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { ConfigProvider, Effect, Layer, Option, Schedule, TestClock } from "effect"
import * as TraceStore from "../src/TraceStore.js"
import * as TraceStoreRedis from "../src/TraceStore/Redis.js"
import { nextTraceId } from "./utils/ids.js"
import * as StoreKit from "./utils/StoreKit.js"

const raw = <A>(f: (client: RedisClient.Service["client"]) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (redis) => Effect.promise(() => f(redis.client)))

/** `INFO commandstats` as calls per command. */
const commandCalls = raw((c) => c.info("commandstats")).pipe(
  Effect.map((info) => {
    const calls: Record<string, number> = {}
    for (const match of info.matchAll(/^cmdstat_(\w+(?:\|\w+)?):calls=(\d+)/gm)) {
      calls[match[1]!] = Number(match[2])
    }
    return (command: string) => calls[command] ?? 0
  })
)

describe("TraceStore over Redis", () => {
  const contract = Layer.provideMerge(TraceStoreRedis.layer(), RedisTestServer.layerWithClient)
  it.layer(contract)("the keyspace contract", (it) => {
    it.effect("create: sg:trace:<id> (state, created_at, updated_at, metadata), TTL 86400, SADD sg:traces:active", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const server = yield* RedisTestServer.RedisTestServer
        const id = nextTraceId()
        const key = `${server.prefix}:trace:${id}`
        const active = `${server.prefix}:traces:active`
        if (!server.external) expect(key).toBe(`sg:trace:${id}`)
        yield* TestClock.setTime(1_763_870_000_123)
        yield* store.create(id, "RECEIVED", { platform: "telegram", channel: "dm" })
        expect(yield* raw((c) => c.hgetall(key))).toEqual({
          state: "RECEIVED",
          created_at: "1763870000.123",
          updated_at: "1763870000.123",
          requests: "1",
          in_flight: "1",
          opening: "1",
          errors: "0",
          platform: "telegram",
          channel: "dm"
        })
        expect(yield* raw((c) => c.ttl(key))).toBeGreaterThanOrEqual(86_399)
        expect(yield* raw((c) => c.ttl(key))).toBeLessThanOrEqual(86_400)
        expect(yield* raw((c) => c.sismember(active, id))).toBe(1)
        expect(yield* raw((c) => c.type(active))).toBe("set")
        expect(yield* raw((c) => c.ttl(active))).toBe(-1)

        yield* TestClock.setTime(1_763_870_042_500)
        yield* store.transition(id, "INFERRING")
        expect(yield* raw((c) => c.hmget(key, "state", "updated_at", "created_at"))).toEqual([
          "INFERRING",
          "1763870042.500",
          "1763870000.123"
        ])
        expect(yield* raw((c) => c.ttl(key))).toBeGreaterThanOrEqual(86_399)

        yield* store.finish(id, "ERRORED", { error: "tool crashed" })
        expect(yield* raw((c) => c.hgetall(key))).toEqual({
          state: "ERRORED",
          created_at: "1763870000.123",
          updated_at: "1763870042.500",
          requests: "1",
          in_flight: "0",
          opening: "1",
          errors: "1",
          platform: "telegram",
          channel: "dm",
          error: "tool crashed"
        })
        expect(yield* raw((c) => c.ttl(key))).toBeGreaterThanOrEqual(3_599)
        expect(yield* raw((c) => c.ttl(key))).toBeLessThanOrEqual(3_600)
        expect(yield* raw((c) => c.sismember(active, id))).toBe(0)
      }))

    it.effect("create is one script (one round trip, atomic): it reads the hash, writes it, EXPIREs and SADDs", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const before = yield* commandCalls
        yield* store.create(nextTraceId(), "RECEIVED", { a: "1" })
        const after = yield* commandCalls
        const calls = (command: string) => after(command) - before(command)
        expect(calls("evalsha") + calls("eval")).toBe(1)
        expect(calls("multi")).toBe(0)
        for (const command of ["hmget", "expire", "sadd", "hincrby"]) expect(calls(command), command).toBe(1)
      }))

    it.effect("reads, moves, finishes and sweeps a trace the Python service wrote with its own commands", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const redis = yield* RedisClient.RedisClient
        const young = nextTraceId()
        const old = nextTraceId()
        // What core.trace.create_trace does: HSET (state, created_at = str(time.time()), metadata), EXPIRE, SADD.
        for (const [id, createdAt] of [[young, "1763870000.6543212"], [old, "1763860000.1"]] as const) {
          yield* raw((c) =>
            c.multi()
              .hset(redis.key("trace", id), { state: "RECEIVED", created_at: createdAt, platform: "slack" })
              .expire(redis.key("trace", id), 86400)
              .sadd(redis.key("traces", "active"), id)
              .exec()
          )
        }
        yield* TestClock.setTime(1_763_870_100_000)
        const record = Option.getOrThrow(yield* store.get(young))
        expect(record.state).toBe("RECEIVED")
        expect(record.updated_at).toEqual(Option.none())
        expect(record.fields).toEqual({ platform: "slack" })
        yield* store.transition(young, "INFERRING")
        const report = yield* store.sweepOrphans()
        expect(report.orphaned).toBeGreaterThanOrEqual(1)
        expect(yield* raw((c) => c.hgetall(redis.key("trace", old)))).toEqual({
          state: "ERRORED",
          created_at: "1763860000.1",
          updated_at: "1763870100.000",
          in_flight: "0",
          platform: "slack",
          error: "orphaned"
        })
        expect(yield* raw((c) => c.ttl(redis.key("trace", old)))).toBeLessThanOrEqual(3600)
        yield* store.finish(young, "COMPLETED")
        expect(yield* raw((c) => c.hget(redis.key("trace", young), "state"))).toBe("COMPLETED")
        expect(yield* raw((c) => c.sismember(redis.key("traces", "active"), young))).toBe(0)
      }))
  })

  it.layer(RedisTestServer.layer)("sweep commands", (it) => {
    it.effect("walks the set with SSCAN (never SMEMBERS): per batch one read script and one decision script", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        yield* Effect.forEach(Array.from({ length: 450 }, () => nextTraceId()), (id) => store.create(id, "INFERRING"), {
          concurrency: 16,
          discard: true
        })
        yield* TestClock.adjust("31 minutes")
        const before = yield* commandCalls
        const report = yield* store.sweepOrphans({ batchSize: 100 })
        const after = yield* commandCalls
        const calls = (command: string) => after(command) - before(command)
        expect(report.orphaned).toBe(450)
        expect(calls("smembers")).toBe(0)
        expect(calls("sscan")).toBeGreaterThanOrEqual(4)
        // One HMGET per id read, and one more per orphan as the decision re-reads it.
        expect(calls("hmget")).toBe(report.scanned + report.orphaned)
        // Each SSCAN step runs inside the read script; every batch here holds orphans, so a decision script follows it.
        expect(calls("evalsha") + calls("eval")).toBe(2 * calls("sscan"))
      }).pipe(Effect.provide(StoreKit.redis)))

    it.effect("the fence checks both the lease's token and its epoch", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const redis = yield* RedisClient.RedisClient
        const id = nextTraceId()
        yield* store.create(id, "INFERRING")
        yield* TestClock.adjust("31 minutes")
        const lease = { name: "trace-watchdog", token: "host:1:a", epoch: 7, stillHeld: Effect.succeed(true) }
        yield* raw((c) => c.set(redis.key("lease", "trace-watchdog"), "host:1:a"))
        yield* raw((c) => c.set(redis.key("lease", "trace-watchdog", "epoch"), "8"))
        const staleEpoch = yield* Effect.flip(store.sweepOrphans({ fence: lease }))
        expect(staleEpoch._tag).toBe("LeaseLost")
        expect(staleEpoch.message).toContain("epoch: 8")
        yield* raw((c) => c.set(redis.key("lease", "trace-watchdog", "epoch"), "7"))
        yield* raw((c) => c.set(redis.key("lease", "trace-watchdog"), "host:2:b"))
        expect((yield* Effect.flip(store.sweepOrphans({ fence: lease })))._tag).toBe("LeaseLost")
        yield* raw((c) => c.del(redis.key("lease", "trace-watchdog")))
        expect((yield* Effect.flip(store.sweepOrphans({ fence: lease })))._tag).toBe("LeaseLost")
        expect(yield* raw((c) => c.hget(redis.key("trace", id), "state"))).toBe("INFERRING")
        yield* raw((c) => c.set(redis.key("lease", "trace-watchdog"), "host:1:a"))
        expect((yield* store.sweepOrphans({ fence: lease })).orphaned).toBe(1)
      }).pipe(Effect.provide(StoreKit.redis)))

    it.effect("TTLs follow the options", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const redis = yield* RedisClient.RedisClient
        const id = nextTraceId()
        yield* store.create(id, "RECEIVED")
        expect(yield* raw((c) => c.ttl(redis.key("trace", id)))).toBeLessThanOrEqual(10)
        expect(yield* raw((c) => c.ttl(redis.key("trace", id)))).toBeGreaterThanOrEqual(9)
        yield* store.finish(id, "COMPLETED")
        expect(yield* raw((c) => c.ttl(redis.key("trace", id)))).toBeLessThanOrEqual(5)
      }).pipe(
        Effect.provide(
          Layer.provideMerge(
            TraceStoreRedis.layer({ failsafeTtl: "10 seconds", terminalTtl: "5 seconds" }),
            StoreKit.isolatedClient
          )
        )
      ))

    it.effect("layerRedisConfig reads SG_FAILSAFE_TTL and SG_TERMINAL_TTL", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const redis = yield* RedisClient.RedisClient
        const id = nextTraceId()
        yield* store.create(id, "RECEIVED")
        expect(yield* raw((c) => c.ttl(redis.key("trace", id)))).toBeLessThanOrEqual(120)
        expect(yield* raw((c) => c.ttl(redis.key("trace", id)))).toBeGreaterThan(100)
      }).pipe(
        Effect.provide(Layer.provideMerge(TraceStoreRedis.layerConfig, StoreKit.isolatedClient)),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["SG_FAILSAFE_TTL", "2 minutes"]])))
      ))
  })

  const restartable = Layer.provideMerge(
    TraceStoreRedis.layer(),
    Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)
  )
  layer(restartable, { excludeTestServices: true })("across a server restart", (it) => {
    it.effect("the scripts are sent again after the restart (NOSCRIPT) and the store works on", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const server = yield* RedisTestServer.RedisTestServer
        const before = nextTraceId()
        yield* store.create(before, "INFERRING")
        yield* store.transition(before, "EGRESS")
        yield* Effect.sleep("5 millis")
        expect((yield* store.sweepOrphans({ threshold: "1 millis" })).orphaned).toBe(1)

        yield* server.stop
        expect((yield* Effect.flip(store.create(nextTraceId(), "RECEIVED")))._tag).toBe("TraceStoreUnavailable")
        yield* server.start
        const after = nextTraceId()
        yield* store.create(after, "INFERRING").pipe(
          Effect.retry({
            schedule: Schedule.spaced("50 millis"),
            times: 60,
            while: (e) => e._tag === "TraceStoreUnavailable"
          })
        )
        yield* store.transition(after, "EGRESS")
        yield* Effect.sleep("5 millis")
        const report = yield* store.sweepOrphans({ threshold: "1 millis" })
        expect(report).toMatchObject({ scanned: 1, orphaned: 1 })
        expect(Option.getOrThrow(yield* store.get(after)).state).toBe("ERRORED")
        expect(yield* store.get(before)).toEqual(Option.none())
      }))
  })

  describe("when Redis is unreachable", () => {
    const nowhere = Layer.provide(
      TraceStoreRedis.layer(),
      Layer.scoped(
        RedisClient.RedisClient,
        RedisClient.make({ url: "redis://127.0.0.1:1", connectTimeout: "200 millis", commandTimeout: "300 millis" })
      )
    )
    it.live("every call fails with TraceStoreUnavailable (the Redis error its cause), nothing crashes", () =>
      Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        const id = nextTraceId()
        expect((yield* Effect.flip(store.create(id, "RECEIVED")))._tag).toBe("TraceStoreUnavailable")
        expect((yield* Effect.flip(store.transition(id, "EGRESS")))._tag).toBe("TraceStoreUnavailable")
        expect((yield* Effect.flip(store.get(id)))._tag).toBe("TraceStoreUnavailable")
        expect((yield* Effect.flip(store.sweepOrphans()))._tag).toBe("TraceStoreUnavailable")
        const failure = yield* Effect.flip(store.ping)
        expect(failure).toMatchObject({ _tag: "TraceStoreUnavailable", operation: "PING" })
        expect(failure.message).toContain("127.0.0.1:1")
        expect(failure.cause).toMatchObject({ _tag: "RedisUnavailable" })
      }).pipe(Effect.provide(nowhere)))
  })
})
