import { describe, expect, it, layer } from "@effect/vitest"
import { RedisClient, RedisCommandError, RedisScript, RedisUnavailable } from "@sg/redis"
import { RedisTestCluster } from "@sg/redis/testing"
import { ConfigProvider, Duration, Effect, Either, Layer, Redacted, Schedule, Schema } from "effect"

const counter = RedisScript.make({
  name: "sgTestClusterIncrBy",
  numberOfKeys: 1,
  lua: "return redis.call('INCRBY', KEYS[1], ARGV[1])",
  reply: Schema.Number
})

const pair = RedisScript.make({
  name: "sgTestClusterPair",
  numberOfKeys: 2,
  lua: "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 1",
  reply: Schema.Literal(1)
})

/** The port of the master serving `key` now. */
const masterOf = (redis: RedisClient.Service, key: string) =>
  Effect.gen(function*() {
    const slot = yield* redis.use("CLUSTER KEYSLOT", (c) => c.call("CLUSTER", "KEYSLOT", key) as Promise<number>)
    const slots = yield* redis.use("CLUSTER SLOTS", (c) => c.call("CLUSTER", "SLOTS") as Promise<Array<[number, number, [string, number]]>>)
    const range = slots.find(([from, to]) => slot >= from && slot <= to)!
    return range[2][1]
  })

/** One tag per master: keys under each land on a different master. */
const tagsPerMaster = (redis: RedisClient.Service, masters: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const found = new Map<number, string>()
    for (let i = 0; found.size < masters.length && i < 1000; i++) {
      const port = yield* masterOf(redis, redis.key(redis.tag(String(i)), "x"))
      if (!found.has(port)) found.set(port, String(i))
    }
    return found
  })

const retryUnavailable = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100, while: (e) => e._tag === "RedisUnavailable" })
  )

