/**
 * `pnpm bench breaker`: what a circuit breaker adds to a call that succeeds at once, and what a rejection costs
 * while it is open. `CircuitBreaker.protect` runs 10,000 calls inside one `Effect.runSync`, against the same
 * effect unguarded; cockatiel's and opossum's breakers wrap the same work as a promise, awaited 10,000 times in a
 * loop, against a bare await. Overhead is per call, over the matching baseline. `BENCH_MS` sets the time spent on
 * each figure (default 1000 ms).
 */
// The repo root depends on none of effect, cockatiel or opossum: they come through the package that does.
import { CircuitBreaker } from "@sg/resilience"
import * as cockatiel from "cockatiel"
import { Effect, Exit, Logger, LogLevel, Scope } from "effect"
import Opossum from "opossum"
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

/** Prints the figures; registered in bench/index.ts as `breaker`. */
export const run = async (): Promise<void> => {
  const effect = await effectFigures()
  const promise = await promiseFigures()
  report("circuit breaker, closed: Effect (10,000 calls per runSync)", withOverhead(effect.closed, effect.closed[0]!),
    effect.closed[0]!.name)
  report("circuit breaker, closed: promises (10,000 awaited calls)", withOverhead(promise.closed, promise.closed[0]!),
    promise.closed[0]!.name)
  report("circuit breaker, open: Effect", withOverhead(effect.open, effect.open[0]!), effect.open[0]!.name)
  report("circuit breaker, open: promises", withOverhead(promise.open, promise.open[0]!), promise.open[0]!.name)
}
