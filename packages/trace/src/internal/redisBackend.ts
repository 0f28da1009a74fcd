/**
 * The TraceStore backend over Redis: `sg:trace:<id>` hashes and the `sg:traces:active` set, under the client's prefix.
 */
import type { RedisClient } from "@sg/redis"
import * as Effect from "effect/Effect"
import type { Backend, FinishResult, Refused, Row, SetStateResult } from "./backend.js"
import * as Scripts from "./scripts.js"
import { storeRedis } from "./storeFailure.js"

const refusedOf = (reply: readonly [string, ...Array<unknown>]): Refused | undefined => {
  switch (reply[0]) {
    case "missing":
      return { _tag: "missing" }
    case "stale":
      return { _tag: "stale", opening: String(reply[1]) }
    case "terminal":
      return { _tag: "terminal", state: String(reply[1]) }
  }
  return undefined
}

/** The backend over a Redis client. */
export const makeRedisBackend = (client: RedisClient.Service): Backend => {
  const redis = storeRedis(client)
  const traceKey = (id: string) => redis.key("trace", id)
  const activeKey = redis.key("traces", "active")

  return {
    kind: "redis",
    address: { target: client.target, prefix: client.prefix },
    create: (id, state, now, metadata, ttlSeconds, request) =>
      Effect.map(
        redis.eval(Scripts.create, [traceKey(id), activeKey], [id, state, now, ttlSeconds, request ?? "", ...metadata]),
        ([opening, kind, inFlight]) => ({ opening, kind, inFlight })
      ),
    transition: (id, state, now, opening) =>
      Effect.map(
        redis.eval(Scripts.transition, [traceKey(id), activeKey], [id, state, now, opening ?? ""]),
        (reply): SetStateResult => refusedOf(reply) ?? { _tag: "ok" }
      ),
    finish: (id, state, now, opening, fields, terminalTtlSeconds, request) =>
      Effect.map(
        redis.eval(
          Scripts.finish,
          [traceKey(id), activeKey],
          [id, state, now, opening ?? "", terminalTtlSeconds, request ?? "", ...fields]
        ),
        (reply): FinishResult =>
          reply[0] === "ended"
            ? { _tag: "ended", state: reply[1] }
            : reply[0] === "pending"
            ? { _tag: "pending", inFlight: reply[1] }
            : reply[0] === "duplicate"
            ? { _tag: "duplicate" }
            : refusedOf(reply)!
      ),
    annotate: (id, fields, reserved) =>
      Effect.map(
        redis.eval(Scripts.annotate, [traceKey(id)], [reserved.length, ...reserved, ...fields]),
        (found) => found === 1
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
            for (let i = 1; i + 3 < reply.length; i += 4) {
              rows.push({
                id: reply[i]!,
                state: reply[i + 1] ?? null,
                createdAt: reply[i + 2] ?? null,
                updatedAt: reply[i + 3] ?? null
              })
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
      for (const candidate of candidates) {
        args.push(traceKey(candidate.id), candidate.id, candidate.kind[0]!, candidate.seen)
      }
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