describe("RedisClient on a Redis Cluster", () => {
  layer(RedisTestCluster.layerWithClient(), { excludeTestServices: true, timeout: 60_000 })("three masters, three replicas", (it) => {
    it.effect("connects in cluster mode and sees the three masters", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const cluster = yield* RedisTestCluster.RedisTestCluster
        yield* redis.ping
        expect(redis.mode).toBe("redis-cluster")
        expect(redis.tag("lease")).toBe("{lease}")
        const nodes = yield* cluster.nodes
        expect(nodes.filter((n) => n.role === "master")).toHaveLength(3)
        expect(nodes.filter((n) => n.role === "replica")).toHaveLength(3)
        expect(yield* redis.masters).toEqual((yield* cluster.masters).map((port) => `127.0.0.1:${port}`).sort())
      }))

    it.effect("runs a script on every master, each keeping its own script cache", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const cluster = yield* RedisTestCluster.RedisTestCluster
        const tags = yield* tagsPerMaster(redis, yield* cluster.masters)
        expect(tags.size).toBe(3)
        for (const tag of tags.values()) {
          const key = redis.key(redis.tag(tag), "scripted")
          expect(yield* redis.eval(counter, [key], [2])).toBe(2)
          expect(yield* redis.eval(counter, [key], [3])).toBe(5)
        }
        const counts = yield* cluster.keysPerMaster(`${redis.prefix}:*:scripted`)
        expect(Array.from(counts.values())).toEqual([1, 1, 1])
      }))

    it.effect("a script or MULTI over one slot works; over two it is a RedisCommandError", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const same = [redis.key(redis.tag("t"), "a"), redis.key(redis.tag("t"), "b")]
        expect(yield* redis.eval(pair, same, ["v"])).toBe(1)
        expect(yield* redis.multi("tx", (m) => m.set(same[0]!, "x").get(same[1]!))).toEqual(["OK", "v"])
        const apart = [redis.key("a"), redis.key("b")]
        const script = yield* Effect.flip(redis.eval(pair, apart, ["v"]))
        expect(script).toBeInstanceOf(RedisCommandError)
        expect(script.message).toContain("CROSSSLOT")
        const tx = yield* Effect.flip(redis.multi("tx", (m) => m.set(apart[0]!, "1").set(apart[1]!, "2")))
        expect(tx).toBeInstanceOf(RedisCommandError)
      }))

    it.effect("a master killed: its replica takes over, scripts and MULTI work there, the node rejoins", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.RedisClient
        const cluster = yield* RedisTestCluster.RedisTestCluster
        const tags = yield* tagsPerMaster(redis, yield* cluster.masters)
        const [victim, tag] = Array.from(tags.entries())[0]!
        const key = redis.key(redis.tag(tag), "failover")
        expect(yield* redis.eval(counter, [key], [1])).toBe(1)
        // Written on the master and acknowledged by its replica before the crash.
        yield* redis.use("WAIT", (c) => c.call("WAIT", "1", "1000") as Promise<number>).pipe(Effect.ignore)
        yield* cluster.killMaster(victim)
        const during = yield* Effect.either(redis.eval(counter, [key], [1]))
        if (Either.isLeft(during)) expect(during.left).toBeInstanceOf(RedisUnavailable)
        const promoted = yield* cluster.awaitFailover(victim)
        expect(promoted).not.toBe(victim)
        // The promoted replica has never run the script: EVALSHA meets NOSCRIPT and ioredis sends EVAL.
        const after = yield* retryUnavailable(redis.eval(counter, [key], [10]))
        expect(after).toBeGreaterThanOrEqual(11)
        expect(yield* masterOf(redis, key)).toBe(promoted)
        expect(yield* retryUnavailable(redis.multi("tx", (m) => m.incr(key)))).toEqual([after + 1])
        yield* Effect.eventually(Effect.filterOrFail(redis.masters, (m) => m.includes(`127.0.0.1:${promoted}`)))
        yield* cluster.restart(victim)
        expect((yield* cluster.nodes).find((n) => n.port === victim)?.role).toBe("replica")
      }), 60_000)
  })

  describe("configuration", () => {
    const withEnv = (env: Record<string, string>) =>
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

    it.effect("SG_REDIS_CLUSTER=1 with comma-separated seeds, or redis+cluster:// URLs, selects cluster mode", () =>
      Effect.gen(function*() {
        const listed = yield* withEnv({ REDIS_URL: "redis://:pw@10.0.0.1:7000,redis://10.0.0.2:7001", SG_REDIS_CLUSTER: "1" })(
          RedisClient.config
        )
        expect(listed.cluster).toBe(true)
        const schemed = yield* withEnv({ REDIS_URL: "redis+cluster://10.0.0.1:7000" })(RedisClient.config)
        expect(schemed.cluster).toBe(true)
        const plain = yield* withEnv({ REDIS_URL: "redis://10.0.0.1:6379/2" })(RedisClient.config)
        expect(plain.cluster).toBe(false)
        const target = RedisClient.target("redis+cluster://u:p%40ss@a:7000,redis+cluster://b", false)
        expect(target).toEqual(Either.right({
          _tag: "Cluster",
          seeds: [{ host: "a", port: 7000 }, { host: "b", port: 6379 }],
          username: "u",
          password: "p@ss",
          tls: false
        }))
      }))

    it.effect("refuses several URLs without cluster mode, a database on a cluster, braces in its prefix", () =>
      Effect.gen(function*() {
        const several = yield* Effect.either(withEnv({ REDIS_URL: "redis://a:1,redis://b:2" })(RedisClient.config))
        expect(Either.isLeft(several) && String(several.left)).toContain("SG_REDIS_CLUSTER")
        const db = yield* Effect.either(withEnv({ REDIS_URL: "redis://a:1/3", SG_REDIS_CLUSTER: "true" })(RedisClient.config))
        expect(Either.isLeft(db) && String(db.left)).toContain("database 0")
        const braces = yield* Effect.either(
          withEnv({ REDIS_URL: "redis+cluster://a:1", SG_KEY_PREFIX: "s{g}" })(RedisClient.config)
        )
        expect(Either.isLeft(braces) && String(braces.left)).toContain("SG_KEY_PREFIX")
        const scheme = yield* Effect.either(withEnv({ REDIS_URL: "http://a:1" })(RedisClient.config))
        expect(Either.isLeft(scheme) && String(scheme.left)).toContain("REDIS_URL")
      }))

    it.effect("the target of a seed list is redacted seed by seed", () =>
      Effect.gen(function*() {
        const redis = yield* RedisClient.make({
          url: Redacted.make("redis://:hunter2@127.0.0.1:1,redis://:hunter2@127.0.0.1:2"),
          cluster: true,
          connectTimeout: "100 millis"
        })
        expect(redis.target).toBe("redis://:***@127.0.0.1:1,redis://:***@127.0.0.1:2")
        expect(redis.mode).toBe("redis-cluster")
      }).pipe(Effect.scoped))
  })

  it.live("a cluster out of reach: a command fails with RedisUnavailable within its timeout", () =>
    Effect.gen(function*() {
      const redis = yield* RedisClient.RedisClient
      const [elapsed, error] = yield* Effect.timed(Effect.flip(redis.ping))
      expect(error).toBeInstanceOf(RedisUnavailable)
      expect(Duration.toMillis(elapsed)).toBeLessThan(3_000)
      expect(yield* redis.isReady).toBe(false)
    }).pipe(
      Effect.provide(Layer.scoped(
        RedisClient.RedisClient,
        RedisClient.make({ url: "redis://127.0.0.1:1", cluster: true, connectTimeout: "200 millis", commandTimeout: "500 millis" })
      ))
    ))
})
