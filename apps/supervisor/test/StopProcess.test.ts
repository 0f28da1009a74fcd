/**
 * Stopping `pnpm start` as a supervisor, systemd or `docker stop` does: `pnpm start` runs in a process group (and
 * session) of its own with no terminal, 32 requests are in flight while more keep the server busy, and SIGTERM or
 * SIGINT goes to the `pnpm start` process, to its process group, or to the `sg` process itself. Whichever it is,
 * the requests in flight complete, their lifecycle and execution records are written, the lease is released, and
 * `pnpm start` exits 0. (The busy server matters: a wrapper that relays signals, as tsx's CLI does, gives its child
 * 30 ms to acknowledge one before it kills it.)
 */
import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Deferred, Effect, Fiber, Layer, Option } from "effect"
import * as Http from "./utils/http.js"
import {
  type Child,
  ended,
  freePort,
  outputs,
  pidOfToken,
  spawnProcess,
  waitFor,
  waitUntil
} from "./utils/processes.js"

const redis = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

const command = <A>(name: string, f: (client: RedisClient.Service["client"]) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.orDie(client.use(name, f)))

const leaseKey = "sg:lease:trace-watchdog"
const inFlight = 32
const busyClients = 4

/** Whether a process is still there (a zombie counts: its parent has not reaped it). */
const alive = (pid: number) =>
  Effect.sync(() => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  })

type Target = "pnpm start" | "its process group" | "the sg process"

const stop = (signal: NodeJS.Signals, target: Target) =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.RedisTestServer
    const port = yield* freePort
    const pnpm: Child = yield* spawnProcess("pnpm start", "pnpm", ["start"], {
      REDIS_URL: server.url,
      PORT: String(port),
      SG_SAMPLE_SUCCESS: "1",
      SG_SHUTDOWN_GRACE: "20 seconds"
    }, { detached: true })
    const context = outputs(pnpm)
    yield* waitUntil("pnpm start to listen", Effect.sync(() => pnpm.stderr().includes("listening on")), "60 seconds",
      context)
    const sg = yield* waitFor("the sg process to hold the lease", Effect.map(
      command("GET", (c) => c.get(leaseKey)),
      (token) => Option.map(Option.fromNullable(token), pidOfToken)
    ), "20 seconds", context)
    expect(sg).not.toBe(pnpm.pid)

    // In flight: each request's lifecycle record is created, its body half sent.
    const requests = yield* Effect.forEach(
      Array.from({ length: inFlight }, (_, i) => i),
      (i) => Http.halfSentRun(port, { input: `what is ${i}*6?` })
    )
    const active = command("SMEMBERS", (c) => c.smembers("sg:traces:active"))
    yield* waitUntil(`${inFlight} requests in flight`, Effect.map(active, (ids) => ids.length === inFlight),
      "20 seconds", context)
    // Busy: runs one after another on a few connections until the signal (their answers are not what is checked:
    // one that connects as the server stops listening may be refused or reset by the kernel).
    const signalled = yield* Deferred.make<void>()
    const busy = yield* Effect.fork(Effect.all(
      Array.from({ length: busyClients }, () =>
        Http.postRun(port, { input: "what is 2+3*4?" }).pipe(
          Effect.timeout("30 seconds"),
          Effect.ignore,
          Effect.repeat({ while: () => Deferred.isDone(signalled).pipe(Effect.map((done) => !done)) })
        )),
      { concurrency: "unbounded" }
    ))
    yield* Effect.sleep("300 millis")

    yield* Deferred.succeed(signalled, undefined)
    if (target === "pnpm start") yield* pnpm.signal(signal)
    else if (target === "its process group") yield* pnpm.signalGroup(signal)
    else yield* Effect.sync(() => process.kill(sg, signal))
    // Wait for the drain to begin before sending the rest of the bodies; a server killed instead never says it.
    const drained = yield* waitUntil("the server to start draining",
      Effect.sync(() => pnpm.stderr().includes("stopping:")), "20 seconds").pipe(Effect.exit)

    const finished = yield* Effect.forEach(
      requests,
      (request) => request.finish.pipe(Effect.timeout("30 seconds"), Effect.either),
      { concurrency: "unbounded" }
    )
    const exit = yield* ended(pnpm, "40 seconds")
    yield* Fiber.interrupt(busy)
    const answers = finished.flatMap((answer) => answer._tag === "Right" ? [answer.right] : [])
    const ids = answers.map((answer) => String(answer.headers["x-trace-id"]))
    const records = yield* Effect.forEach(ids, (id) => command("HGET", (c) => c.hget(`sg:exec:${id}`, "status")))
    const states = yield* Effect.forEach(ids, (id) => command("HGET", (c) => c.hget(`sg:trace:${id}`, "state")))
    const result = {
      drained: drained._tag === "Success",
      completed: answers.filter((answer) => answer.status === 200).length,
      reset: finished.length - answers.length,
      exit,
      sgGone: !(yield* alive(sg)),
      lease: yield* command("GET", (c) => c.get(leaseKey)),
      active: (yield* active).length,
      states: states.filter((state) => state === "COMPLETED").length,
      records: records.filter((record) => record !== null).length
    }
    console.log(`${signal} to ${target}: ${JSON.stringify(result)}`)
    expect(result, context()).toEqual({
      drained: true,
      completed: inFlight,
      reset: 0,
      exit: { code: 0, signal: null },
      sgGone: true,
      lease: null,
      active: 0,
      states: inFlight,
      records: inFlight
    })
    expect(answers.map((answer) => answer.json?.output)).toEqual(requests.map((_, i) => `${i}*6 = ${i * 6}.`))
  }).pipe(Effect.scoped)

describe("stopping pnpm start with requests in flight", () => {
  const cases: ReadonlyArray<readonly [NodeJS.Signals, Target]> = [
    ["SIGTERM", "pnpm start"],
    ["SIGTERM", "its process group"],
    ["SIGTERM", "the sg process"],
    ["SIGINT", "pnpm start"],
    ["SIGINT", "its process group"]
  ]
  for (const [signal, target] of cases) {
    it.live(`${signal} to ${target}: every request in flight completes 200 and is recorded, lease released, exit 0`,
      () => stop(signal, target).pipe(Effect.provide(redis)), 180_000)
  }
})
