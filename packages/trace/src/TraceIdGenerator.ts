/**
 * Mints trace ids: UUIDv7 (RFC 9562), lowercase and hyphenated, time-sortable, strictly increasing.
 *
 * Monotonicity follows RFC 9562 §6.2 method 2, "monotonic random": an id in a new millisecond takes that
 * millisecond and 74 fresh random bits; an id in the same millisecond, or after the clock went back, keeps the last
 * timestamp and adds one to the 74-bit random part, and when that overflows the timestamp advances one millisecond.
 * So ids never repeat or go backwards within a generator, and a clock stepped back only holds timestamps still until
 * it catches up. Time comes from Effect's `Clock` on every call (so `TestClock` drives it); randomness from a source
 * a test can fix (`layerWith`, `layerTest`).
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import { PCGRandom } from "effect/Utils"
import { randomFillSync } from "node:crypto"
import { makeGenerator, type RandomFill } from "./internal/uuidv7.js"
import type { TraceId } from "./TraceId.js"

/** Mints trace ids. */
export interface Service {
  /** The next id: a UUIDv7 stamped with `Clock`'s current time, greater than every id this generator minted before. */
  readonly next: Effect.Effect<TraceId>
}

/** The trace id generator. */
export class TraceIdGenerator extends Context.Tag("@sg/trace/TraceIdGenerator")<TraceIdGenerator, Service>() {}

/** Where a generator gets its random bits. */
export interface Options {
  /** Fills a buffer with random bytes (called rarely, for a few kilobytes at a time), as `crypto.randomFillSync`. */
  readonly random: RandomFill
}

const fromCore = (core: (nowMs: number) => string): Service => ({
  // The fiber's Clock read in one step, rather than `clockWith` + `sync`'s two: 10 % per id (`pnpm bench trace-id`).
  // The core only ever returns canonical, non-nil UUIDv7 strings, so the brand holds without re-checking.
  next: Effect.withFiberRuntime((fiber) =>
    Effect.succeed(core(Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()) as TraceId)
  )
})

// One state for the whole process, so ids from every `layer` or `make` in a process increase together.
const processCore = globalValue(
  Symbol.for("@sg/trace/TraceIdGenerator/processCore"),
  () => makeGenerator({ random: randomFillSync })
)

/** A generator over `crypto` randomness, sharing one monotonic state with every other `make` in the process. */
export const make: Effect.Effect<Service> = Effect.sync(() => fromCore(processCore))

/** A generator of its own (its own monotonic state) drawing random bits from `options.random`. */
export const makeWith = (options: Options): Effect.Effect<Service> =>
  Effect.sync(() => fromCore(makeGenerator(options)))

/** A random source that yields the same bytes on every run: Effect's PCG generator under a fixed seed. */
export const seededRandom = (seed: number): RandomFill => {
  const prng = new PCGRandom(seed)
  return (buffer) => {
    for (let i = 0; i < buffer.length; i++) buffer[i] = prng.integer(256)
  }
}

/** The generator for real use: `crypto` randomness and the process-wide monotonic state. */
export const layer: Layer.Layer<TraceIdGenerator> = Layer.effect(TraceIdGenerator, make)

/** A generator with its own state and the given random source. */
export const layerWith = (options: Options): Layer.Layer<TraceIdGenerator> =>
  Layer.effect(TraceIdGenerator, makeWith(options))

/** For tests: a seeded random source, so under `TestClock` every build mints the same ids in the same order. */
export const layerTest: Layer.Layer<TraceIdGenerator> = Layer.effect(
  TraceIdGenerator,
  Effect.suspend(() => makeWith({ random: seededRandom(0x5eed) }))
)
