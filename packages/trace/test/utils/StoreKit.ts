/**
 * What the TraceStore conformance suite needs beyond the store itself, per backend: raw access to the keyspace (to
 * plant hashes another writer made, or make one vanish as its failsafe TTL would) and a lease to fence sweeps with.
 * Each layer here is a fresh, isolated store: a new memory keyspace, or a new key prefix on the test Redis.
 */
import type { Lease } from "@sg/leader"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Clock, Context, Effect, Layer, Ref } from "effect"
import { layoutFor } from "../../src/internal/layout.js"
import { makeMemoryBackend, MemoryKeyspace } from "../../src/internal/memoryBackend.js"
import { makeService } from "../../src/internal/service.js"
import * as TraceStore from "../../src/TraceStore.js"
import * as TraceStoreRedis from "../../src/TraceStore/Redis.js"

/** A lease the test controls. */
export interface TestLease {
  readonly lease: Lease.Service
  /** Hands the lease to another holder at a newer epoch. */
  readonly revoke: Effect.Effect<void>
}

/** Raw keyspace access for the conformance suite. */
export class StoreKit extends Context.Tag("@sg/trace/test/StoreKit")<StoreKit, {
  readonly name: "redis" | "redis-cluster" | "memory"
  /** HSETs raw fields into an id's hash (as the Python service would), and SADDs the id unless `active` is false. */
  readonly writeRaw: (
    id: string,
    fields: Readonly<Record<string, string>>,
    options?: { readonly active?: boolean; readonly ttlSeconds?: number }
  ) => Effect.Effect<void>
  /** The raw hash; `undefined` when gone. */
  readonly readRaw: (id: string) => Effect.Effect<Readonly<Record<string, string>> | undefined>
  /** Deletes the hash but not the active-set entry, as the failsafe TTL expiring would. */
  readonly dropHash: (id: string) => Effect.Effect<void>
  /** Takes the lease `name` at a new epoch. */
  readonly grantLease: (name: string) => Effect.Effect<TestLease>
}>() {}

const otherHolder = "another-host:1:abcdef"

/** A fresh memory store and its kit. */
export const memory: Layer.Layer<TraceStore.TraceStore | StoreKit> = Layer.unwrapEffect(
  Effect.sync(() => {
    const keyspace = new MemoryKeyspace()
    const store = makeService(makeMemoryBackend(keyspace), TraceStore.defaults)
    const kit = StoreKit.of({
      name: "memory",
      writeRaw: (id, fields, options) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          keyspace.hset(id, now, Object.entries(fields).flat())
          keyspace.expire(id, options?.ttlSeconds === undefined ? undefined : now + options.ttlSeconds * 1000)
          if (options?.active !== false) keyspace.active.add(id)
        }),
      readRaw: (id) =>
        Effect.sync(() => {
          const entry = keyspace.hashes.peek(id)
          return entry === undefined ? undefined : Object.fromEntries(entry.fields)
        }),
      dropHash: (id) => Effect.sync(() => void keyspace.hashes.delete(id)),
      grantLease: (name) =>
        Effect.map(Ref.make(true), (held) => ({
          lease: { name, token: "test-host:1:memory", epoch: 1, stillHeld: Ref.get(held) },
          revoke: Ref.set(held, false)
        }))
    })
    return Layer.merge(Layer.succeed(TraceStore.TraceStore, store), Layer.succeed(StoreKit, kit))
  })
)

let prefixes = 0

/** A Redis client for the test server under a key prefix no other test uses. */
export const isolatedClient: Layer.Layer<RedisClient.RedisClient, never, RedisTestServer.RedisTestServer> = Layer
  .unwrapEffect(
    Effect.map(RedisTestServer.RedisTestServer, (server) =>
      RedisTestServer.layerClient({ prefix: `${server.prefix}:t${++prefixes}` }))
  )

/** The test client under a prefix of its own: a fresh keyspace on a shared connection (a cluster's, say). */
export const isolate = (redis: RedisClient.Service): RedisClient.Service => {
  const prefix = `${redis.prefix}:t${process.pid}k${++prefixes}`
  return { ...redis, prefix, key: (...parts) => [prefix, ...parts].join(":") }
}

const redisKit: Layer.Layer<StoreKit, never, RedisClient.RedisClient> = Layer.effect(
  StoreKit,
  Effect.map(RedisClient.RedisClient, (redis) => {
    const run = <A>(command: string, f: Parameters<typeof redis.use<A>>[1]) => Effect.orDie(redis.use(command, f))
    // Where the store keeps each key: DESIGN.md's table standalone, the trace's shard on a cluster.
    const layout = layoutFor(redis, TraceStore.defaults.indexShards)
    return StoreKit.of({
      name: redis.mode,
      writeRaw: (id, fields, options) =>
        run("raw write", (c) => {
          const tx = c.multi().hset(layout.trace(id), fields)
          if (options?.ttlSeconds !== undefined) tx.expire(layout.trace(id), options.ttlSeconds)
          if (options?.active !== false) tx.sadd(layout.active(layout.shardOf(id)), id)
          return tx.exec()
        }),
      readRaw: (id) =>
        Effect.map(run("HGETALL", (c) => c.hgetall(layout.trace(id))), (hash) =>
          Object.keys(hash).length === 0 ? undefined : hash),
      dropHash: (id) => Effect.asVoid(run("DEL", (c) => c.del(layout.trace(id)))),
      grantLease: (name) =>
        Effect.gen(function*() {
          // The lease store's keys: on a cluster the name is their hash tag, so MGET and MULTI stay in one slot.
          const key = redis.key("lease", redis.tag(name))
          const epochKey = redis.key("lease", redis.tag(name), "epoch")
          const token = `test-host:${process.pid}:${Math.random().toString(36).slice(2, 10)}`
          const epoch = yield* run("INCR", (c) => c.incr(epochKey))
          yield* run("SET", (c) => c.set(key, token))
          const stillHeld = Effect.map(
            run("MGET", (c) => c.mget(key, epochKey)),
            ([holder, current]) => holder === token && current === String(epoch)
          )
          const revoke = Effect.asVoid(run("revoke", (c) => c.multi().set(key, otherHolder).incr(epochKey).exec()))
          return { lease: { name, token, epoch, stillHeld }, revoke }
        })
    })
  })
)

/** A fresh Redis store (its own prefix on the test server), its kit and its client. */
export const redis: Layer.Layer<
  TraceStore.TraceStore | StoreKit | RedisClient.RedisClient,
  never,
  RedisTestServer.RedisTestServer
> = Layer.mergeAll(TraceStoreRedis.layer(), redisKit).pipe(Layer.provideMerge(isolatedClient))

/**
 * A fresh store on the shared cluster client in context (its own prefix, the cluster keyspace in 16 shards), its
 * kit and the isolated client.
 */
export const cluster: Layer.Layer<
  TraceStore.TraceStore | StoreKit | RedisClient.RedisClient,
  never,
  RedisClient.RedisClient
> = Layer.mergeAll(TraceStoreRedis.layer(), redisKit).pipe(
  Layer.provideMerge(Layer.effect(RedisClient.RedisClient, Effect.map(RedisClient.RedisClient, isolate)))
)
