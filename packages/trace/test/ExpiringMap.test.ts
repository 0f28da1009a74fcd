import { describe, expect, it } from "@effect/vitest"
import { BoundedSet, ExpiringMap, type Removal } from "../src/internal/expiringMap.js"

const recording = <V>(capacity: number, purgeBudget?: number) => {
  const removed: Array<[string, V, Removal]> = []
  const map = new ExpiringMap<string, V>({ capacity, purgeBudget, onRemove: (k, v, why) => removed.push([k, v, why]) })
  return { map, removed }
}

describe("ExpiringMap", () => {
  it("an expired entry is purged by a later write of another key, soonest expiry first, without being read", () => {
    const { map, removed } = recording<number>(Infinity, 2)
    map.set("late", 1, 0, 300)
    map.set("early", 2, 0, 100)
    map.set("middle", 3, 0, 200)
    map.set("never", 4, 0)
    expect(map.size).toBe(4)
    map.set("other", 5, 250)
    expect(removed).toEqual([["early", 2, "expired"], ["middle", 3, "expired"]])
    expect(map.size).toBe(3)
    map.set("other", 6, 1_000_000)
    expect(removed.map(([k]) => k)).toEqual(["early", "middle", "late"])
    expect(Array.from(map)).toEqual([["never", 4], ["other", 6]])
    expect(map.stats()).toEqual({ size: 2, expiring: 0, expired: 3, evicted: 0 })
  })

  it("a write purges at most its budget, so a burst of expiries is worked off over later writes", () => {
    const { map } = recording<number>(Infinity, 4)
    for (let i = 0; i < 20; i++) map.set(`k${i}`, i, 0, 10)
    map.set("w1", 0, 10)
    expect(map.size).toBe(20 - 4 + 1)
    for (let i = 2; i <= 5; i++) map.set(`w${i}`, 0, 10)
    expect(map.size).toBe(5)
  })

  it("get answers undefined at the expiry, and removes the entry; peek still sees an expired one until then", () => {
    const { map, removed } = recording<string>(Infinity)
    map.set("a", "x", 0, 100)
    expect(map.get("a", 99)).toBe("x")
    expect(map.peek("a")).toBe("x")
    expect(map.get("a", 100)).toBeUndefined()
    expect(map.has("a")).toBe(false)
    expect(removed).toEqual([["a", "x", "expired"]])
  })

  it("a write without an expiry keeps the live entry's own (as HSET keeps a TTL); expire moves it either way", () => {
    const { map } = recording<number>(Infinity)
    map.set("a", 1, 0, 100)
    map.set("a", 2, 50)
    expect(map.expiresAt("a")).toBe(100)
    expect(map.expire("a", 500)).toBe(true)
    map.set("b", 0, 100, 200)
    map.set("c", 0, 300)
    expect(map.peek("a")).toBe(2)
    expect(map.has("b")).toBe(false)
    expect(map.expire("a", 10)).toBe(true)
    map.set("c", 0, 300)
    expect(map.has("a")).toBe(false)
    expect(map.expire("a", 10)).toBe(false)
    map.set("d", 0, 300, 400)
    map.expire("d", Infinity)
    expect(map.expiresAt("d")).toBeUndefined()
    map.set("e", 0, 1e9)
    expect(map.has("d")).toBe(true)
  })

  it("past the cap the least recently written goes first, counted as evicted (an expired one as expired)", () => {
    const { map, removed } = recording<number>(3, 0)
    map.set("a", 1, 0)
    map.set("b", 2, 0, 5)
    map.set("c", 3, 0)
    map.set("a", 10, 1)
    map.set("d", 4, 10)
    expect(removed).toEqual([["b", 2, "expired"]])
    map.set("e", 5, 10)
    expect(removed).toEqual([["b", 2, "expired"], ["c", 3, "evicted"]])
    expect(Array.from(map.values())).toEqual([10, 4, 5])
    expect(map.stats()).toMatchObject({ size: 3, expired: 1, evicted: 1 })
  })

  it("delete and clear remove without calling back", () => {
    const { map, removed } = recording<number>(2)
    map.set("a", 1, 0, 10)
    map.set("b", 2, 0, 20)
    expect(map.delete("a")).toBe(true)
    expect(map.delete("a")).toBe(false)
    map.clear()
    expect(map.size).toBe(0)
    expect(map.stats().expiring).toBe(0)
    map.set("c", 3, 100)
    expect(removed).toEqual([])
  })

  it("refuses a cap below 1", () => {
    expect(() => new ExpiringMap({ capacity: 0 })).toThrow(/capacity must be at least 1/)
  })

  it("agrees with a naive model over random writes, expiries, deletes and reads", () => {
    // A fixed-seed generator, so a failure replays.
    let seed = 42
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed / 2147483648
    }
    const capacity = 50
    // Keys in write order, each with its value and expiry.
    const model = new Map<number, { value: number; expiresAt: number }>()
    let now = 0
    let expiredNow = 0
    const map = new ExpiringMap<number, number>({
      capacity,
      purgeBudget: 3,
      onRemove: (key, value, why) => {
        const entry = model.get(key)!
        expect(entry.value).toBe(value)
        if (why === "expired") {
          expect(entry.expiresAt).toBeLessThanOrEqual(now)
          expiredNow++
        } else {
          // Only a full map evicts, and only its live entry written longest ago.
          expect(map.size).toBe(capacity)
          expect(entry.expiresAt).toBeGreaterThan(now)
          for (const older of model.keys()) {
            if (older === key) break
            expect(map.has(older)).toBe(false)
          }
        }
        model.delete(key)
      }
    })
    for (let step = 0; step < 10_000; step++) {
      now += Math.floor(random() * 3)
      const key = Math.floor(random() * 120)
      const op = random()
      if (op < 0.5) {
        const expiresAt = random() < 0.2 ? Infinity : now + 1 + Math.floor(random() * 200)
        // The key moves to the newest end first (with its old entry, which the map may find expired).
        const before = model.get(key)
        if (before !== undefined) {
          model.delete(key)
          model.set(key, before)
        }
        expiredNow = 0
        map.set(key, step, now, expiresAt)
        model.delete(key)
        model.set(key, { value: step, expiresAt })
        // A write leaves expired entries behind only once it has used its whole purge budget.
        const stale = Array.from(model.values()).filter((entry) => entry.expiresAt <= now).length
        if (stale > 0) expect(expiredNow).toBeGreaterThanOrEqual(3)
      } else if (op < 0.65) {
        const expiresAt = now + Math.floor(random() * 200)
        expect(map.expire(key, expiresAt)).toBe(model.has(key))
        if (model.has(key)) model.get(key)!.expiresAt = expiresAt
      } else if (op < 0.75) {
        expect(map.delete(key)).toBe(model.delete(key))
      } else {
        const entry = model.get(key)
        expect(map.get(key, now)).toBe(entry !== undefined && entry.expiresAt > now ? entry.value : undefined)
      }
      const held = Array.from(map, ([k, v]) => `${k}=${v}@${map.expiresAt(k) ?? Infinity}`).join(" ")
      expect(held).toBe(Array.from(model, ([k, entry]) => `${k}=${entry.value}@${entry.expiresAt}`).join(" "))
      if (map.size > capacity) expect.fail(`size ${map.size} past the cap`)
    }
    expect(map.stats().expired).toBeGreaterThan(100)
    expect(map.stats().evicted).toBeGreaterThan(100)
  })
})

describe("BoundedSet", () => {
  it("keeps the last `capacity` members added, a re-added member keeping its place, and counts what it drops", () => {
    const evicted: Array<string> = []
    const set = new BoundedSet<string>({ capacity: 3, onEvict: (k) => evicted.push(k) })
    set.add("a").add("b").add("c").add("a").add("d")
    expect(Array.from(set)).toEqual(["b", "c", "d"])
    expect(evicted).toEqual(["a"])
    expect(set.has("a")).toBe(false)
    expect(set.delete("c")).toBe(true)
    set.add("e")
    expect(Array.from(set)).toEqual(["b", "d", "e"])
    expect(set.size).toBe(3)
    expect(set.evicted).toBe(1)
  })
})
