import { describe, expect, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestCluster } from "@sg/redis/testing"
import { Effect, Fiber, Option, Ref } from "effect"
import * as Http from "./utils/http.js"
import { ended, now, outputs, pidOfToken, waitFor, waitUntil } from "./utils/processes.js"
import { type Served, startServe } from "./utils/serve.js"

// One cluster for the file: the takeover test runs first, the failover test (which kills a master) last.
const cluster = RedisTestCluster.layerWithClient()

/** The environment of an `sg serve` in cluster mode under `prefix`. */
const clusterEnv = (url: string, prefix: string, extra: Readonly<Record<string, string>> = {}) => ({
  REDIS_URL: url,
  SG_REDIS_CLUSTER: "1",
  SG_KEY_PREFIX: prefix,
  SG_LEASE_TTL: "2 seconds",
  SG_SWEEP_INTERVAL: "1 seconds",
  ...extra
})

const command = <A>(name: string, f: (c: RedisClient.Connection) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.orDie(client.use(name, f)))

/** The pid holding the watchdog lease of `prefix`, if any (the lease's keys are tagged by its name). */
const holderPid = (prefix: string) =>
  Effect.map(
    command("GET", (c) => c.get(`${prefix}:lease:{trace-watchdog}`)),
    (token) => Option.map(Option.fromNullable(token), pidOfToken)
  )

const epochOf = (prefix: string) => Effect.map(command("GET", (c) => c.get(`${prefix}:lease:{trace-watchdog}:epoch`)), Number)

/** FNV-1a over the id, as the store shards it (`internal/layout.ts`). */
const shardOf = (id: string) => {
  let hash = 0x811c9dc5
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193) >>> 0
  return hash % 16
}

/** The port of the master serving `key`'s slot now. */
const masterOf = (key: string) =>
  Effect.gen(function*() {
    const slot = yield* command("KEYSLOT", (c) => c.call("CLUSTER", "KEYSLOT", key) as Promise<number>)
    const slots = yield* command("SLOTS", (c) =>
      c.call("CLUSTER", "SLOTS") as Promise<ReadonlyArray<[number, number, [string, number]]>>)
    return slots.find(([from, to]) => slot >= from && slot <= to)![2][1]
  })

