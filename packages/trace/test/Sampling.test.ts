import { describe, expect, it } from "@effect/vitest"
import { Sampling, TraceId, TraceIdGenerator } from "@sg/trace"
import { ConfigProvider, Effect, Exit, Option, TestClock } from "effect"
import { v7 as uuidv7 } from "uuid"

const parse = (s: string) => Option.getOrThrow(TraceId.parse(s))

/** 10,000 ids as a busy gateway mints them: bursts of 100 in one millisecond, differing by +1 in their low bits. */
const burstIds = Effect.gen(function*() {
  const generator = yield* TraceIdGenerator.TraceIdGenerator
  const ids: Array<TraceId.TraceId> = []
  for (let burst = 0; burst < 100; burst++) {
    for (let i = 0; i < 100; i++) ids.push(yield* generator.next)
    yield* TestClock.adjust("1 millis")
  }
  return ids
}).pipe(Effect.provide(TraceIdGenerator.layerTest))

const keptShare = (ids: ReadonlyArray<TraceId.TraceId>, rate: number) =>
  ids.filter((id) => Sampling.keep(id, "success", rate)).length / ids.length

describe("Sampling", () => {
  it("keeps every error and every timeout, whatever the rate", () => {
    const id = parse("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b")
    for (const rate of [0, 0.1, 1]) {
      expect(Sampling.keep(id, "error", rate)).toBe(true)
      expect(Sampling.keep(id, "timeout", rate)).toBe(true)
    }
  })

  it.effect("keeps 8 to 12 % of successes at rate 0.1, for ids minted in bursts within one millisecond", () =>
    Effect.gen(function*() {
      const ids = yield* burstIds
      expect(new Set(ids).size).toBe(10_000)
      // Consecutive ids of a burst share all but their low bits: a rule on the shared bits would keep or skip bursts.
      expect(ids[1]!.slice(0, 30)).toBe(ids[0]!.slice(0, 30))
      const share = keptShare(ids, 0.1)
      expect(share).toBeGreaterThanOrEqual(0.08)
      expect(share).toBeLessThanOrEqual(0.12)
      // And not by luck of one window: every block of 1,000 consecutive ids is near 10 % too.
      for (let i = 0; i < 10_000; i += 1000) {
        const block = keptShare(ids.slice(i, i + 1000), 0.1)
        expect(block).toBeGreaterThan(0.06)
        expect(block).toBeLessThan(0.14)
      }
    }))

  it("keeps 8 to 12 % of successes at rate 0.1 for random UUIDv7s and for uuid's own monotonic v7s", () => {
    const random = Array.from({ length: 10_000 }, () => parse(uuidv7()))
    expect(keptShare(random, 0.1)).toBeGreaterThanOrEqual(0.08)
    expect(keptShare(random, 0.1)).toBeLessThanOrEqual(0.12)
    const sameMs = Array.from({ length: 10_000 }, () => parse(uuidv7({ msecs: 1_763_870_000_000 })))
    expect(keptShare(sameMs, 0.1)).toBeGreaterThanOrEqual(0.08)
    expect(keptShare(sameMs, 0.1)).toBeLessThanOrEqual(0.12)
  })

  it("decides the same for the same id, every time and everywhere", () => {
    const ids = Array.from({ length: 1000 }, () => parse(uuidv7()))
    const first = ids.map((id) => Sampling.keep(id, "success", 0.1))
    const second = ids.map((id) => Sampling.keep(parse(String(id)), "success", 0.1))
    expect(second).toEqual(first)
    // The documented algorithm, pinned (the value Python computes from the module doc): SplitMix64 of the last 8 bytes.
    expect(Sampling.roll(parse("00000000-0000-7000-8000-000000000000"))).toBe(0.2817192454992108)
    expect(Sampling.roll(parse("0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"))).toBe(
      Sampling.roll(parse("ffffffff-ffff-7fff-8a6b-7c8d9e0f1a2b"))
    )
  })

  it.effect("rate 0 keeps no success and rate 1 keeps all", () =>
    Effect.gen(function*() {
      const ids = yield* burstIds
      expect(keptShare(ids, 0)).toBe(0)
      expect(keptShare(ids, 1)).toBe(1)
    }))

  it.effect("SG_SAMPLE_SUCCESS is read from the environment, 0.1 by default, 0 to 1", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<[string, string]>) =>
        Effect.exit(Effect.withConfigProvider(Sampling.config, ConfigProvider.fromMap(new Map(entries))))
      expect(yield* read([])).toEqual(Exit.succeed(0.1))
      expect(yield* read([["SG_SAMPLE_SUCCESS", "0.25"]])).toEqual(Exit.succeed(0.25))
      expect(Exit.isFailure(yield* read([["SG_SAMPLE_SUCCESS", "-0.1"]]))).toBe(true)
      expect(Exit.isFailure(yield* read([["SG_SAMPLE_SUCCESS", "lots"]]))).toBe(true)
    }))
})
