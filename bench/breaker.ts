/**
 * `pnpm bench breaker`: what a circuit breaker adds to a call that succeeds at once, and what a rejection costs
 * while it is open. `CircuitBreaker.protect` runs 10,000 calls inside one `Effect.runSync`, against the same
 * effect unguarded; cockatiel's and opossum's breakers wrap the same work as a promise, awaited 10,000 times in a
 * loop, against a bare await. Overhead is per call, over the matching baseline. `BENCH_MS` sets the time spent on
 * each figure (default 1000 ms).
 *
 * The shared breaker (`CircuitBreaker/Redis`, against a private `redis-server` this bench starts on a free port)
 * is measured beside the local one the same way (goals: closed under 2 µs over the bare call, with no Redis round
 * trip; a rejection under 2 µs), plus two latencies over `BENCH_TRIPS` trips (default 200) between two replicas on
 * separate connections: how long a failing call that trips the breaker takes (it waits for Redis to hear it), and
 * how long until the other replica rejects (goal: p99 under 100 ms).
 */
// The repo root depends on none of effect, cockatiel or opossum: they come through the package that does.
import { RedisClient, RedisTestServer } from "@sg/redis"
import { BreakerStore, CircuitBreaker } from "@sg/resilience"
import * as SharedBreakers from "@sg/resilience/CircuitBreaker/Redis"
import * as cockatiel from "cockatiel"
import { Effect, Exit, Layer, Logger, LogLevel, ManagedRuntime, Queue, Scope } from "effect"
import Opossum from "opossum"
import { performance } from "node:perf_hooks"
import { type Figure, measure, report } from "./harness.js"

const calls = 10_000
const minMs = Number(process.env["BENCH_MS"] ?? 1000)

const nsPerCall = (figure: Figure): number => 1e9 / figure.opsPerSec

const withOverhead = (figures: ReadonlyArray<Figure>, baseline: Figure): Array<Figure> =>
  figures.map((figure) => ({
    ...figure,
    extra: { overhead: figure === baseline ? "" : `${(nsPerCall(figure) - nsPerCall(baseline)).toFixed(0)} ns/call` }
  }))

/** Runs `n` calls in one fiber, each built as a caller builds it, keeping each exit so a failure ends nothing. */
const loopOf = <A, E>(n: number, call: () => Effect.Effect<A, E>): Effect.Effect<void> =>
  Effect.suspend(() => {
    let i = 0
    return Effect.whileLoop({ while: () => i++ < n, body: () => Effect.exit(call()), step: () => undefined })
  })

const effectFigures = async (): Promise<{ closed: Array<Figure>; open: Array<Figure> }> => {
  const scope = Effect.runSync(Scope.make())
  try {
    const breaker = await Effect.runPromise(Scope.extend(CircuitBreaker.make({ cooldown: "1 hour" }), scope))
    const work = Effect.succeed(42)
    const run = (effect: Effect.Effect<void>) => () => Effect.runSync(effect)
    // Open "bench-open" the ordinary way: three failures.
    const failing = loopOf(3, () => breaker.protect("bench-open")(Effect.fail("down")))
    Effect.runSync(Logger.withMinimumLogLevel(failing, LogLevel.None))
    if (Exit.isSuccess(Effect.runSync(Effect.exit(breaker.protect("bench-open")(work))))) {
      throw new Error("the open breaker let a call through")
    }
    const baseline = await measure("Effect.succeed, bare", calls, run(loopOf(calls, () => work)), { minMs })
    const closed = await measure(
      "protect(name)(effect), closed",
      calls,
      run(loopOf(calls, () => breaker.protect("bench-closed")(work))),
      { minMs }
    )
    const open = await measure(
      "protect(name)(effect), open: CircuitOpenError",
      calls,
      run(loopOf(calls, () => breaker.protect("bench-open")(work))),
      { minMs }
    )
    return { closed: [baseline, closed], open: [baseline, open] }
  } finally {
    Effect.runSync(Scope.close(scope, Exit.void))
  }
}

const promiseFigures = async (): Promise<{ closed: Array<Figure>; open: Array<Figure> }> => {
  const work = async (): Promise<number> => 42
  const awaitLoop = (call: () => Promise<unknown>, n = calls) => async () => {
    for (let i = 0; i < n; i++) {
      try {
        await call()
      } catch {
        // a rejection is the measured outcome
      }
    }
  }
  const makeCockatiel = () =>
    cockatiel.circuitBreaker(cockatiel.handleAll, {
      halfOpenAfter: 30_000,
      breaker: new cockatiel.ConsecutiveBreaker(3)
    })
  const cockatielClosed = makeCockatiel()
  const cockatielOpen = makeCockatiel()
  await awaitLoop(() => cockatielOpen.execute(() => Promise.reject(new Error("down"))), 3)()
  // timeout: false, as protect has none by default; opossum would otherwise arm a timer per call.
  const opossumClosed = new Opossum(work, { timeout: false })
  const opossumOpen = new Opossum(work, { timeout: false })
  opossumOpen.open()
  if (cockatielOpen.state !== cockatiel.CircuitState.Open) throw new Error("cockatiel's breaker did not open")
  try {
    const baseline = await measure("await, bare", calls, awaitLoop(work), { minMs })
    const cockatielFigure = await measure("cockatiel, closed", calls, awaitLoop(() => cockatielClosed.execute(work)), {
      minMs
    })
    const opossumFigure = await measure("opossum, closed", calls, awaitLoop(() => opossumClosed.fire()), { minMs })
    const cockatielRejects = await measure(
      "cockatiel, open: BrokenCircuitError",
      calls,
      awaitLoop(() => cockatielOpen.execute(work)),
      { minMs }
    )
    const opossumRejects = await measure("opossum, open: rejection", calls, awaitLoop(() => opossumOpen.fire()), {
      minMs
    })
    return { closed: [baseline, cockatielFigure, opossumFigure], open: [baseline, cockatielRejects, opossumRejects] }
  } finally {
    opossumClosed.shutdown()
    opossumOpen.shutdown()
  }
}

