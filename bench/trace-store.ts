/**
 * `pnpm bench trace-store`: `TraceStore.create` throughput against a private `redis-server` (on a free port),
 * at concurrency 1 and 64, beside a raw ioredis MULTI of the same commands (HSET state, created_at, updated_at and
 * metadata; EXPIRE; SADD) on the same connection at the same concurrency. Goal: at least 0.8x the raw MULTI.
 * Two more rows show where the gap goes: the same raw MULTI awaited from Effect (`Effect.promise`: the runtime's
 * cost), and through `RedisClient.multi` (the shared client's typed errors and offline-queue guard).
 * A batch is `concurrency` workers doing 16 creates one after another: fibers of one Effect program for the Effect
 * rows, async loops for ioredis. All rows are measured in alternating short rounds, so load from other processes on
 * the machine falls on each alike. `BENCH_MS` sets the time per row and concurrency (default 2000).
 */
import { randomUUID } from "node:crypto"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { TraceStore } from "@sg/trace"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Effect, Layer, ManagedRuntime } from "effect"
import type { TraceId } from "@sg/trace"
import { type Figure, measure, report } from "./harness.js"

const minMs = Number(process.env["BENCH_MS"] ?? 2000)
const rounds = 10
const perWorker = 16
const metadata = { platform: "telegram", channel: "bench" }

interface Side {
  readonly name: string
  readonly batch: () => Promise<unknown>
}

/** Measures the sides in `rounds` rounds, in a rotating order; each figure is the mean rate over its rounds. */
const alternating = async (sides: ReadonlyArray<Side>, opsPerBatch: number): Promise<Array<Figure>> => {
  const rates = sides.map(() => 0)
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < sides.length; i++) {
      const side = (i + round) % sides.length
      const figure = await measure("", opsPerBatch, sides[side]!.batch, { minMs: minMs / rounds, warmupMs: 20 })
      rates[side]! += figure.opsPerSec / rounds
    }
  }
  return sides.map((side, i) => ({ name: side.name, opsPerSec: rates[i]! }))
}

export const run = async (): Promise<void> => {
  const runtime = ManagedRuntime.make(
    Layer.provideMerge(
      TraceStoreRedis.layer(),
      Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "10 seconds" }), RedisTestServer.layerSpawned)
    )
  )
  try {
    const { redis, store } = await runtime.runPromise(
      Effect.all({ redis: RedisClient.RedisClient, store: TraceStore.TraceStore })
    )
    const client = redis.client
    const active = redis.key("traces", "active")
    await client.ping()

    const queue = (tx: ReturnType<typeof client.multi>) => {
      const id = randomUUID()
      const key = redis.key("trace", id)
      const now = (Date.now() / 1000).toFixed(3)
      return tx
        .hset(key, "state", "RECEIVED", "created_at", now, "updated_at", now, ...Object.entries(metadata).flat())
        .expire(key, 86_400)
        .sadd(active, id)
    }
    const rawCreate = () => queue(client.multi()).exec()

    for (const concurrency of [1, 64]) {
      const workers = <E>(one: Effect.Effect<unknown, E>) => {
        const program = Effect.forEach(Array.from({ length: concurrency }), () => Effect.repeatN(one, perWorker - 1), {
          concurrency,
          discard: true
        })
        return () => runtime.runPromise(program)
      }
      const raw: Side = {
        name: `ioredis MULTI c=${concurrency}`,
        batch: () =>
          Promise.all(Array.from({ length: concurrency }, async () => {
            for (let i = 0; i < perWorker; i++) await rawCreate()
          }))
      }
      const figures = await alternating([
        raw,
        { name: `  Effect.promise(MULTI) c=${concurrency}`, batch: workers(Effect.promise(rawCreate)) },
        {
          name: `  RedisClient.multi c=${concurrency}`,
          batch: workers(Effect.suspend(() => redis.multi("bench", queue)))
        },
        {
          name: `TraceStore.create c=${concurrency}`,
          batch: workers(Effect.suspend(() => store.create(randomUUID() as TraceId.TraceId, "RECEIVED", metadata)))
        }
      ], concurrency * perWorker)
      report(`TraceStore.create, concurrency ${concurrency} (goal: >= 0.8x the raw MULTI)`, figures, raw.name)
      const [rawOps, promiseOps, clientOps, storeOps] = figures.map((f) => f.opsPerSec) as [number, number, number, number]
      const overhead = 1 - clientOps / promiseOps
      console.log(
        `goals at concurrency ${concurrency}: TraceStore.create ${(storeOps / rawOps).toFixed(2)}x the raw MULTI ` +
          `(≥ 0.8x: ${storeOps >= 0.8 * rawOps ? "met" : "MISSED"}); RedisClient.multi ${
            Math.abs(overhead * 100).toFixed(1)
          } % ${overhead >= 0 ? "slower" : "faster"} than Effect.promise(MULTI) (≤ 5 % slower: ${
            overhead <= 0.05 ? "met" : "MISSED"
          })`
      )
    }
    console.log(`(private redis-server at ${redis.target}; ${await client.scard(active)} traces created)`)
  } finally {
    await runtime.dispose()
  }
}
