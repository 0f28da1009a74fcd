import { describe, expect, it } from "@effect/vitest"
import { TraceId } from "@sg/trace"
import { Either, FastCheck, Option, Schema } from "effect"

const rfcExample = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"
const v4 = "919108f7-52d1-4320-9bac-f847db4148a8"
const decode = Schema.decodeUnknownEither(TraceId.TraceId)
const id = (s: string): TraceId.TraceId => Schema.decodeSync(TraceId.TraceId)(s)
const hexBytes = (length: number) =>
  FastCheck.uint8Array({ minLength: length, maxLength: length })
    .filter((bytes) => bytes.some((b) => b !== 0))
    .map((bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""))

const w3cExample = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
const traceHex = "0af7651916cd43dd8448eb211c80319c"
const spanHex = "b7ad6b7169203331"

describe("TraceId schema", () => {
  it.each([rfcExample, v4, "ffffffff-ffff-ffff-ffff-ffffffffffff", "00000000-0000-0000-0000-000000000001"])(
    "accepts %s",
    (s) => {
      expect(decode(s)).toStrictEqual(Either.right(s))
      expect(TraceId.is(s)).toBe(true)
    }
  )

  it.each([
    ["upper case", rfcExample.toUpperCase()],
    ["one upper-case digit", "017f22e2-79b0-7cc3-98c4-dc0c0c07398F"],
    ["too short", rfcExample.slice(0, -1)],
    ["too long", rfcExample + "0"],
    ["a group of the wrong length", "017f22e-279b0-7cc3-98c4-dc0c0c07398f"],
    ["no hyphens", rfcExample.replaceAll("-", "")],
    ["braces", `{${rfcExample}}`],
    ["surrounding space", ` ${rfcExample}`],
    ["a non-hex digit", "017f22e2-79b0-7cc3-98c4-dc0c0c07398g"],
    ["the empty string", ""]
  ])("rejects %s", (_, s) => {
    const result = decode(s)
    expect(Either.isLeft(result)).toBe(true)
    expect(TraceId.is(s)).toBe(false)
    expect(String(Either.getLeft(result).pipe(Option.getOrThrow))).toContain("canonical lowercase form")
  })

  it("rejects the nil UUID with its own message", () => {
    const result = decode("00000000-0000-0000-0000-000000000000")
    expect(String(Either.getLeft(result).pipe(Option.getOrThrow))).toContain("must not be all zeros")
  })

  it("rejects what is not a string", () => {
    expect(Either.isLeft(decode(42))).toBe(true)
    expect(Either.isLeft(decode(null))).toBe(true)
  })

  it("parse returns None for anything else", () => {
    expect(TraceId.parse(rfcExample)).toStrictEqual(Option.some(rfcExample))
    expect(TraceId.parse(rfcExample.toUpperCase())).toStrictEqual(Option.none())
  })
})

describe("TraceId helpers", () => {
  it("versionOf reads the version digit", () => {
    expect(TraceId.versionOf(id(rfcExample))).toBe(7)
    expect(TraceId.versionOf(id(v4))).toBe(4)
  })

  it("timestampOf reads a v7 id's Unix milliseconds", () => {
    expect(TraceId.timestampOf(id(rfcExample))).toStrictEqual(Option.some(0x017f22e279b0))
    expect(TraceId.timestampOf(id("ffffffff-ffff-7fff-bfff-ffffffffffff"))).toStrictEqual(Option.some(2 ** 48 - 1))
    expect(TraceId.timestampOf(id("00000000-0000-7000-8000-000000000000"))).toStrictEqual(Option.some(0))
  })

  it("timestampOf is None for other versions", () => {
    expect(TraceId.timestampOf(id(v4))).toStrictEqual(Option.none())
  })

  it("toHex drops the hyphens", () => {
    expect(TraceId.toHex(id(rfcExample))).toBe("017f22e279b07cc398c4dc0c0c07398f")
  })

  it.prop("fromHex inverts toHex", [hexBytes(16)], ([hex]) => {
    const parsed = TraceId.fromHex(hex)
    expect(Option.isSome(parsed)).toBe(true)
    expect(TraceId.is(Option.getOrThrow(parsed))).toBe(true)
    expect(TraceId.toHex(Option.getOrThrow(parsed))).toBe(hex)
  })

  it("fromHex rejects upper case, wrong lengths, non-hex and all zeros", () => {
    expect(TraceId.fromHex("017F22E279B07CC398C4DC0C0C07398F")).toStrictEqual(Option.none())
    expect(TraceId.fromHex("017f22e279b07cc398c4dc0c0c07398")).toStrictEqual(Option.none())
    expect(TraceId.fromHex("017f22e279b07cc398c4dc0c0c07398f0")).toStrictEqual(Option.none())
    expect(TraceId.fromHex("017f22e279b07cc398c4dc0c0c07398z")).toStrictEqual(Option.none())
    expect(TraceId.fromHex("0".repeat(32))).toStrictEqual(Option.none())
    expect(TraceId.fromHex(rfcExample)).toStrictEqual(Option.none())
  })
})

