import { describe, expect, it } from "@effect/vitest"
import { tooDeep } from "../src/internal/depth.js"

describe("tooDeep", () => {
  it("names the path down to the container past the limit: keys, and indexes in arrays", () => {
    expect(tooDeep(`{"a":[0,{"b":{}}]}`, 4)).toBeUndefined()
    expect(tooDeep(`{"a":[0,{"b":{}}]}`, 3)).toEqual(["a", 1, "b"])
    expect(tooDeep(`{"a":[0,{"b":{}}]}`, 1)).toEqual(["a"])
    expect(tooDeep(`[[1],[2,[3]]]`, 2)).toEqual([1, 1])
    expect(tooDeep(`{}`, 0)).toEqual([])
  })

  it("does not count brackets in strings, escaped quotes included, and decodes escaped keys", () => {
    expect(tooDeep(`{"k\\"[{":"[[[[{{{{\\\\", "x": "]]]"}`, 1)).toBeUndefined()
    expect(tooDeep(`{"a\\u0062":{"c":1}}`, 1)).toEqual(["ab"])
    expect(tooDeep(`{"x":"}}}}","y":{"z":{}}}`, 2)).toEqual(["y", "z"])
  })

  it("scans 10,000 levels and a megabyte of text without recursion", () => {
    expect(tooDeep("[".repeat(10_000) + "]".repeat(10_000), 64)).toHaveLength(64)
    expect(tooDeep(JSON.stringify({ input: "x".repeat(1024 * 1024) }), 64)).toBeUndefined()
  })
})
