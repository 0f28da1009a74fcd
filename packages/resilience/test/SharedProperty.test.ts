/**
 * Random interleavings of calls (alone or in concurrent bursts), time steps, isolations and resets across three
 * replicas. Invariants at every step: no two trials ever run at once, no call starts while the shared record says
 * open, and no replica says closed (or anything else) while the record says otherwise once the changes have landed.
 * Over the memory store under `TestClock`, the three replicas must also act exactly as one local breaker fed the same
 * calls (the model); over Redis, in real time, the invariants alone are checked.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { RedisTestServer } from "@sg/redis/testing"
import { BreakerPolicy, BreakerStore, CircuitBreaker } from "@sg/resilience"
import { Deferred, Duration, Effect, FastCheck, Fiber, Ref, TestClock } from "effect"
import * as Machine from "../src/internal/machine.js"
import { publicState } from "../src/internal/shell.js"
import { Unavailable } from "./utils/breaker.js"
import { listening, replica } from "./utils/replicas.js"
import { policyOf } from "./utils/storeConformance.js"

type Command =
  | { readonly _tag: "call"; readonly replica: number; readonly ok: boolean }
  | { readonly _tag: "burst"; readonly replicas: ReadonlyArray<number>; readonly ok: boolean }
  | { readonly _tag: "wait"; readonly fraction: number }
  | { readonly _tag: "isolate" | "reset"; readonly replica: number }

const replicaIndex = FastCheck.integer({ min: 0, max: 2 })

const commands = FastCheck.array(
  FastCheck.oneof(
    {
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("call" as const),
        replica: replicaIndex,
        ok: FastCheck.boolean()
      }),
      weight: 8
    },
    {
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("burst" as const),
        replicas: FastCheck.array(replicaIndex, { minLength: 2, maxLength: 6 }),
        ok: FastCheck.boolean()
      }),
      weight: 3
    },
    // A fraction of the cool-down: from a sliver to past two cool-downs (the backoff doubles it).
    {
      arbitrary: FastCheck.record({
        _tag: FastCheck.constant("wait" as const),
        fraction: FastCheck.double({ min: 0.05, max: 2.5, noNaN: true })
      }),
      weight: 4
    },
    { arbitrary: FastCheck.record({ _tag: FastCheck.constant("isolate" as const), replica: replicaIndex }), weight: 1 },
    { arbitrary: FastCheck.record({ _tag: FastCheck.constant("reset" as const), replica: replicaIndex }), weight: 1 }
  ),
  { minLength: 10, maxLength: 50 }
)

const boom = Effect.fail(new Unavailable())

interface Harness {
  readonly replicas: ReadonlyArray<CircuitBreaker.Service>
  readonly store: BreakerStore.Service
  readonly policy: BreakerPolicy.Policy
  readonly cooldownMs: number
  readonly advance: (ms: number) => Effect.Effect<void>
  readonly settle: Effect.Effect<void>
  /** The model, when it applies: one local breaker fed the same calls, on the same clock. */
  readonly model: boolean
}

