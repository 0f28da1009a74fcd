// absolute dates: timestamp parsing and formatting, no store
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, DateTime, Duration, Effect, Either, Option, Schema } from "effect"
import * as TraceRecord from "../src/TraceRecord.js"
import * as TraceStore from "../src/TraceStore.js"
import { nextTraceId } from "./utils/ids.js"

describe("TraceRecord timestamps", () => {
  it("formats epoch milliseconds as seconds with three decimals", () => {
    expect(TraceRecord.formatEpochSeconds(1_763_870_000_123)).toBe("1763870000.123")
    expect(TraceRecord.formatEpochSeconds(1_763_870_000_000)).toBe("1763870000.000")
    expect(TraceRecord.formatEpochSeconds(1_763_870_000_007.9)).toBe("1763870000.007")
    expect(TraceRecord.formatEpochSeconds(5)).toBe("0.005")
  })

  it.each([
    ["1763870000.123", 1_763_870_000_123],
    ["1763870000.1234567", 1_763_870_000_123],
    ["1763870000.9999", 1_763_870_000_999],
    ["1763870000.5", 1_763_870_000_500],
    ["1763870000", 1_763_870_000_000],
    ["2025-11-23T03:53:20Z", 1_763_870_000_000],
    ["2025-11-23T03:53:20.123Z", 1_763_870_000_123],
    ["2025-11-23T03:53:20.123456+00:00", 1_763_870_000_123],
    ["2025-11-23T05:53:20.123+02:00", 1_763_870_000_123],
    ["2025-11-23T05:53:20+0200", 1_763_870_000_000],
    ["2025-11-23T03:53:20", 1_763_870_000_000],
    ["2025-11-23 03:53:20.250", 1_763_870_000_250],
    ["2025-11-23T03:53", 1_763_869_980_000],
    ["2025-11-23", 1_763_856_000_000]
  ])("reads %j", (input, millis) => {
    expect(TraceRecord.parseTimestamp(input)).toBe(millis)
  })

  it.each(["", "yesterday", "-1763870000", "1763870000.", "1.7e9", " 1763870000", "2025-02-30T00:00:00Z",
    "2025-13-01T00:00:00Z", "2025-11-23T25:00:00Z", "99999999999999999999", "NaN"])(
    "refuses %j",
    (input) => {
      expect(TraceRecord.parseTimestamp(input)).toBeUndefined()
    }
  )

  it("the Timestamp schema decodes every form and encodes as epoch seconds", () => {
    const decoded = Schema.decodeSync(TraceRecord.Timestamp)("2025-11-23T03:53:20.5Z")
    expect(DateTime.toEpochMillis(decoded)).toBe(1_763_870_000_500)
    expect(Schema.encodeSync(TraceRecord.Timestamp)(decoded)).toBe("1763870000.500")
    const error = Schema.decodeEither(TraceRecord.Timestamp)("soon")
    expect(Either.isLeft(error) && String(error.left)).toContain("soon")
  })
})

describe("TraceRecord", () => {
  it("terminal states", () => {
    expect(["COMPLETED", "ERRORED", "EGRESS", "completed"].map(TraceRecord.isTerminal))
      .toEqual([true, true, false, false])
  })

  it("reads a hash: the store's fields apart, every other field in fields", () => {
    const id = nextTraceId()
    const record = Either.getOrThrow(
      TraceRecord.fromHash(id, { state: "EGRESS", created_at: "1763870000", updated_at: "1763870001.5", error: "x" })
    )
    expect(record.trace_id).toBe(id)
    expect(record.fields).toEqual({ error: "x" })
    expect(Option.map(record.updated_at, DateTime.toEpochMillis)).toEqual(Option.some(1_763_870_001_500))
    expect(TraceRecord.fromHash(id, { state: "EGRESS", created_at: "1763870000", updated_at: "later" })).toEqual(
      Either.left({ field: "updated_at", message: expect.stringContaining("later") })
    )
    const fieldAtFault = (hash: Record<string, string>) =>
      Option.map(Either.getLeft(TraceRecord.fromHash(id, hash)), (problem) => problem.field)
    expect(fieldAtFault({ created_at: "1" })).toEqual(Option.some("state"))
    expect(fieldAtFault({ state: "", created_at: "1" })).toEqual(Option.some("state"))
    expect(fieldAtFault({ state: "X" })).toEqual(Option.some("created_at"))
  })

  it("its JSON form has ISO-8601 timestamps and omits a missing updated_at", () => {
    const id = nextTraceId()
    const hash = { state: "RECEIVED", created_at: "1763870000.123", p: "1" }
    const record = Either.getOrThrow(TraceRecord.fromHash(id, hash))
    expect(Schema.encodeSync(TraceRecord.TraceRecord)(record)).toEqual({
      trace_id: id,
      state: "RECEIVED",
      created_at: "2025-11-23T03:53:20.123Z",
      fields: { p: "1" }
    })
  })
})

describe("TraceStore configuration", () => {
  it.effect("defaults: 24 hours, 1 hour, 30 minutes", () =>
    Effect.gen(function*() {
      const config = yield* TraceStore.config
      expect(Duration.toMillis(Duration.decode(config.failsafeTtl))).toBe(86_400_000)
      expect(Duration.toMillis(Duration.decode(config.terminalTtl))).toBe(3_600_000)
      expect(Duration.toMillis(Duration.decode(config.orphanThreshold))).toBe(1_800_000)
      expect(config.sweepBatchSize).toBe(500)
    }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))))

  it.effect("reads the environment, and refuses a TTL under a second or not a duration, naming the variable", () =>
    Effect.gen(function*() {
      const read = (entries: ReadonlyArray<[string, string]>) =>
        Effect.either(Effect.withConfigProvider(TraceStore.config, ConfigProvider.fromMap(new Map(entries))))
      const ok = Either.getOrThrow(yield* read([["SG_ORPHAN_THRESHOLD", "10 minutes"], ["SG_TERMINAL_TTL", "2 hours"]]))
      expect(Duration.toMillis(Duration.decode(ok.orphanThreshold))).toBe(600_000)
      expect(Duration.toMillis(Duration.decode(ok.terminalTtl))).toBe(7_200_000)
      const zero = yield* read([["SG_TERMINAL_TTL", "0 seconds"]])
      expect(Either.isLeft(zero) && String(zero.left)).toContain("SG_TERMINAL_TTL")
      const garbage = yield* read([["SG_FAILSAFE_TTL", "a day or so"]])
      expect(Either.isLeft(garbage) && String(garbage.left)).toContain("SG_FAILSAFE_TTL")
    }))
})
