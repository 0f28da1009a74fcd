import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
import { fnv1a32, layoutFor, shardsConfig, sharded, standalone } from "../src/internal/layout.js"

describe("the keyspace layouts", () => {
  it("standalone is DESIGN.md's table, the Python module's keys, one shard", () => {
    const layout = standalone("sg")
    const id = "0190a000-0000-7000-8000-000000000001"
    expect([layout.trace(id), layout.active(0), layout.record(id), layout.index(0)]).toEqual([
      `sg:trace:${id}`,
      "sg:traces:active",
      `sg:exec:${id}`,
      "sg:exec:index"
    ])
    expect(layout.status(0, "error")).toBe("sg:exec:index:status:error")
    expect(layout.agent(0, "planner")).toBe("sg:exec:index:agent:planner")
    expect(layout.fence(0, "trace-watchdog")).toBe("sg:lease:trace-watchdog:epoch")
    expect(layout.shards).toBe(1)
    expect(layoutFor({ prefix: "sg", mode: "redis" }, 16).trace(id)).toBe(`sg:trace:${id}`)
  })

  it("a cluster's: every key of a trace under its shard's hash tag, the shard FNV-1a of the id", () => {
    const layout = sharded("sg", 16)
    const id = "0190a000-0000-7000-8000-000000000001"
    const shard = fnv1a32(id) % 16
    expect(layout.shardOf(id)).toBe(shard)
    expect([layout.trace(id), layout.active(shard), layout.record(id), layout.index(shard)]).toEqual([
      `sg:{${shard}}:trace:${id}`,
      `sg:{${shard}}:traces:active`,
      `sg:{${shard}}:exec:${id}`,
      `sg:{${shard}}:exec:index`
    ])
    expect(layout.status(3, "success")).toBe("sg:{3}:exec:index:status:success")
    expect(layout.agent(3, "a")).toBe("sg:{3}:exec:index:agent:a")
    expect(layout.fence(3, "trace-watchdog")).toBe("sg:{3}:fence:trace-watchdog")
    expect(layoutFor({ prefix: "sg", mode: "redis-cluster" }, 16).trace(id)).toBe(layout.trace(id))
  })

  it("FNV-1a 32 as anyone recomputes it (the published test vectors), and ids spread over the shards", () => {
    expect(fnv1a32("")).toBe(0x811c9dc5)
    expect(fnv1a32("a")).toBe(0xe40c292c)
    expect(fnv1a32("foobar")).toBe(0xbf9cf968)
    const counts = Array.from({ length: 16 }, () => 0)
    for (let i = 0; i < 16_000; i++) counts[sharded("sg", 16).shardOf(`0190a000-0000-7000-8000-${i.toString(16).padStart(12, "0")}`)]!++
    for (const count of counts) expect(count).toBeGreaterThan(700)
  })

  it.effect.each([["0", false], ["1025", false], ["1.5", false], ["1", true], ["1024", true]] as const)(
    "SG_INDEX_SHARDS=%s accepted: %s",
    ([value, ok]) =>
      Effect.gen(function*() {
        const result = yield* Effect.either(
          Effect.withConfigProvider(shardsConfig, ConfigProvider.fromMap(new Map([["SG_INDEX_SHARDS", value]])))
        )
        expect(result._tag === "Right").toBe(ok)
      })
  )
})
