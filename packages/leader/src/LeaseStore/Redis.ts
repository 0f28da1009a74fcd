/**
 * Leases in Redis: `<prefix>:lease:<name>` holds the holder's token with a PX TTL, `<prefix>:lease:<name>:epoch`
 * the fencing counter (no TTL); on a Redis Cluster, `<prefix>:lease:{<name>}` and `<prefix>:lease:{<name>}:epoch`
 * (one slot per lease). Acquire, renew and release are Lua scripts, each one atomic step. The one module of
 * `@sg/leader` that needs `@sg/redis` (and ioredis): import it by path.
 */
import { type RedisError, RedisClient, RedisScript } from "@sg/redis"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Layer from "effect/Layer"
import * as LeaderElection from "../LeaderElection.js"
import type { InvalidLeaseConfig } from "../LeaderElectionError.js"
import { LeaseStoreError } from "../LeaderElectionError.js"
import { LeaseStore, type Service } from "../LeaseStore.js"
import type * as ConfigError from "effect/ConfigError"

/**
 * KEYS: lease, epoch. ARGV: token, TTL in ms, floor.
 * SET NX PX; on success INCR the epoch, raised above the floor if the counter was lost. If the token already holds
 * the lease, extends it. Replies {acquired 1|0, epoch, holder}.
 */
const acquire = RedisScript.make({
  name: "sgLeaseAcquire",
  numberOfKeys: 2,
  lua: `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local epoch = redis.call('INCR', KEYS[2])
  local floor = tonumber(ARGV[3])
  if epoch <= floor then
    epoch = floor + 1
    redis.call('SET', KEYS[2], string.format('%d', epoch))
  end
  return {1, epoch, ARGV[1]}
end
local holder = redis.call('GET', KEYS[1])
local epoch = tonumber(redis.call('GET', KEYS[2]) or '0')
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, epoch, holder}
end
return {0, epoch, holder}
`,
  reply: Schema.Tuple(Schema.Literal(0, 1), Schema.Number, Schema.String)
})

/** KEYS: lease, epoch. ARGV: token, epoch, TTL in ms. Compare-and-PEXPIRE: 1 when extended, 0 when not ours. */
const renew = RedisScript.make({
  name: "sgLeaseRenew",
  numberOfKeys: 2,
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
`,
  reply: Schema.Literal(0, 1)
})

/** KEYS: lease. ARGV: token. Compare-and-DEL: 1 when released, 0 when not ours. */
const release = RedisScript.make({
  name: "sgLeaseRelease",
  numberOfKeys: 1,
  lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`,
  reply: Schema.Literal(0, 1)
})

const Epoch = Schema.NullOr(Schema.NumberFromString)

/**
 * The lease's two keys under the client's prefix: `<prefix>:lease:<name>` and `<prefix>:lease:<name>:epoch`; on a
 * Redis Cluster the name is their hash tag (`<prefix>:lease:{<name>}`), so both share one slot, each lease its own.
 */
export const keys = (redis: RedisClient.Service, name: string) => ({
  lease: redis.key("lease", redis.tag(name)),
  epoch: redis.key("lease", redis.tag(name), "epoch")
})

const storeError = (error: RedisError) => new LeaseStoreError({ message: error.message, cause: error })

/** A lease store over the shared Redis client. */
export const makeStore: Effect.Effect<Service, never, RedisClient.RedisClient> = Effect.map(
  RedisClient.RedisClient,
  (redis) => ({
    tryAcquire: (name, token, ttlMillis, floor) => {
      const { epoch, lease } = keys(redis, name)
      return redis.eval(acquire, [lease, epoch], [token, Math.floor(ttlMillis), floor]).pipe(
        Effect.map(([acquired, epoch, holder]) => ({ acquired: acquired === 1, epoch, holder })),
        Effect.mapError(storeError)
      )
    },
    renew: (name, token, epochNumber, ttlMillis) => {
      const { epoch, lease } = keys(redis, name)
      return redis.eval(renew, [lease, epoch], [token, String(epochNumber), Math.floor(ttlMillis)]).pipe(
        Effect.map((reply) => reply === 1),
        Effect.mapError(storeError)
      )
    },
    release: (name, token) =>
      redis.eval(release, [keys(redis, name).lease], [token]).pipe(
        Effect.map((reply) => reply === 1),
        Effect.mapError(storeError)
      ),
    read: (name) => {
      const { epoch, lease } = keys(redis, name)
      return redis.use("MGET", (client) => client.mget(lease, epoch)).pipe(
        Effect.mapError(storeError),
        Effect.flatMap(([holder, value]) =>
          Schema.decodeUnknown(Epoch)(value ?? null).pipe(
            Effect.mapError((cause) =>
              new LeaseStoreError({ message: `the epoch key ${epoch} does not hold a number: ${value}`, cause })
            ),
            Effect.map((decoded) => ({ holder: holder ?? undefined, epoch: decoded ?? 0 }))
          )
        )
      )
    }
  })
)

/** The lease store over the `RedisClient` in context. */
export const layerStore: Layer.Layer<LeaseStore, never, RedisClient.RedisClient> = Layer.effect(LeaseStore, makeStore)

/** An elector whose leases live in Redis; the TTL comes from `SG_LEASE_TTL` unless `options` gives it. */
export const layer = (
  options?: Partial<LeaderElection.Options>
): Layer.Layer<LeaderElection.LeaderElection, InvalidLeaseConfig | ConfigError.ConfigError, RedisClient.RedisClient> =>
  Layer.provide(LeaderElection.layer(options), layerStore)