describe("sg serve on a Redis Cluster, as processes", () => {
  layer(cluster, { excludeTestServices: true, timeout: 60_000 })("three masters, three replicas", (it) => {
    it.effect("two replicas: the mode in the start-up line and /api/status; kill -9 the leader, the other takes over", () =>
      Effect.gen(function*() {
        const testCluster = yield* RedisTestCluster.RedisTestCluster
        const env = clusterEnv(testCluster.url, "takeover")
        const a = yield* startServe("a", env)
        const b = yield* startServe("b", env)
        for (const served of [a, b]) {
          expect(served.child.stderr()).toContain("store: redis-cluster at redis://127.0.0.1:")
          expect(served.child.stderr()).toContain("using the Redis Cluster store at")
        }
        const status = yield* Http.get(a.port, "/api/status")
        expect(status.status).toBe(200)
        expect(status.json.store).toBe("redis-cluster")
        expect(status.json.redis).toMatchObject({ reachable: true, prefix: "takeover" })
        expect([...status.json.redis.masters].sort()).toEqual(
          (yield* testCluster.masters).map((port) => `127.0.0.1:${port}`).sort()
        )

        const pid = yield* waitFor("a leader", holderPid("takeover"), "15 seconds", outputs(a.child, b.child))
        const [leader, other]: ReadonlyArray<Served> = pid === a.child.pid ? [a, b] : [b, a]
        const run = yield* Http.postRun(other!.port, { input: "what is 6*7?" })
        expect(run.status).toBe(200)
        const before = yield* epochOf("takeover")
        const killedAt = yield* now
        yield* leader!.child.signal("SIGKILL")
        expect((yield* ended(leader!.child)).signal).toBe("SIGKILL")
        yield* waitUntil(
          "the other to take the lease",
          Effect.map(holderPid("takeover"), (holder) => Option.contains(holder, other!.child.pid)),
          "10 seconds",
          outputs(leader!.child, other!.child)
        )
        expect((yield* now) - killedAt).toBeLessThanOrEqual(2 * 2_000)
        expect(yield* epochOf("takeover")).toBeGreaterThan(before)
        yield* waitUntil("the other to sweep as leader", Effect.map(Http.get(other!.port, "/api/status"), (s) =>
          s.json.watchdog?.leader === true && s.json.watchdog.last_sweep !== null), "10 seconds", outputs(other!.child))
      }).pipe(Effect.scoped), { timeout: 90_000 })

    it.effect(
      "kill a master under load: no 5xx, its replica promoted, scripts run on it, the next sweep is correct",
      () =>
        Effect.gen(function*() {
          const testCluster = yield* RedisTestCluster.RedisTestCluster
          const prefix = "failover"
          const served = yield* startServe("f", clusterEnv(testCluster.url, prefix))
          yield* waitFor("the watchdog lease", holderPid(prefix), "15 seconds", outputs(served.child))

          const statuses = yield* Ref.make<ReadonlyArray<number>>([])
          const failures = yield* Ref.make<ReadonlyArray<string>>([])
          const worker = (n: number) =>
            Http.postRun(served.port, { input: `what is ${n}+1?` }).pipe(
              Effect.flatMap((answer) => Ref.update(statuses, (list) => [...list, answer.status])),
              Effect.catchAll((error) => Ref.update(failures, (list) => [...list, error.message])),
              Effect.forever
            )
          const load = yield* Effect.fork(Effect.all([worker(1), worker(2), worker(3), worker(4)], {
            concurrency: "unbounded"
          }))
          yield* waitUntil("load running", Effect.map(Ref.get(statuses), (list) => list.length >= 20), "20 seconds",
            outputs(served.child))

          const killed = yield* testCluster.killMaster()
          const killedAt = yield* now
          const promoted = yield* testCluster.awaitFailover(killed)
          const failoverMs = (yield* now) - killedAt
          const atFailover = (yield* Ref.get(statuses)).length
          // Load goes on past the election: the client has a new slot map and requests still succeed.
          yield* waitUntil("requests after the failover",
            Effect.map(Ref.get(statuses), (list) => list.length >= atFailover + 40), "30 seconds",
            outputs(served.child))
          yield* Fiber.interrupt(load)

          const all = yield* Ref.get(statuses)
          expect(yield* Ref.get(failures)).toEqual([])
          expect(all.filter((status) => status >= 500)).toEqual([])
          expect(all.every((status) => status === 200)).toBe(true)
          expect(yield* testCluster.masters).toContain(promoted)
          expect(yield* testCluster.masters).not.toContain(killed)

          // Scripts run on the promoted master: a run whose trace hashes to one of its slots is recorded, COMPLETED.
          let onPromoted: string | undefined
          for (let i = 0; i < 200 && onPromoted === undefined; i++) {
            const answer = yield* Http.postRun(served.port, { input: "what is 2+2?" })
            expect(answer.status).toBe(200)
            const id = String(answer.headers["x-trace-id"])
            if ((yield* masterOf(`${prefix}:{${shardOf(id)}}:trace:${id}`)) === promoted) onPromoted = id
          }
          expect(onPromoted).toBeDefined()
          const traceKey = `${prefix}:{${shardOf(onPromoted!)}}:trace:${onPromoted}`
          yield* waitUntil("the lifecycle on the promoted master", Effect.map(
            command("HGET", (c) => c.hget(traceKey, "state")),
            (state) => state === "COMPLETED"
          ), "5 seconds", outputs(served.child))

          // The next sweep: an orphan and a ghost planted in every shard are retired and removed.
          const created = `${Math.floor((yield* now) / 1000) - 7200}.000`
          const orphans: Array<string> = []
          const ghosts: Array<string> = []
          for (let n = 0; orphans.length < 16 || ghosts.length < 16; n++) {
            const id = `0190a000-0000-7000-8000-${n.toString(16).padStart(12, "0")}`
            const shard = shardOf(id)
            const tag = `${prefix}:{${shard}}`
            if (!orphans.some((o) => shardOf(o) === shard)) {
              orphans.push(id)
              yield* command("plant", (c) =>
                c.multi().hset(`${tag}:trace:${id}`, { state: "INFERRING", created_at: created, updated_at: created })
                  .sadd(`${tag}:traces:active`, id).exec())
            } else if (!ghosts.some((g) => shardOf(g) === shard)) {
              ghosts.push(id)
              yield* command("SADD", (c) => c.sadd(`${tag}:traces:active`, id))
            }
          }
          const settled = Effect.gen(function*() {
            for (const id of orphans) {
              const tag = `${prefix}:{${shardOf(id)}}`
              const hash = yield* command("HGETALL", (c) => c.hgetall(`${tag}:trace:${id}`))
              if (hash["state"] !== "ERRORED" || hash["error"] !== "orphaned") return false
              if ((yield* command("SISMEMBER", (c) => c.sismember(`${tag}:traces:active`, id))) !== 0) return false
            }
            for (const id of ghosts) {
              const tag = `${prefix}:{${shardOf(id)}}`
              if ((yield* command("SISMEMBER", (c) => c.sismember(`${tag}:traces:active`, id))) !== 0) return false
            }
            return true
          })
          yield* waitUntil("the watchdog's next sweep to retire them", settled, "15 seconds", outputs(served.child))

          const metrics = yield* Http.get(served.port, "/metrics")
          // Summed over label sets; a counter never incremented may be absent (0).
          const counter = (name: string) =>
            metrics.text.split("\n").filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
              .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0)
          yield* Effect.logInfo(
            `failover: ${failoverMs} ms to a promoted replica; ${all.length} requests, all 200; lifecycle writes ` +
              `deferred ${counter("sg_lifecycle_writes_deferred_total")}, replayed ${
                counter("sg_lifecycle_writes_replayed_total")
              }, lost ${counter("sg_lifecycle_writes_lost_total")}`
          )
        }).pipe(Effect.scoped),
      { timeout: 120_000 }
    )
  })
})
