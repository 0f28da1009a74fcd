import { describe, expect, it } from "@effect/vitest"
import { TraceId, TraceIdGenerator } from "@sg/trace"
import { Clock, Effect, Option, Schema, TestClock } from "effect"
import { makeGenerator } from "../src/internal/uuidv7.js"

const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

// RFC 9562 appendix A.6: rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F, as the id's bytes 6 to 15 without version/variant.
const rfcRandom = [0x0c, 0xc3, 0x18, 0xc4, 0xdc, 0x0c, 0x0c, 0x07, 0x39, 0x8f]
const rfcMs = 0x017f22e279b0
const rfcId = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"

/** A random source that repeats `bytes` (the pool is a whole number of draws, so each draw starts at bytes[0]). */
const repeating = (bytes: ReadonlyArray<number>) => (buffer: Uint8Array) => {
  for (let i = 0; i < buffer.length; i++) buffer[i] = bytes[i % bytes.length]!
}

const take = (n: number) =>
  Effect.gen(function*() {
    const generator = yield* TraceIdGenerator.TraceIdGenerator
    const ids: Array<TraceId.TraceId> = []
    for (let i = 0; i < n; i++) ids.push(yield* generator.next)
    return ids
  })

const strictlyIncreasing = (ids: ReadonlyArray<string>) => ids.every((id, i) => i === 0 || ids[i - 1]! < id)

describe("TraceIdGenerator", () => {
  it.effect("reproduces RFC 9562 appendix A.6", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(rfcMs)
      const [first, second] = yield* take(2)
      expect(first).toBe(rfcId)
      // Same millisecond: the 74-bit random part goes up by one.
      expect(second).toBe("017f22e2-79b0-7cc3-98c4-dc0c0c073990")
      yield* TestClock.adjust(1)
      const [third] = yield* take(1)
      expect(third).toBe("017f22e2-79b1-7cc3-98c4-dc0c0c07398f")
    }).pipe(Effect.provide(TraceIdGenerator.layerWith({ random: repeating(rfcRandom) }))))

  it.effect("mints 100,000 strictly increasing v7 ids in one frozen millisecond", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_763_870_000_123)
      const ids = yield* take(100_000)
      expect(new Set(ids).size).toBe(100_000)
      expect(strictlyIncreasing(ids)).toBe(true)
      const wrong = ids.filter((id) =>
        !v7.test(id) || !TraceId.is(id) || Option.getOrThrow(TraceId.timestampOf(id)) !== 1_763_870_000_123
      )
      expect(wrong).toStrictEqual([])
    }).pipe(Effect.provide(TraceIdGenerator.layerTest)))

  it.effect("stays increasing when the clock steps back, and keeps the last timestamp until it catches up", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(10_000)
      const before = yield* take(3)
      yield* TestClock.setTime(4_000)
      const after = yield* take(3)
      yield* TestClock.setTime(10_001)
      const caughtUp = yield* take(1)
      const ids = [...before, ...after, ...caughtUp]
      expect(strictlyIncreasing(ids)).toBe(true)
      expect(ids.map((id) => Option.getOrThrow(TraceId.timestampOf(id))))
        .toStrictEqual([10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_001])
    }).pipe(Effect.provide(TraceIdGenerator.layerTest)))

  it.effect("advances the millisecond when the 74-bit random part overflows", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(5_000)
      const ids = yield* take(3)
      expect(ids).toStrictEqual([
        "00000000-1388-7fff-bfff-ffffffffffff",
        "00000000-1389-7000-8000-000000000000",
        "00000000-1389-7000-8000-000000000001"
      ])
      // The clock reaching the advanced millisecond does not go back to fresh random bits below the last id.
      yield* TestClock.setTime(5_001)
      const [next] = yield* take(1)
      expect(next).toBe("00000000-1389-7000-8000-000000000002")
    }).pipe(Effect.provide(TraceIdGenerator.layerWith({ random: repeating([0xff]) }))))

  it.effect("is deterministic under TestClock with layerTest", () =>
    Effect.gen(function*() {
      const run = Effect.gen(function*() {
        yield* TestClock.setTime(1_000)
        const a = yield* take(5)
        yield* TestClock.adjust(7)
        const b = yield* take(5)
        return [...a, ...b]
      }).pipe(Effect.provide(TraceIdGenerator.layerTest))
      const first = yield* run
      const second = yield* run
      expect(second).toStrictEqual(first)
      expect(strictlyIncreasing(first)).toBe(true)
      // Fresh milliseconds draw fresh random bits.
      expect(first[5]!.slice(14)).not.toBe(first[0]!.slice(14))
    }))

  it.effect("gives each layerWith build its own state", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(rfcMs)
      const layer = TraceIdGenerator.layerWith({ random: repeating(rfcRandom) })
      expect(yield* take(1).pipe(Effect.provide(layer))).toStrictEqual([rfcId])
      expect(yield* take(1).pipe(Effect.provide(layer))).toStrictEqual([rfcId])
    }))

  it.live("mints ids from the real layer that parse and carry the current time", () =>
    Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      const ids = yield* take(1_000)
      const end = yield* Clock.currentTimeMillis
      expect(strictlyIncreasing(ids)).toBe(true)
      for (const id of ids) {
        expect(Schema.decodeUnknownSync(TraceId.TraceId)(id)).toBe(id)
        expect(id).toMatch(v7)
        const ms = Option.getOrThrow(TraceId.timestampOf(id))
        expect(ms).toBeGreaterThanOrEqual(start)
        expect(ms).toBeLessThanOrEqual(end)
      }
    }).pipe(Effect.provide(TraceIdGenerator.layer)))

  it.live("shares one monotonic state between builds of the real layer", () =>
    Effect.gen(function*() {
      const a = yield* take(100).pipe(Effect.provide(TraceIdGenerator.layer))
      const b = yield* take(100).pipe(Effect.provide(TraceIdGenerator.layer))
      expect(strictlyIncreasing([...a, ...b])).toBe(true)
    }))
})

