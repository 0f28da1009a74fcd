import { describe, expect, it, layer } from "@effect/vitest"
import { RedisClient, RedisCommandError, RedisScript, RedisUnavailable } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { ConfigProvider, Duration, Effect, Either, Layer, Redacted, Schedule, Schema } from "effect"

const counter = RedisScript.make({
  name: "sgTestIncrBy",
  numberOfKeys: 1,
  lua: "return redis.call('INCRBY', KEYS[1], ARGV[1])",
  reply: Schema.Number
})

const badReply = RedisScript.make({
  name: "sgTestBadReply",
  numberOfKeys: 0,
  lua: "return 'not a number'",
  reply: Schema.Number
})

describe("RedisClient", () => {
  it.layer(RedisTestServer.layerWithClient)("against a real Redis", (it) => {
    it.effect("puts keys under the prefix", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const server = yield* RedisTestServer.RedisTestServer
        expect(redis.key("trace", "abc")).toBe(`${server.prefix}:trace:abc`)
        yield* redis.use("SET", (c) => c.set(redis.key("k"), "v"))
        expect(yield* redis.use("GET", (c) => c.get(`${server.prefix}:k`))).toBe("v")
      }))

    it.effect("runs a MULTI and returns each reply", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const replies = yield* redis.multi("tx", (m) => m.set(redis.key("a"), "1").incr(redis.key("a")))
        expect(replies).toEqual(["OK", 2])
      }))

    it.effect("runs a typed script, registered once", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const key = redis.key("counter")
        expect(yield* redis.eval(counter, [key], [5])).toBe(5)
        expect(yield* redis.eval(counter, [key], [2])).toBe(7)
      }))

    it.effect("a reply the script's schema refuses is a RedisCommandError naming the script", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const error = yield* Effect.flip(redis.eval(badReply, [], []))
        expect(error).toBeInstanceOf(RedisCommandError)
        expect(error.message).toContain("sgTestBadReply")
      }))

    it.effect("a command Redis rejects is a RedisCommandError, not RedisUnavailable", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        yield* redis.use("SET", (c) => c.set(redis.key("str"), "x"))
        const error = yield* Effect.flip(redis.use("HGET", (c) => c.hget(redis.key("str"), "f")))
        expect(error._tag).toBe("RedisCommandError")
        expect(error.message).toContain("WRONGTYPE")
      }))

    it.effect("a failing command inside a MULTI fails the whole call", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        yield* redis.use("SET", (c) => c.set(redis.key("str2"), "x"))
        const error = yield* Effect.flip(redis.multi("tx", (m) => m.hset(redis.key("str2"), "f", "v")))
        expect(error._tag).toBe("RedisCommandError")
      }))

    it.effect("ping and isReady", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        yield* redis.ping
        expect(yield* redis.isReady).toBe(true)
      }))
  })

  describe("when Redis is unreachable", () => {
    const nowhere = Layer.scoped(
      RedisClient.RedisClient,
      RedisClient.make({ url: "redis://127.0.0.1:1", connectTimeout: "200 millis", commandTimeout: "300 millis" })
    )

    it.live("a command fails with RedisUnavailable within its timeout, and nothing crashes", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const [elapsed, error] = yield* Effect.timed(Effect.flip(redis.ping))
        expect(error).toBeInstanceOf(RedisUnavailable)
        expect(error.message).toContain("127.0.0.1:1")
        expect(Duration.toMillis(elapsed)).toBeLessThan(2_000)
        expect(yield* redis.isReady).toBe(false)
      }).pipe(Effect.provide(nowhere)))

    it.live("the offline queue is bounded: past the limit commands fail at once", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const [elapsed, error] = yield* Effect.timed(Effect.flip(redis.ping))
        expect(error._tag).toBe("RedisUnavailable")
        expect(error.message).toContain("already wait")
        expect(Duration.toMillis(elapsed)).toBeLessThan(50)
      }).pipe(
        Effect.provide(Layer.scoped(
          RedisClient.RedisClient,
          RedisClient.make({ url: "redis://127.0.0.1:1", offlineQueueLimit: 0, commandTimeout: "5 seconds" })
        ))
      ))
  })

  layer(Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned), {
    excludeTestServices: true
  })(
    "across a server restart",
    (it) => {
      it.effect("fails with RedisUnavailable while down, recovers after, and re-sends its scripts", () =>
        Effect.gen(function*() {
          const redis = yield* RedisClient.RedisClient
          const server = yield* RedisTestServer.RedisTestServer
          expect(yield* redis.eval(counter, [redis.key("c")], [1])).toBe(1)
          yield* server.stop
          const error = yield* Effect.flip(redis.ping)
          expect(error._tag).toBe("RedisUnavailable")
          yield* server.start
          // The new server has an empty script cache: EVALSHA meets NOSCRIPT and ioredis falls back to EVAL.
          const after = yield* redis.eval(counter, [redis.key("c")], [3]).pipe(
            Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 60, while: (e) => e._tag === "RedisUnavailable" })
          )
          expect(after).toBe(3)
        }))
    }
  )

  describe("configuration", () => {
    it.effect("reads REDIS_URL and SG_KEY_PREFIX, and redacts the password", () =>
      Effect.gen(function*() {
        const config = yield* RedisClient.config
        expect(Redacted.isRedacted(config.url)).toBe(true)
        expect(config.prefix).toBe("custom")
        expect(Duration.toMillis(Duration.decode(config.commandTimeout!))).toBe(2000)
        const redis = yield* RedisClient.make(config)
        expect(redis.target).toBe("redis://:***@127.0.0.1:1")
        expect(String(config.url)).not.toContain("hunter2")
      }).pipe(
        Effect.scoped,
        Effect.withConfigProvider(
          ConfigProvider.fromMap(new Map([["REDIS_URL", "redis://:hunter2@127.0.0.1:1"], ["SG_KEY_PREFIX", "custom"]]))
        )
      ))

    it.effect("a missing REDIS_URL or a bad prefix is a ConfigError naming the variable", () =>
      Effect.gen(function*() {
        const missing = yield* Effect.either(RedisClient.config)
        expect(Either.isLeft(missing) && String(missing.left)).toContain("REDIS_URL")
        const bad = yield* Effect.either(
          Effect.withConfigProvider(
            RedisClient.config,
            ConfigProvider.fromMap(new Map([["REDIS_URL", "redis://x"], ["SG_KEY_PREFIX", "a b"]]))
          )
        )
        expect(Either.isLeft(bad) && String(bad.left)).toContain("SG_KEY_PREFIX")
      }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))))
  })
})