describe("traceparent", () => {
  it("parses a valid version-00 header", () => {
    expect(TraceId.fromTraceparent(w3cExample)).toStrictEqual(Option.some({
      traceId: "0af76519-16cd-43dd-8448-eb211c80319c",
      parentId: spanHex,
      flags: 1
    }))
    expect(TraceId.fromTraceparent(`00-${traceHex}-${spanHex}-00`).pipe(Option.map((t) => t.flags)))
      .toStrictEqual(Option.some(0))
  })

  it.each([
    ["version ff", `ff-${traceHex}-${spanHex}-01`],
    ["version 01", `01-${traceHex}-${spanHex}-01`],
    ["version 01 with a fifth field", `01-${traceHex}-${spanHex}-01-abcd`],
    ["an extra field", `${w3cExample}-00`],
    ["a trailing hyphen", `${w3cExample}-`],
    ["upper-case trace id", `00-${traceHex.toUpperCase()}-${spanHex}-01`],
    ["upper-case parent id", `00-${traceHex}-${spanHex.toUpperCase()}-01`],
    ["upper-case flags", `00-${traceHex}-${spanHex}-0A`],
    ["upper-case version", `0A-${traceHex}-${spanHex}-01`],
    ["an all-zero trace id", `00-${"0".repeat(32)}-${spanHex}-01`],
    ["an all-zero parent id", `00-${traceHex}-${"0".repeat(16)}-01`],
    ["a short trace id", `00-${traceHex.slice(1)}-${spanHex}-01`],
    ["a long trace id", `00-${traceHex}0-${spanHex}-01`],
    ["a short parent id", `00-${traceHex}-${spanHex.slice(1)}-01`],
    ["a long parent id", `00-${traceHex}-${spanHex}0-01`],
    ["one-digit flags", `00-${traceHex}-${spanHex}-1`],
    ["three-digit flags", `00-${traceHex}-${spanHex}-001`],
    ["one-digit version", `0-${traceHex}-${spanHex}-01`],
    ["three fields", `00-${traceHex}-${spanHex}`],
    ["a non-hex digit", `00-${traceHex.slice(0, -1)}g-${spanHex}-01`],
    ["the empty string", ""]
  ])("rejects %s", (_, header) => {
    expect(TraceId.fromTraceparent(header)).toStrictEqual(Option.none())
  })

  it("toTraceparent writes version 00, the 32-digit trace id, the span id and sampled flags", () => {
    expect(TraceId.toTraceparent(id("0af76519-16cd-43dd-8448-eb211c80319c"), spanHex)).toBe(w3cExample)
    expect(TraceId.toTraceparent(id(rfcExample), spanHex, 0)).toBe(`00-017f22e279b07cc398c4dc0c0c07398f-${spanHex}-00`)
  })

  it.each([0x02, 0x03, 0xff, 0x7f, 0x100 | 0x03])("toTraceparent never sets the random flag (flags %d)", (flags) => {
    const header = TraceId.toTraceparent(id(rfcExample), spanHex, flags)
    const parsed = Option.getOrThrow(TraceId.fromTraceparent(header))
    expect(parsed.flags & 0x02).toBe(0)
    expect(parsed.flags).toBe(flags & 0xfd)
  })

  it.prop(
    "toTraceparent round-trips through fromTraceparent",
    [hexBytes(16), hexBytes(8), FastCheck.integer({ min: 0, max: 255 })],
    ([trace, span, flags]) => {
      const traceId = Option.getOrThrow(TraceId.fromHex(trace))
      const parsed = TraceId.fromTraceparent(TraceId.toTraceparent(traceId, span, flags))
      expect(parsed).toStrictEqual(Option.some({ traceId, parentId: span, flags: flags & 0xfd }))
    }
  )
})
