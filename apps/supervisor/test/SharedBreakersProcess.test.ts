import { describe, expect, layer } from "@effect/vitest"
import { RedisTestServer } from "@sg/redis/testing"
import { Deferred, Effect, Option } from "effect"
import { deadProvider } from "./utils/deadProvider.js"
import * as Http from "./utils/http.js"
import { ended, outputs, waitFor, waitUntil } from "./utils/processes.js"
import { type Served, startServe } from "./utils/serve.js"

/** The breaker of the `openai` provider as one replica's `/api/status` shows it. */
const modelBreaker = (port: number) =>
  Effect.map(Http.get(port, "/api/status"), (answer) =>
    Option.fromNullable(
      (answer.json?.circuits as Array<{ name: string; state: string; shared: boolean }> | undefined)?.find((c) =>
        c.name === "model:openai"
      )
    ))

/** A run on `replica`; a failed request dies with the replica's name, whether it still runs, and its last logs. */
const run = (replica: Served, input: string) =>
  Http.postRun(replica.port, { input }).pipe(
    Effect.timeout("20 seconds"),
    Effect.catchAll((error) =>
      Effect.flatMap(Deferred.isDone(replica.child.ended), (ended) =>
        Effect.dieMessage(
          `${replica.child.name} (${ended ? "exited" : "running"}): ${error}\n${replica.child.stderr().slice(-3000)}`
        ))
    ),
    Effect.map((answer) => ({
      status: answer.status,
      error: answer.json?.error,
      retryAfter: answer.headers["retry-after"]
    }))
  )

const everyReplica = (
  replicas: ReadonlyArray<Served>,
  what: string,
  check: (port: number) => Effect.Effect<boolean, unknown>
) =>
  waitUntil(
    what,
    Effect.map(
      Effect.forEach(replicas, (r) => Effect.orElseSucceed(check(r.port), () => false)),
      (all) => all.every(Boolean)
    ),
    "10 seconds",
    outputs(...replicas.map((r) => r.child))
  )

const inState = (state: string, shared: boolean) => (port: number) =>
  Effect.map(modelBreaker(port), (b) => Option.isSome(b) && b.value.state === state && b.value.shared === shared)

