import { describe, expect, layer } from "@effect/vitest"
import { RedisTestServer } from "@sg/redis/testing"
import { type CircuitBreaker, CircuitOpenError } from "@sg/resilience"
import * as Redis from "@sg/resilience/CircuitBreaker/Redis"
import { Deferred, Duration, Effect, Exit, Fiber, HashMap, Logger, Ref } from "effect"
import { Unavailable } from "./utils/breaker.js"
import { listening, type Replica, replica, until, upstream } from "./utils/replicas.js"
import { uniqueName } from "./utils/storeConformance.js"

const boom = Effect.fail(new Unavailable())
const cooldown = Duration.millis(500)
const options: CircuitBreaker.SharedOptions = { cooldown, trialTtl: "600 millis" }

const stateIn = (r: Replica, name: string) => Effect.map(r.breakers.status(name), (s) => s.state)
const allIn = (replicas: ReadonlyArray<Replica>, name: string, state: string) =>
  Effect.map(Effect.forEach(replicas, (r) => stateIn(r, name)), (states) => states.every((s) => s === state))

const replicas = (n: number, opts: CircuitBreaker.SharedOptions = options) =>
  Effect.gen(function*() {
    const all = yield* Effect.forEach(Array.from({ length: n }), () => replica(opts))
    yield* listening(all)
    return all
  })

