import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, Layer, Option } from "effect"
import {
  type Child,
  ended,
  now,
  outputs,
  pidOfToken,
  spawnSg,
  waitFor,
  waitUntil
} from "./utils/processes.js"

/** A private redis-server (prefix `sg`, as the children use) and a client for it. */
const redis = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

const leaseKey = "sg:lease:trace-watchdog"
const epochKey = "sg:lease:trace-watchdog:epoch"

const get = (key: string) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.orDie(client.use("GET", (c) => c.get(key))))

/** The pid whose token holds the lease, if any. */
const holderPid = Effect.map(get(leaseKey), (token) => Option.map(Option.fromNullable(token), pidOfToken))

const epoch = Effect.map(get(epochKey), Number)

/**
 * Two `sg watchdog` processes against the test server, both started and campaigning; returns them as
 * [holder, other] once one holds the lease.
 */
const twoWatchdogs = (env: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.RedisTestServer
    const childEnv = { REDIS_URL: server.url, SG_KEY_PREFIX: "sg", ...env }
    const a = yield* spawnSg("a", ["watchdog"], childEnv)
    const b = yield* spawnSg("b", ["watchdog"], childEnv)
    const started = (child: Child) => Effect.sync(() => child.stderr().includes("watchdog started"))
    yield* waitUntil("both watchdogs to start", Effect.zipWith(started(a), started(b), (x, y) => x && y), "30 seconds",
      outputs(a, b))
    const pid = yield* waitFor("a holder", holderPid, "10 seconds", outputs(a, b))
    expect([a.pid, b.pid]).toContain(pid)
    const [holder, other] = pid === a.pid ? [a, b] : [b, a]
    yield* waitUntil("the holder to log its term", Effect.sync(() => holder.stderr().includes("leadership acquired")),
      "5 seconds", outputs(a, b))
    expect(other.stderr()).not.toContain("leadership acquired")
    return [holder, other] as const
  })

const holds = (child: Child) => Effect.map(holderPid, (pid) => Option.contains(pid, child.pid))

/** Lines of a child's stderr that log `trace_orphaned` for `id`. */
const orphanedLines = (child: Child, id: string) =>
  child.stderr().split("\n").filter((line) => line.includes("trace_orphaned") && line.includes(id))

describe("sg watchdog, as processes against a real Redis", () => {
  it.live("kill -9 the holder: the other holds the lease within two lease TTLs, at a larger epoch", () =>
    Effect.gen(function*() {
      const [holder, other] = yield* twoWatchdogs({ SG_LEASE_TTL: "2 seconds", SG_SWEEP_INTERVAL: "1 seconds" })
      const before = yield* epoch
      const killedAt = yield* now
      yield* holder.signal("SIGKILL")
      expect((yield* ended(holder)).signal).toBe("SIGKILL")
      yield* waitUntil("the other to take the lease", holds(other), "10 seconds", outputs(holder, other))
      expect((yield* now) - killedAt).toBeLessThanOrEqual(2 * 2_000)
      expect(yield* epoch).toBeGreaterThan(before)
      // The lease is in Redis before the new leader's log line reaches its stderr pipe: wait for the line too.
      yield* waitUntil("the other to log its term", Effect.sync(() => other.stderr().includes("leadership acquired")),
        "5 seconds", outputs(holder, other))
    }).pipe(Effect.scoped, Effect.provide(redis)), 60_000)

  it.live("SIGTERM on the holder: it releases the lease and exits 0; the other takes over within a retry period", () =>
    Effect.gen(function*() {
      // A 6 s lease: renewals every 2 s, attempts every 800 ms. Left to lapse, it would last at least 4 s more.
      const [holder, other] = yield* twoWatchdogs({ SG_LEASE_TTL: "6 seconds", SG_SWEEP_INTERVAL: "1 minute" })
      const before = yield* epoch
      const sentAt = yield* now
      yield* holder.signal("SIGTERM")
      expect(yield* ended(holder)).toEqual({ code: 0, signal: null })
      expect(holder.stderr()).toContain("leadership released: interrupted; lease released")
      expect(holder.stderr()).toContain("watchdog stopped")
      // Deleted at once: by now the key is gone or already the other's.
      expect(Option.contains(yield* holderPid, holder.pid)).toBe(false)
      yield* waitUntil("the other to take the lease", holds(other), "10 seconds", outputs(holder, other))
      // One retry period (800 ms), plus the time the holder took to shut down, well under the 4 s a lapse needs.
      expect((yield* now) - sentAt).toBeLessThanOrEqual(3_000)
      expect(yield* epoch).toBe(before + 1)
    }).pipe(Effect.scoped, Effect.provide(redis)), 60_000)

  it.live("a paused leader (SIGSTOP past its TTL) steps down when resumed and writes nothing", () =>
    Effect.gen(function*() {
      const client = yield* RedisClient.RedisClient
      const [paused, other] = yield* twoWatchdogs({ SG_LEASE_TTL: "2 seconds", SG_SWEEP_INTERVAL: "1 seconds" })
      const before = yield* epoch
      yield* paused.signal("SIGSTOP")
      // An orphan (a trace in flight created two hours ago) planted while the leader is frozen.
      const id = "0190a000-0000-7000-8000-00000000beef"
      const created = `${Math.floor((yield* now) / 1000) - 7200}.000`
      yield* Effect.orDie(client.use("plant", (c) =>
        c.multi()
          .hset(`sg:trace:${id}`, { state: "INFERRING", created_at: created, updated_at: created })
          .sadd("sg:traces:active", id)
          .exec()))
      yield* waitUntil("the other to take the lease", holds(other), "10 seconds", outputs(paused, other))
      const after = yield* epoch
      expect(after).toBeGreaterThan(before)
      const hash = Effect.orDie(client.use("HGETALL", (c) => c.hgetall(`sg:trace:${id}`)))
      yield* waitUntil("the new leader to retire the orphan", Effect.map(hash, (h) => h["state"] === "ERRORED"),
        "10 seconds", outputs(paused, other))
      const retired = yield* hash
      expect(retired).toMatchObject({ state: "ERRORED", error: "orphaned" })

      yield* paused.signal("SIGCONT")
      yield* waitUntil("the resumed leader to step down",
        Effect.sync(() => paused.stderr().includes("leadership lost")), "10 seconds", outputs(paused, other))
      // Over a second more (a sweep interval of each), nothing rewrites the orphan and the lease stays the other's.
      yield* Effect.sleep("1500 millis")
      expect(yield* hash).toEqual(retired)
      expect(yield* holds(other)).toBe(true)
      expect(yield* epoch).toBe(after)
      expect(orphanedLines(other, id)).toHaveLength(1)
      expect(orphanedLines(paused, id)).toEqual([])
      expect(yield* Effect.orDie(client.use("SISMEMBER", (c) => c.sismember("sg:traces:active", id)))).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(redis)), 60_000)
})
