import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"

/**
 * A test that stores a record dated `2026-11-23` in a real-clock store passes until the store's retention (7 days),
 * TTL (24 hours) or sweep threshold (30 minutes) overtakes the date, then fails for everyone. This scan keeps that
 * class out of the suite: a test takes its dates from the store's `Clock` (real time for Redis, `TestClock` for
 * memory) or sets them with `TestClock.setTime`. A file whose absolute dates only feed pure parsing or formatting
 * says so on one line: `// absolute dates: <why they never meet a clock>`.
 */
const root = path.resolve(import.meta.dirname, "../../..")
const absolute = /Date\.UTC\(\s*\d{4}|new Date\(\s*["'`]\d{4}-|Date\.parse\(\s*["'`]\d{4}-|["'`]\d{4}-\d{2}-\d{2}[T ]\d{2}:/
const waiver = /\/\/ absolute dates: \S/

const testFiles = (dir: string): Array<string> => {
  const found: Array<string> = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === "dist" || entry.name === "build") continue
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) found.push(...testFiles(full))
    else if (entry.name.endsWith(".ts") && full.split(path.sep).includes("test")) found.push(full)
  }
  return found
}

describe("dates in tests", () => {
  it("no test uses an absolute date outside TestClock.setTime, unless its file says why it never meets a clock", () => {
    const files = ["packages", "apps", "examples"].flatMap((dir) => testFiles(path.join(root, dir)))
    expect(files.length).toBeGreaterThan(20)
    const offending: Array<string> = []
    for (const file of files) {
      const text = fs.readFileSync(file, "utf8")
      if (waiver.test(text)) continue
      text.split("\n").forEach((line, i) => {
        // 1970 dates are TestClock's: what a store under it writes at its start.
        if (absolute.test(line) && !/TestClock\.setTime\(|["'`]1970-01-01/.test(line)) {
          offending.push(`${path.relative(root, file)}:${i + 1}: ${line.trim()}`)
        }
      })
    }
    expect(offending).toEqual([])
  })

  it("the scan recognises the date that broke the suite", () => {
    expect(absolute.test("const now = Date.UTC(2026, 10, 23)")).toBe(true)
    expect(absolute.test(`created_at: "2025-11-23T04:33:20.250+00:00"`)).toBe(true)
    expect(absolute.test("const now = yield* Clock.currentTimeMillis")).toBe(false)
  })
})
