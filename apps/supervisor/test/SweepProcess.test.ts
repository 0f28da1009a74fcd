import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { TraceStore } from "@sg/trace"
import { Effect, Layer, Schema } from "effect"
import { ended, now, spawnSg } from "./utils/processes.js"

/** A private redis-server (prefix `sg`, as the children use) and a client for it. */
const redis = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

const ids = {
  orphan: "0190a000-0000-7000-8000-000000000001",
  missing: "0190a000-0000-7000-8000-000000000002",
  fresh: "0190a000-0000-7000-8000-000000000003"
}

/** Plants, as another writer would: an orphan (in flight, two hours old), an id whose hash is gone, a fresh trace. */
const plant = Effect.gen(function*() {
  const client = yield* RedisClient.RedisClient
  const seconds = Math.floor((yield* now) / 1000)
  const old = `${seconds - 7200}.250`
  const recent = `${seconds}.500`
  yield* Effect.orDie(client.use("plant", (c) =>
    c.multi()
      .hset(`sg:trace:${ids.orphan}`, { state: "INFERRING", created_at: old, updated_at: old })
      .hset(`sg:trace:${ids.fresh}`, { state: "RECEIVED", created_at: recent, updated_at: recent })
      .sadd("sg:traces:active", ids.orphan, ids.missing, ids.fresh)
      .exec()))
})

const decodeReport = Schema.decodeUnknownSync(Schema.parseJson(TraceStore.SweepReport))

describe("sg sweep, as a process against a real Redis", () => {
  it.live("--once --json: one pass, its report as one JSON line on stdout, the logs on stderr", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const client = yield* RedisClient.RedisClient
      yield* plant
      const child = yield* spawnSg("sweep", ["sweep", "--once", "--json"], { REDIS_URL: server.url })
      expect(yield* ended(child)).toEqual({ code: 0, signal: null })
      const lines = child.stdout().split("\n").filter((line) => line !== "")
      expect(lines).toHaveLength(1)
      const report = decodeReport(lines[0])
      expect(report).toEqual({
        scanned: 3,
        removed_missing: 1,
        removed_terminal: 0,
        orphaned: 1,
        skipped_unreadable: 0,
        duration_ms: report.duration_ms
      })
      expect(report.duration_ms).toBeGreaterThanOrEqual(0)
      expect(child.stderr()).toContain(`using the Redis store at ${server.url}`)
      expect(child.stderr()).toMatch(new RegExp(`trace_orphaned.*trace_id=${ids.orphan}`))

      const orphan = yield* Effect.orDie(client.use("HGETALL", (c) => c.hgetall(`sg:trace:${ids.orphan}`)))
      expect(orphan).toMatchObject({ state: "ERRORED", error: "orphaned" })
      const active = yield* Effect.orDie(client.use("SMEMBERS", (c) => c.smembers("sg:traces:active")))
      expect(active).toEqual([ids.fresh])
    }).pipe(Effect.scoped, Effect.provide(redis)), 60_000)

  it.live("--once without --json prints one readable line; a second pass finds nothing left to do", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      yield* plant
      const run = Effect.gen(function*() {
        const child = yield* spawnSg("sweep", ["sweep", "--once"], { REDIS_URL: server.url })
        expect((yield* ended(child)).code).toBe(0)
        return child.stdout()
      })
      expect(yield* run).toMatch(new RegExp(
        "^swept 3 active ids in \\d+ ms: 1 orphaned \\(now ERRORED\\), 1 with no hash and 0 already terminal removed from the active set, " +
          "0 unreadable left alone\n$"
      ))
      expect(yield* run).toMatch(/^swept 1 active ids in \d+ ms: 0 orphaned/)
    }).pipe(Effect.scoped, Effect.provide(redis)), 60_000)

  it.live("a configuration error names the variable, prints nothing on stdout and exits non-zero", () =>
    Effect.gen(function*() {
      const badUrl = yield* spawnSg("bad-url", ["sweep", "--once", "--json"], { REDIS_URL: "localhost:6379" })
      const badTtl = yield* spawnSg("bad-ttl", ["watchdog"], { REDIS_URL: "", SG_LEASE_TTL: "1 millis" })
      const noOnce = yield* spawnSg("no-once", ["sweep", "--json"], { REDIS_URL: "" })
      expect((yield* ended(badUrl)).code).toBe(1)
      expect(badUrl.stdout()).toBe("")
      expect(badUrl.stderr()).toContain("Invalid data at REDIS_URL")
      expect((yield* ended(badTtl)).code).toBe(1)
      expect(badTtl.stdout()).toBe("")
      expect(badTtl.stderr()).toContain("Invalid data at SG_LEASE_TTL")
      expect((yield* ended(noOnce)).code).toBe(2)
      expect(noOnce.stdout()).toBe("")
      expect(noOnce.stderr()).toContain("sg sweep needs --once")
    }).pipe(Effect.scoped), 60_000)
})
