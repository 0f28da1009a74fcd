/**
 * Requests that arrive while `sg serve` starts: a client connects in a tight loop from before the port opens until
 * the gateway answers, over 20 starts, and every request it got through is answered (503 `not_ready` with
 * `Retry-After: 1` before the handler is attached, 200 after), none left hanging.
 */
import { expect, it } from "@effect/vitest"
import { RedisTestServer } from "@sg/redis/testing"
import { Cause, Deferred, Effect, Layer } from "effect"
import * as Http from "./utils/http.js"
import { ended, freePort, outputs, spawnSg } from "./utils/processes.js"

const redis = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

const starts = 20
const clients = 4
/** Longer than any answer takes on a loaded machine, far shorter than the 11-minute hang the old code gave. */
const answerTimeout = "5 seconds"

interface Tally {
  readonly statuses: Array<number>
  hung: number
  refused: number
  badRetryAfter: number
}

/** One client: GET /healthz, again and again, from before the port opens until a 200 (or `stop`). */
const hammer = (port: number, tally: Tally, stop: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    while (!(yield* Deferred.isDone(stop))) {
      const answer = yield* Http.get(port, "/healthz").pipe(Effect.timeout(answerTimeout), Effect.either)
      if (answer._tag === "Left") {
        if (Cause.isTimeoutException(answer.left)) tally.hung++
        else tally.refused++
        yield* Effect.yieldNow()
        continue
      }
      tally.statuses.push(answer.right.status)
      if (answer.right.status === 503) {
        const { headers, json } = answer.right
        if (headers["retry-after"] !== "1" || json?.error !== "not_ready") tally.badRetryAfter++
      }
      if (answer.right.status === 200) return yield* Deferred.succeed(stop, undefined)
    }
  })

it.live(`${starts} starts, clients connecting in a tight loop: every request answered 503 or 200, none hangs`, () =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.RedisTestServer
    const perStart: Array<{ readonly hung: number; readonly early: number; readonly answered: number }> = []
    for (let i = 0; i < starts; i++) {
      const port = yield* freePort
      const tally: Tally = { statuses: [], hung: 0, refused: 0, badRetryAfter: 0 }
      const stop = yield* Deferred.make<void>()
      const loops = yield* Effect.fork(Effect.all(Array.from({ length: clients }, () => hammer(port, tally, stop)), {
        concurrency: "unbounded"
      }))
      const child = yield* spawnSg(`serve-${i}`, ["serve"], { REDIS_URL: server.url, PORT: String(port) })
      const answered = yield* Deferred.await(stop).pipe(Effect.timeout("60 seconds"), Effect.either)
      yield* Deferred.succeed(stop, undefined)
      yield* loops.await
      yield* child.signal("SIGTERM")
      const exit = yield* ended(child, "20 seconds")
      const context = `start ${i}: ${JSON.stringify(tally)}${outputs(child)()}`
      expect(answered._tag, `no 200 within 60 s; ${context}`).toBe("Right")
      expect(exit, context).toEqual({ code: 0, signal: null })
      expect(tally.statuses.filter((s) => s !== 503 && s !== 200), context).toEqual([])
      expect(tally.badRetryAfter, context).toBe(0)
      perStart.push({
        hung: tally.hung,
        early: tally.statuses.filter((s) => s === 503).length,
        answered: tally.statuses.length
      })
    }
    const hung = perStart.reduce((n, s) => n + s.hung, 0)
    const early = perStart.reduce((n, s) => n + s.early, 0)
    console.log(
      `${starts} starts: ${hung} request(s) hung, ${early} answered 503 not_ready before the handler was attached, ` +
        `${perStart.filter((s) => s.hung > 0).length} start(s) with a hang`
    )
    expect(perStart.map((s) => s.hung)).toEqual(perStart.map(() => 0))
  }).pipe(Effect.scoped, Effect.provide(redis)), 600_000)
