/**
 * `pnpm bench lifecycle`: the CPU one request's lifecycle writes cost (`TraceLifecycle.begin`, then `finish`: what
 * the gateway's `Ingress` writes for a traced request with a whole answer), over the memory store and over Redis
 * (a private `redis-server`), one request at a time and 16 at once. CPU comes from `process.cpuUsage` over
 * `SG_BENCH_REQUESTS` (10,000) requests after a warm-up; the store's own CPU in the memory rows is part of it, Redis'
 * CPU is not. A diagnostic for the gateway's goal (issue 17): these writes are most of what `traced` adds to `plain`.
 */
import { RedisTestServer } from "@sg/redis/testing"
import { CircuitBreaker } from "@sg/resilience"
import { TraceIdGenerator, TraceLifecycle, TraceStore } from "@sg/trace"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Effect, Layer, ManagedRuntime } from "effect"

const requests = Number(process.env["SG_BENCH_REQUESTS"] ?? 10_000)

const redisStore = TraceStoreRedis.layer().pipe(
  Layer.provide(
    Layer.provideMerge(RedisTestServer.layerClient({ commandTimeout: "2 seconds" }), RedisTestServer.layerSpawned)
  ),
  Layer.orDie
)

const request = Effect.gen(function*() {
  const id = yield* (yield* TraceIdGenerator.TraceIdGenerator).next
  const lifecycle = yield* TraceLifecycle.TraceLifecycle
  const lane = yield* lifecycle.begin(id, { method: "POST", route: "/v1/runs" })
  yield* lifecycle.finish(lane, "COMPLETED")
})

const measure = async (
  runtime: ManagedRuntime.ManagedRuntime<TraceLifecycle.TraceLifecycle | TraceIdGenerator.TraceIdGenerator, never>,
  concurrency: number
) => {
  const batch = (n: number) =>
    Effect.forEach(Array.from({ length: n }), () => request, { discard: true, concurrency })
  await runtime.runPromise(batch(Math.min(2000, requests)))
  const cpu = process.cpuUsage()
  const started = performance.now()
  await runtime.runPromise(batch(requests))
  const used = process.cpuUsage(cpu)
  const wall = performance.now() - started
  return { cpu: (used.user + used.system) / requests, wall: (wall * 1000) / requests }
}

export const run = async (): Promise<void> => {
  const rows: Array<string> = []
  // `SG_BENCH_STORES=memory` (or `redis`) measures one store alone, for a profile of it.
  const stores = (process.env["SG_BENCH_STORES"] ?? "memory,redis").split(",")
  const all = [["memory", TraceStore.layerMemory], ["redis", redisStore]] as const
  for (const [name, store] of all.filter(([name]) => stores.includes(name))) {
    const runtime = ManagedRuntime.make(
      TraceLifecycle.layer().pipe(
        Layer.provideMerge(Layer.mergeAll(store, CircuitBreaker.layer().pipe(Layer.orDie), TraceIdGenerator.layer))
      )
    )
    try {
      for (const concurrency of [1, 16]) {
        const { cpu, wall } = await measure(runtime, concurrency)
        rows.push(
          `${`${name}, ${concurrency === 1 ? "one at a time" : "16 at once"}`.padEnd(26)} ` +
            `${cpu.toFixed(1).padStart(7)} µs CPU per request  ${wall.toFixed(1).padStart(7)} µs wall per request`
        )
      }
    } finally {
      await runtime.dispose()
    }
  }
  console.log(`\n## lifecycle writes of one request (create, finish), ${requests} requests per row`)
  for (const row of rows) console.log(row)
}
