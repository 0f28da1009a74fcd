/**
 * The TraceStore backend over Redis: `sg:trace:<id>` hashes and the `sg:traces:active` set, under the client's prefix.
 */
import type { RedisClient } from "@sg/redis"
import * as Effect from "effect/Effect"
import type { Backend, Row } from "./backend.js"
import * as Scripts from "./scripts.js"

/** Rejects with the first error of an EXEC reply (or an aborted transaction), as `RedisClient.multi` fails. */
const checkExec = (replies: Array<[Error | null, unknown]> | null): void => {
  if (replies === null) throw new Error("transaction aborted")
  for (const [error] of replies) if (error !== null) throw error
}

/** The backend over a Redis client. */
export const makeRedisBackend = (redis: RedisClient.Service): Backend => {
  const traceKey = (id: string) => redis.key("trace", id)
  const activeKey = redis.key("traces", "active")

  return {
    kind: "redis",
    create: (id, fields, ttlSeconds) => {
      const key = traceKey(id)
      // The raw MULTI, checked here rather than through `redis.multi`: one Effect step less on every request.
      return redis.use("TraceStore.create", (client) =>
        client.multi().hset(key, ...fields).expire(key, ttlSeconds).sadd(activeKey, id).exec().then(checkExec))
    },
    setState: (id, state, now, fields, terminalTtlSeconds) =>
      Effect.map(
        redis.eval(Scripts.setState, [traceKey(id), activeKey], [id, state, now, terminalTtlSeconds ?? "", ...fields]),
        (reply) => reply[0] === "terminal" ? { _tag: "terminal", state: reply[1] } : { _tag: reply[0] }
      ),
    read: (id) =>
      Effect.map(redis.use("HGETALL", (client) => client.hgetall(traceKey(id))), (hash) =>
        Object.keys(hash).length === 0 ? undefined : hash),
    ttlMillis: (id) =>
      Effect.map(redis.use("PTTL", (client) => client.pttl(traceKey(id))), (ms) => ms >= 0 ? ms : undefined),
    isActive: (id) => Effect.map(redis.use("SISMEMBER", (client) => client.sismember(activeKey, id)), (n) => n === 1),
    activeCount: redis.use("SCARD", (client) => client.scard(activeKey)),
    ping: redis.ping,
    walk: (batchSize) =>
      Effect.sync(() => {
        let cursor: string | undefined = "0"
        return Effect.suspend(() => {
          if (cursor === undefined) return Effect.succeed(undefined)
          return Effect.map(redis.eval(Scripts.sweepRead, [activeKey], [cursor, batchSize, traceKey("")]), (reply) => {
            cursor = reply[0] === "0" || reply[0] === null ? undefined : reply[0]
            const rows: Array<Row> = []
            for (let i = 1; i + 2 < reply.length; i += 3) {
              rows.push({ id: reply[i]!, state: reply[i + 1] ?? null, createdAt: reply[i + 2] ?? null })
            }
            return rows
          })
        })
      }),
    decide: (candidates, now, terminalTtlSeconds, fence) => {
      const args: Array<string | number> = [
        fence === undefined ? "0" : "1",
        fence?.token ?? "",
        fence === undefined ? "" : String(fence.epoch),
        now,
        terminalTtlSeconds
      ]
      for (const candidate of candidates) args.push(traceKey(candidate.id), candidate.id, candidate.seen)
      const lease = fence?.name ?? "-"
      const keys = [activeKey, redis.key("lease", lease), redis.key("lease", lease, "epoch")]
      return Effect.map(
        redis.eval(Scripts.sweepDecide, keys, args),
        (reply) =>
          reply[0] === "ok"
            ? { _tag: "ok", decisions: reply.slice(1) as ReadonlyArray<number> }
            : { _tag: "lease_lost", holder: reply[1], epoch: reply[2] }
      )
    }
  }
}
