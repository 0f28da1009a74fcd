import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { BreakerStore, CircuitBreaker } from "@sg/resilience"
import * as Redis from "@sg/resilience/CircuitBreaker/Redis"
import { Clock, type Duration, Effect, Ref } from "effect"

/** One replica: its own Redis connection, store and breakers. */
export interface Replica {
  readonly client: RedisClient.Service
  readonly store: BreakerStore.Service
  readonly breakers: CircuitBreaker.Service
}

/** A replica on the test Redis, for the scope's lifetime, with these breaker options. */
export const replica = (options?: CircuitBreaker.SharedOptions) =>
  Effect.gen(function*() {
    const server = yield* RedisTestServer.RedisTestServer
    const client = yield* RedisClient.make({
      url: server.url,
      prefix: server.prefix,
      connectTimeout: "500 millis",
      commandTimeout: "1 second"
    })
    const store = yield* Redis.makeStore({ idleTimeout: "1 minute" }).pipe(
      Effect.provideService(RedisClient.RedisClient, client)
    )
    const breakers = yield* CircuitBreaker.makeShared(options).pipe(
      Effect.provideService(BreakerStore.BreakerStore, store),
      Effect.orDie
    )
    return { client, store, breakers } satisfies Replica
  })

/** Waits until `n` connections listen on the breakers' channel and `replicas` can send commands. */
export const listening = (replicas: ReadonlyArray<Replica>, n: number = replicas.length) =>
  until(
    Effect.gen(function*() {
      const client = replicas[0]!.client
      const ready = replicas.every((r) => r.client.client.status === "ready")
      if (!ready) return false
      const counts = yield* Effect.orDie(
        client.use("PUBSUB", (c) => c.pubsub("NUMSUB", Redis.channelOf(client)) as Promise<Array<string | number>>)
      )
      return Number(counts[1]) >= n
    }),
    "the replicas to subscribe",
    "10 seconds"
  )

/** Polls `condition` every 5 ms; dies naming `what` after `limit`. Returns how long it took, in ms. */
export const until = (
  condition: Effect.Effect<boolean>,
  what: string,
  limit: Duration.DurationInput = "5 seconds"
) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    while (!(yield* condition)) yield* Effect.sleep("5 millis")
    return (yield* Clock.currentTimeMillis) - start
  }).pipe(
    Effect.timeoutFail({ duration: limit, onTimeout: () => new Error(`timed out waiting for ${what}`) }),
    Effect.orDie
  )

/** An upstream that counts its calls and answers as told. */
export const upstream = Effect.gen(function*() {
  const hits = yield* Ref.make(0)
  return {
    hits,
    call: <A, E>(answer: Effect.Effect<A, E>) => Effect.zipRight(Ref.update(hits, (n) => n + 1), answer)
  }
})