/** Runs `script` against the replicas, checking the invariants (and the model) at every step. */
const check = (harness: Harness, script: ReadonlyArray<Command>, name: string) =>
  Effect.gen(function*() {
    const { policy, replicas, store } = harness
    const trials = yield* Ref.make(0)
    const violations = yield* Ref.make<Array<string>>([])
    const runs = yield* Ref.make(0)
    const violate = (what: string) => Ref.update(violations, (all) => [...all, what])
    let model: Machine.State = Machine.initial(policy)
    let modelRuns = 0

    /** The upstream: looks at the shared record as the call starts. */
    const upstream = (answer: Effect.Effect<unknown, Unavailable>) =>
      Effect.gen(function*() {
        yield* Ref.update(runs, (n) => n + 1)
        const record = yield* Effect.orDie(store.read(name, policy))
        if (record.state === "open" || record.state === "isolated") yield* violate(`a call ran while ${record.state}`)
        const trial = record.state === "half_open"
        if (trial && (yield* Ref.updateAndGet(trials, (n) => n + 1)) > 1) yield* violate("two trials at once")
        return yield* answer.pipe(Effect.ensuring(trial ? Ref.update(trials, (n) => n - 1) : Effect.void))
      })

    const now = Effect.clockWith((clock) => clock.currentTimeMillis)
    const modelAdmit = (at: number): number | undefined => {
      const admitted = Machine.admit(model, policy, at)
      if (admitted === undefined) return undefined
      model = admitted
      modelRuns++
      return admitted.generation
    }
    const modelComplete = (at: number, generation: number, ok: boolean) => {
      model = Machine.complete(model, policy, at, generation, ok ? "success" : "failure")
    }

    for (const command of script) {
      switch (command._tag) {
        case "call": {
          const at = yield* now
          const generation = modelAdmit(at)
          yield* Effect.exit(replicas[command.replica]!.protect(name)(upstream(command.ok ? Effect.void : boom)))
          if (generation !== undefined) modelComplete(yield* now, generation, command.ok)
          break
        }
        case "burst": {
          const gate = yield* Deferred.make<void>()
          const at = yield* now
          const generations = command.replicas.map(() => modelAdmit(at))
          const fibers = yield* Effect.forEach(command.replicas, (r) =>
            Effect.fork(Effect.exit(replicas[r]!.protect(name)(
              Effect.zipRight(Deferred.await(gate), upstream(command.ok ? Effect.void : boom))
            ))))
          yield* harness.settle
          yield* Deferred.succeed(gate, undefined)
          yield* Effect.forEach(fibers, Fiber.join)
          const end = yield* now
          for (const generation of generations) if (generation !== undefined) modelComplete(end, generation, command.ok)
          break
        }
        case "wait":
          yield* harness.advance(Math.round(command.fraction * harness.cooldownMs))
          break
        case "isolate":
          yield* replicas[command.replica]!.isolate(name)
          model = Machine.isolate(model, yield* now)
          break
        case "reset":
          yield* replicas[command.replica]!.reset(name)
          model = Machine.reset(model, policy)
          break
      }
      yield* harness.settle
      const record = yield* Effect.orDie(store.read(name, policy))
      const seen = yield* Effect.forEach(replicas, (r) => r.status(name))
      for (const [i, status] of seen.entries()) {
        // Past its cool-down an open breaker is reported half-open (its next call is the trial) before any call.
        const agrees = status.state === record.state ||
          (status.state === "half_open" && record.state === "open" && Duration.toMillis(status.retryAfter) === 0)
        if (!agrees) yield* violate(`replica ${i} says ${status.state} while the record says ${record.state}`)
      }
      if (harness.model) {
        expect({ step: command, state: record.state, runs: yield* Ref.get(runs) }).toEqual({
          step: command,
          state: publicState(model),
          runs: modelRuns
        })
      }
      expect(yield* Ref.get(violations)).toEqual([])
    }
  })

const policyOptions = { threshold: 3 } as const

describe("shared breakers, random interleavings across three replicas", () => {
  it.effect.prop(
    "memory store, TestClock: the invariants hold, and three replicas act as one breaker",
    [commands],
    ([script]) =>
      Effect.gen(function*() {
        const cooldownMs = 30_000
        const options = {
          ...policyOptions,
          cooldown: Duration.millis(cooldownMs),
          backoff: { factor: 2, max: Duration.minutes(2) }
        }
        const store = yield* BreakerStore.makeMemory()
        const replicas = yield* Effect.forEach([0, 1, 2], () =>
          CircuitBreaker.makeShared(options).pipe(
            Effect.provideService(BreakerStore.BreakerStore, store),
            Effect.orDie
          ))
        yield* check({
          replicas,
          store,
          policy: policyOf(options),
          cooldownMs,
          advance: (ms) => TestClock.adjust(ms),
          settle: Effect.repeatN(Effect.yieldNow(), 10),
          model: true
        }, script, "prop")
      }).pipe(Effect.scoped),
    { fastCheck: { numRuns: 60 } }
  )

  layer(RedisTestServer.layer, { excludeTestServices: true, timeout: "120 seconds" })("Redis, real time", (it) => {
    let run = 0
    it.effect.prop(
      "the invariants hold",
      [commands],
      ([script]) =>
        Effect.gen(function*() {
          const cooldownMs = 150
          const options = {
            ...policyOptions,
            cooldown: Duration.millis(cooldownMs),
            backoff: { factor: 2, max: Duration.millis(600) },
            trialTtl: Duration.seconds(2)
          }
          const replicas = yield* Effect.forEach([0, 1, 2], () => replica(options))
          yield* listening(replicas)
          yield* check({
            replicas: replicas.map((r) => r.breakers),
            store: replicas[0]!.store,
            policy: policyOf(options),
            cooldownMs,
            advance: (ms) => Effect.sleep(ms),
            settle: Effect.sleep(30),
            model: false
          }, script, `prop-${process.pid}-${++run}`)
        }).pipe(Effect.scoped),
      { fastCheck: { numRuns: 4 }, timeout: 120_000 }
    )
  })
})