describe("uuidv7 core", () => {
  it("carries from the low 32 bits into the next 30", () => {
    const next = makeGenerator({ random: repeating([0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]) })
    expect([next(1), next(1)]).toStrictEqual([
      "00000000-0001-7000-8000-0000ffffffff",
      "00000000-0001-7000-8000-000100000000"
    ])
  })

  it("carries from the 62-bit rand_b into rand_a", () => {
    const next = makeGenerator({ random: repeating([0x0a, 0xbc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) })
    expect([next(1), next(1)]).toStrictEqual([
      "00000000-0001-7abc-bfff-ffffffffffff",
      "00000000-0001-7abd-8000-000000000000"
    ])
  })

  it("ignores the version and variant bits of the random bytes", () => {
    const next = makeGenerator({ random: repeating([0x7c, 0xc3, 0x98, 0xc4, 0xdc, 0x0c, 0x0c, 0x07, 0x39, 0x8f]) })
    expect(next(rfcMs)).toBe(rfcId)
  })

  it("takes fresh random bytes for each new millisecond and asks for them in large chunks", () => {
    // Each 10-byte draw carries its sequence number in its last 4 bytes (the id's last 8 hex digits).
    const requests: Array<number> = []
    let draws = 0
    const next = makeGenerator({
      random: (buffer) => {
        requests.push(buffer.length)
        buffer.fill(0)
        for (let i = 0; i < buffer.length; i += 10) new DataView(buffer.buffer).setUint32(i + 6, draws++)
      }
    })
    const ids = Array.from({ length: 600 }, (_, ms) => next(ms))
    expect(strictlyIncreasing(ids)).toBe(true)
    const hex = (n: number, digits: number) => n.toString(16).padStart(digits, "0")
    expect(ids).toStrictEqual(ids.map((_, ms) => `00000000-${hex(ms, 4)}-7000-8000-0000${hex(ms, 8)}`))
    expect(requests).toStrictEqual([2560, 2560, 2560])
  })

  it("formats the whole 48-bit timestamp", () => {
    const next = makeGenerator({ random: repeating([0]) })
    expect(next(2 ** 48 - 1)).toBe("ffffffff-ffff-7000-8000-000000000000")
    expect(next(0x0123456789ab)).toBe("ffffffff-ffff-7000-8000-000000000001")
    const other = makeGenerator({ random: repeating([0]) })
    expect(other(0x0123456789ab)).toBe("01234567-89ab-7000-8000-000000000000")
  })

  it("treats a fractional millisecond as its whole millisecond", () => {
    const next = makeGenerator({ random: repeating(rfcRandom) })
    expect([next(rfcMs + 0.2), next(rfcMs + 0.9)]).toStrictEqual([rfcId, "017f22e2-79b0-7cc3-98c4-dc0c0c073990"])
  })
})