describe("sg serve: three replicas share their breakers through one Redis", () => {
  layer(RedisTestServer.layerSpawned, { excludeTestServices: true, timeout: "240 seconds" })("processes", (it) => {
    it.scoped(
      "a dead provider: 3 failures open it for all; one trial cluster-wide; a killed trial holder does not wedge it; " +
        "Redis restarted",
      () =>
        Effect.gen(function*() {
          const redis = yield* RedisTestServer.RedisTestServer
          const provider = yield* deadProvider
          const env = {
            REDIS_URL: redis.url,
            SG_MODEL: "openai",
            OPENAI_API_KEY: "sk-test",
            OPENAI_BASE_URL: provider.baseUrl,
            SG_BREAKER_COOLDOWN: "2 seconds",
            SG_REDIS_COMMAND_TIMEOUT: "500 millis",
            SG_RECORD: "off"
          }
          const replicas = yield* Effect.all(
            ["replica-a", "replica-b", "replica-c"].map((name) => startServe(name, env)),
            { concurrency: "unbounded" }
          )
          const [a, b, c] = replicas as [Served, Served, Served]
          expect(a.child.stderr()).toContain("breakers: shared through Redis")

          // One failed run on each replica: three failures in all open the breaker for every replica.
          for (const r of replicas) {
            expect(yield* run(r, "hello")).toMatchObject({ status: 502, error: "upstream_error" })
          }
          expect(provider.hits()).toBe(3)
          yield* everyReplica(replicas, "every replica to see model:openai open (shared)", inState("open", true))
          for (const r of replicas) {
            expect(yield* run(r, "hello")).toMatchObject({ status: 503, error: "circuit_open" })
          }
          expect(provider.hits()).toBe(3)

          // After the cool-down, 5 runs at once on each replica: exactly one reaches the provider.
          yield* Effect.sleep("2200 millis")
          provider.setMode({ _tag: "slow", ms: 500 })
          const burst = yield* Effect.forEach(
            replicas.flatMap((r) => Array.from({ length: 5 }, () => r)),
            (r) => run(r, "hello"),
            { concurrency: "unbounded" }
          )
          expect(burst.filter((answer) => answer.status === 502)).toHaveLength(1)
          expect(burst.filter((answer) => answer.status === 503)).toHaveLength(14)
          expect(provider.hits()).toBe(4)
          // The failed trial doubled the cool-down, for every replica.
          yield* everyReplica(replicas, "every replica to see it open again", inState("open", true))
          const waits = yield* Effect.forEach(replicas, (r) =>
            Effect.map(run(r, "hello"), (answer) => Number(answer.retryAfter)))
          for (const seconds of waits) expect(seconds).toBeGreaterThanOrEqual(3)

          // The next trial's holder hangs and is killed: its token expires and another replica gets the trial.
          yield* Effect.sleep("4200 millis")
          provider.setMode({ _tag: "hang" })
          const hung = yield* Effect.fork(run(a, "hello"))
          yield* waitUntil("the trial to reach the provider", Effect.sync(() => provider.hits() === 5), "10 seconds")
          yield* a.child.signal("SIGKILL")
          yield* ended(a.child)
          yield* Effect.ignore(hung.await)
          provider.setMode({ _tag: "fail" })
          expect(yield* run(b, "hello")).toMatchObject({ status: 503, error: "circuit_open" })
          const start = performance.now()
          yield* waitUntil(
            "a surviving replica to get the trial",
            Effect.map(run(b, "hello"), (answer) => answer.status === 502),
            "20 seconds",
            outputs(b.child)
          )
          // The dead holder's token (5 s) ran out before the survivor's trial; still one trial at a time.
          expect(performance.now() - start).toBeGreaterThan(1_000)
          expect(provider.hits()).toBe(6)

          // Redis killed: the survivors carry on with local breakers and say so; restarted: shared again.
          yield* redis.stop
          yield* everyReplica([b, c], "the survivors to say shared: false", (port) =>
            Effect.map(modelBreaker(port), (br) => Option.isSome(br) && !br.value.shared))
          // The local breaker continues from the shared state: open (the last trial failed), so no call is made.
          expect(yield* run(b, "hello")).toMatchObject({ status: 503, error: "circuit_open" })
          expect(yield* modelBreaker(b.port)).toEqual(
            Option.some(expect.objectContaining({ state: "open", shared: false }))
          )
          expect(provider.hits()).toBe(6)
          yield* redis.start
          yield* everyReplica([b, c], "the survivors to share again (Redis came back empty)", inState("closed", true))
          for (const r of [b, c, b]) expect(yield* run(r, "hello")).toMatchObject({ status: 502 })
          yield* everyReplica([b, c], "both to see it open, shared again", inState("open", true))
          expect(provider.hits()).toBe(9)
          const logged = b.child.stderr()
          expect(logged.match(/circuit breaker store unreachable/g)?.length).toBe(1)
          expect(logged).toContain("breakers are shared again")
        }),
      240_000
    )

    it.scoped("SG_BREAKER_SHARED=off keeps each replica's breakers to itself", () =>
      Effect.gen(function*() {
        const redis = yield* RedisTestServer.RedisTestServer
        const provider = yield* deadProvider
        const env = {
          REDIS_URL: redis.url,
          SG_MODEL: "openai",
          OPENAI_API_KEY: "sk-test",
          OPENAI_BASE_URL: provider.baseUrl,
          SG_BREAKER_SHARED: "off",
          SG_RECORD: "off"
        }
        const [a, b] = yield* Effect.all([startServe("local-a", env), startServe("local-b", env)], {
          concurrency: "unbounded"
        })
        expect(a!.child.stderr()).toContain("breakers: this process only")
        for (let i = 0; i < 3; i++) yield* run(a, "hello")
        const status = yield* waitFor("a's breaker", modelBreaker(a!.port), "5 seconds")
        expect(status).toMatchObject({ state: "open", shared: false })
        expect(yield* run(b, "hello")).toMatchObject({ status: 502 })
        expect(provider.hits()).toBe(4)
      }), 120_000)
  })
})