describe("shared breakers: replicas on one Redis", () => {
  layer(RedisTestServer.layerSpawned, { excludeTestServices: true, timeout: "60 seconds" })("real Redis", (it) => {
    it.scoped("two replicas: 3 failures in total, alternating, open it for both; no call goes through after", () =>
      Effect.gen(function*() {
        const [a, b] = yield* replicas(2)
        const name = uniqueName("two")
        const dead = yield* upstream
        for (const r of [a!, b!, a!]) yield* Effect.exit(r.breakers.protect(name)(dead.call(boom)))
        yield* until(allIn([a!, b!], name, "open"), "both to see it open", "2 seconds")
        for (const r of [a!, b!, a!, b!]) {
          const exit = yield* Effect.exit(r.breakers.protect(name)(dead.call(boom)))
          expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error instanceof CircuitOpenError)
            .toBe(true)
        }
        expect(yield* Ref.get(dead.hits)).toBe(3)
      }))

    it.scoped("a failure-rate policy counts every replica's calls, successes included, in one window", () =>
      Effect.gen(function*() {
        const rate = { failureRate: { threshold: 0.5, window: 6, minimumCalls: 4 }, flushInterval: "50 millis" } as const
        const [a, b, c] = yield* replicas(3, { ...options, ...rate })
        const name = uniqueName("rate")
        for (let i = 0; i < 3; i++) yield* a!.breakers.protect(name)(Effect.succeed(i))
        // a's successes reach Redis within a flush; b's and c's failures then make 2 in 5.
        yield* Effect.sleep("200 millis")
        for (const r of [b!, c!]) yield* Effect.exit(r.breakers.protect(name)(boom))
        yield* Effect.sleep("100 millis")
        expect(yield* Effect.forEach([a!, b!, c!], (r) => stateIn(r, name))).toEqual(["closed", "closed", "closed"])
        expect((yield* a!.breakers.status(name)).failures).toBe(2)
        // 3 in 6 reaches the rate: open for all.
        yield* Effect.exit(a!.breakers.protect(name)(boom))
        yield* until(allIn([a!, b!, c!], name, "open"), "all three to see it open")
      }))

    it.scoped("three replicas: one failure each opens it for all; after the cool-down exactly one trial runs", () =>
      Effect.gen(function*() {
        const all = yield* replicas(3)
        const name = uniqueName("three")
        const dead = yield* upstream
        for (const r of all) yield* Effect.exit(r.breakers.protect(name)(dead.call(boom)))
        yield* until(allIn(all, name, "open"), "all three to see it open", "2 seconds")
        yield* Effect.sleep(Duration.sum(cooldown, "50 millis"))
        // 20 callers on each replica at once, against an upstream that holds every call until released.
        const gate = yield* Deferred.make<void>()
        const fibers = yield* Effect.forEach(
          all.flatMap((r) => Array.from({ length: 20 }, () => r)),
          (r) => Effect.fork(Effect.exit(r.breakers.protect(name)(dead.call(Deferred.await(gate))))),
          { concurrency: "unbounded" }
        )
        yield* until(Effect.map(Ref.get(dead.hits), (n) => n === 4), "the trial to start")
        yield* Effect.sleep("100 millis")
        expect(yield* Ref.get(dead.hits)).toBe(4)
        yield* until(allIn(all, name, "half_open"), "all three to see it half-open")
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Effect.forEach(fibers, Fiber.join)
        expect(exits.filter(Exit.isSuccess)).toHaveLength(1)
        yield* until(allIn(all, name, "closed"), "all three to see it closed")
      }))

    it.scoped("a failed trial reopens it for all, for twice as long; again exactly one trial", () =>
      Effect.gen(function*() {
        const all = yield* replicas(3, { ...options, backoff: { factor: 2, max: "5 seconds" } })
        const name = uniqueName("backoff")
        const dead = yield* upstream
        for (const r of all) yield* Effect.exit(r.breakers.protect(name)(dead.call(boom)))
        yield* until(allIn(all, name, "open"), "all three to see it open")
        yield* Effect.sleep(Duration.sum(cooldown, "50 millis"))
        const burst = Effect.forEach(
          all.flatMap((r) => [r, r, r]),
          (r) => Effect.exit(r.breakers.protect(name)(dead.call(boom))),
          { concurrency: "unbounded" }
        )
        yield* burst
        expect(yield* Ref.get(dead.hits)).toBe(4)
        yield* until(allIn(all, name, "open"), "all three to see it open again")
        const left = yield* Effect.forEach(all, (r) => Effect.map(r.breakers.status(name), (s) => s.retryAfter))
        for (const d of left) {
          expect(Duration.toMillis(d)).toBeGreaterThan(600)
          expect(Duration.toMillis(d)).toBeLessThanOrEqual(1_000)
        }
        yield* Effect.sleep("1050 millis")
        yield* burst
        expect(yield* Ref.get(dead.hits)).toBe(5)
      }))

    it.scoped("a replica that dies holding the trial token does not wedge it: the token expires, another tries", () =>
      Effect.gen(function*() {
        const [doomed, survivor] = yield* replicas(2)
        const name = uniqueName("dies")
        const dead = yield* upstream
        for (let i = 0; i < 3; i++) yield* Effect.exit(doomed!.breakers.protect(name)(dead.call(boom)))
        yield* until(allIn([doomed!, survivor!], name, "open"), "both to see it open")
        yield* Effect.sleep(Duration.sum(cooldown, "50 millis"))
        const started = yield* Deferred.make<void>()
        const hold = Effect.zipRight(Deferred.succeed(started, undefined), Effect.never)
        yield* Effect.fork(doomed!.breakers.protect(name)(hold))
        yield* Deferred.await(started)
        // The holder's connection dies: no renewal, no answer ever reaches Redis.
        doomed!.client.client.disconnect(false)
        const hits = yield* Ref.get(dead.hits)
        const rejected = yield* Effect.exit(survivor!.breakers.protect(name)(dead.call(Effect.succeed(1))))
        expect(Exit.isFailure(rejected)).toBe(true)
        const waited = yield* until(
          Effect.map(Effect.exit(survivor!.breakers.protect(name)(dead.call(Effect.succeed(1)))), Exit.isSuccess),
          "the survivor to get the trial",
          "5 seconds"
        )
        expect(waited).toBeGreaterThan(200)
        expect(yield* Ref.get(dead.hits)).toBe(hits + 1)
        expect(yield* stateIn(survivor!, name)).toBe("closed")
      }))

    it.scoped("Redis killed: each replica falls back to local state (logged once); restarted: shared again", () =>
      Effect.gen(function*() {
        const server = yield* RedisTestServer.RedisTestServer
        const logs = yield* Ref.make<Array<string>>([])
        const capture = Logger.make(({ message }) => {
          const text = Array.isArray(message) ? message.join(" ") : String(message)
          Effect.runSync(Ref.update(logs, (all) => [...all, text]))
        })
        yield* Effect.gen(function*() {
          const [a, b] = yield* replicas(2)
          const name = uniqueName("outage")
          const dead = yield* upstream
          yield* Effect.exit(a!.breakers.protect(name)(dead.call(boom)))
          yield* server.stop
          yield* until(
            Effect.map(Effect.forEach([a!, b!], (r) => r.breakers.status(name)), (s) => s.every((x) => !x.shared)),
            "both to say shared: false"
          )
          // Cut off, each keeps a breaker of its own with the same policy: a's opens on its own three failures.
          for (let i = 0; i < 3; i++) yield* Effect.exit(a!.breakers.protect(name)(dead.call(boom)))
          expect(yield* a!.breakers.status(name)).toMatchObject({ state: "open", shared: false })
          expect(yield* b!.breakers.status(name)).toMatchObject({ state: "closed", shared: false })
          expect(yield* Effect.exit(b!.breakers.protect(name)(Effect.succeed(1)))).toEqual(Exit.succeed(1))
          for (let i = 0; i < 3; i++) yield* Effect.exit(b!.breakers.protect(name)(Effect.succeed(1)))
          // Once per replica, however many calls and breakers.
          const unreachable = (yield* Ref.get(logs)).filter((l) => l.includes("store unreachable"))
          expect(unreachable).toHaveLength(2)
          yield* server.start
          yield* until(
            Effect.map(Effect.forEach([a!, b!], (r) => r.breakers.status(name)), (s) => s.every((x) => x.shared)),
            "both to say shared: true again",
            "15 seconds"
          )
          // What a did while cut off was never written: Redis (empty after its restart) says closed, for both.
          expect(yield* a!.breakers.status(name)).toMatchObject({ state: "closed", shared: true })
          expect((yield* Ref.get(logs)).filter((l) => l.includes("reachable again")).length).toBeGreaterThanOrEqual(1)
          yield* listening([a!, b!])
          for (const r of [a!, b!, a!]) yield* Effect.exit(r.breakers.protect(name)(dead.call(boom)))
          yield* until(allIn([a!, b!], name, "open"), "both to see it open, shared again")
        }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      }))

    it.scoped("isolate and reset on one replica act on every replica; the trace store's breaker stays local", () =>
      Effect.gen(function*() {
        const [a, b] = yield* replicas(2, { ...options, local: ["trace-store"] })
        const name = uniqueName("isolate")
        yield* a!.breakers.isolate(name)
        yield* until(Effect.map(b!.breakers.status(name), (s) => s.state === "isolated"), "b to see it isolated")
        const exit = yield* Effect.exit(b!.breakers.protect(name)(Effect.succeed(1)))
        expect(Exit.isFailure(exit)).toBe(true)
        yield* b!.breakers.reset(name)
        yield* until(allIn([a!, b!], name, "closed"), "both to see it closed")
        for (let i = 0; i < 3; i++) yield* Effect.exit(a!.breakers.protect("trace-store")(boom))
        expect(yield* a!.breakers.status("trace-store")).toMatchObject({ state: "open", shared: false })
        expect(yield* b!.breakers.status("trace-store")).toMatchObject({ state: "closed", shared: false })
        const redis = a!.client
        expect(yield* Effect.orDie(redis.use("EXISTS", (c) => c.exists(Redis.keyOf(redis, "trace-store"))))).toBe(0)
      }))

    it.scoped("the closed path makes no Redis round trip per successful call", () =>
      Effect.gen(function*() {
        const [a] = yield* replicas(1)
        const name = uniqueName("quiet")
        yield* a!.breakers.protect(name)(Effect.succeed(1))
        const info = (c: Replica["client"]) =>
          Effect.orDie(c.use("INFO", (client) => client.info("commandstats"))).pipe(
            Effect.map((text) => {
              const calls = HashMap.fromIterable(
                Array.from(text.matchAll(/cmdstat_(\w+):calls=(\d+)/g), (m) => [m[1]!, Number(m[2])] as const)
              )
              return HashMap.reduce(calls, 0, (sum, n, command) => command === "info" ? sum : sum + n)
            })
          )
        const before = yield* info(a!.client)
        for (let i = 0; i < 1_000; i++) yield* a!.breakers.protect(name)(Effect.succeed(i))
        expect((yield* info(a!.client)) - before).toBe(0)
      }))
  })
})