const trips = Number(process.env["BENCH_TRIPS"] ?? 200)

const quiet = <A, E>(effect: Effect.Effect<A, E>) => Logger.withMinimumLogLevel(effect, LogLevel.None)

/** One replica: its own connection, store and breakers, in `scope`. */
const replicaIn = (scope: Scope.Scope, url: string) =>
  Effect.gen(function*() {
    const client = yield* RedisClient.make({ url, prefix: "sg", commandTimeout: "5 seconds" })
    const store = yield* SharedBreakers.makeStore().pipe(Effect.provideService(RedisClient.RedisClient, client))
    const breakers = yield* CircuitBreaker.makeShared({ cooldown: "1 hour", reportWait: "1 second" }).pipe(
      Effect.provideService(BreakerStore.BreakerStore, store),
      Effect.orDie
    )
    yield* client.ping.pipe(Effect.retry({ times: 50 }), Effect.orDie)
    return breakers
  }).pipe(Scope.extend(scope), quiet)

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const latency = (label: string, samples: Array<number>, goal: string) => {
  const sorted = [...samples].sort((a, b) => a - b)
  const ms = (x: number) => `${x.toFixed(2)} ms`
  console.log(
    `${label.padEnd(58)} p50 ${ms(percentile(sorted, 50))}  p99 ${ms(percentile(sorted, 99))}  max ${
      ms(sorted.at(-1)!)
    }  (${samples.length} trips; ${goal})`
  )
}

const sharedFigures = async () => {
  const server = ManagedRuntime.make(Layer.orDie(RedisTestServer.layerSpawned))
  const scope = Effect.runSync(Scope.make())
  try {
    const { url } = await server.runPromise(RedisTestServer.RedisTestServer)
    const [a, b] = await Effect.runPromise(Effect.all([replicaIn(scope, url), replicaIn(scope, url)]))
    const work = Effect.succeed(42)
    const runSync = (effect: Effect.Effect<void>) => () => Effect.runSync(effect)
    // The first call of a breaker reads its record; after that a closed breaker is decided in the process.
    await Effect.runPromise(a!.protect("bench-shared-closed")(work))
    await Effect.runPromise(quiet(loopOf(3, () => a!.protect("bench-shared-open")(Effect.fail("down")))))
    if (Exit.isSuccess(Effect.runSync(Effect.exit(a!.protect("bench-shared-open")(work))))) {
      throw new Error("the open shared breaker let a call through")
    }
    const baseline = await measure("Effect.succeed, bare", calls, runSync(loopOf(calls, () => work)), { minMs })
    const closed = await measure(
      "shared protect(name)(effect), closed",
      calls,
      runSync(loopOf(calls, () => a!.protect("bench-shared-closed")(work))),
      { minMs }
    )
    const open = await measure(
      "shared protect(name)(effect), open: CircuitOpenError",
      calls,
      runSync(loopOf(calls, () => a!.protect("bench-shared-open")(work))),
      { minMs }
    )

    // Trips: b knows the breaker (one call), a fails it three times; the third call trips it.
    const tripping: Array<number> = []
    const reaching: Array<number> = []
    const changes = await Effect.runPromise(Scope.extend(b!.subscribe, scope))
    for (let i = 0; i < trips; i++) {
      const name = `bench-trip-${i}`
      await Effect.runPromise(b!.protect(name)(work))
      await Effect.runPromise(quiet(loopOf(2, () => a!.protect(name)(Effect.fail("down")))))
      await Effect.runPromise(Queue.takeAll(changes))
      const started = performance.now()
      await Effect.runPromise(quiet(Effect.exit(a!.protect(name)(Effect.fail("down")))))
      tripping.push(performance.now() - started)
      await Effect.runPromise(
        Queue.take(changes).pipe(Effect.repeat({ until: (change) => change.name === name && change.to === "open" }))
      )
      reaching.push(performance.now() - started)
    }
    return { closed: [baseline, closed], open: [baseline, open], tripping, reaching }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await server.dispose()
  }
}

/** Prints the figures; registered in bench/index.ts as `breaker`. */
export const run = async (): Promise<void> => {
  const effect = await effectFigures()
  const promise = await promiseFigures()
  const shared = await sharedFigures()
  report("circuit breaker, closed: Effect (10,000 calls per runSync)", withOverhead(effect.closed, effect.closed[0]!),
    effect.closed[0]!.name)
  report("circuit breaker, closed: promises (10,000 awaited calls)", withOverhead(promise.closed, promise.closed[0]!),
    promise.closed[0]!.name)
  report("circuit breaker, open: Effect", withOverhead(effect.open, effect.open[0]!), effect.open[0]!.name)
  report("circuit breaker, open: promises", withOverhead(promise.open, promise.open[0]!), promise.open[0]!.name)
  report("shared circuit breaker (Redis), closed: no Redis round trip", withOverhead(shared.closed, shared.closed[0]!),
    shared.closed[0]!.name)
  report("shared circuit breaker (Redis), open", withOverhead(shared.open, shared.open[0]!), shared.open[0]!.name)
  console.log("\n## shared circuit breaker (Redis): two replicas on separate connections")
  latency("the failing call that trips it (waits for Redis)", shared.tripping, "one round trip")
  latency("until the other replica rejects", shared.reaching, "goal: p99 < 100 ms")
}
