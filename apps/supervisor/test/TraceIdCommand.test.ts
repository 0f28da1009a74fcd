import * as PlatformCommand from "@effect/platform/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { describe, expect, it } from "@effect/vitest"
import { Cli } from "@sg/supervisor"
import { TraceId } from "@sg/trace"
import { Clock, Effect, Option } from "effect"
import * as path from "node:path"

const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const root = path.join(import.meta.dirname, "../../..")

/** Runs `sg <args>` in this process with `Console.log` and `Console.error` captured. */
const runSg = (...args: Array<string>) =>
  Effect.gen(function*() {
    const out: Array<string> = []
    const err: Array<string> = []
    const exit = yield* Effect.consoleWith((console) =>
      Cli.run(["node", "sg", ...args]).pipe(
        Effect.withConsole({
          ...console,
          log: (...xs) => Effect.sync(() => void out.push(xs.join(" "))),
          error: (...xs) => Effect.sync(() => void err.push(xs.join(" ")))
        }),
        Effect.exit
      )
    )
    return { exit, stdout: out.join("\n"), stderr: err.join("\n") }
  }).pipe(Effect.provide(NodeContext.layer))

/** Checks that `stdout` holds exactly `count` strictly increasing v7 ids minted between `from` and `to`. */
const expectIds = (stdout: string, count: number, from: number, to: number) => {
  const lines = stdout.split("\n")
  expect(lines).toHaveLength(count)
  const bad = lines.filter((line, i) => {
    const ms = TraceId.parse(line).pipe(Option.flatMap(TraceId.timestampOf))
    return !v7.test(line) || (i > 0 && lines[i - 1]! >= line) || Option.isNone(ms) || ms.value < from || ms.value > to
  })
  expect(bad).toStrictEqual([])
}

describe("sg trace-id", () => {
  it.live("prints one id by default", () =>
    Effect.gen(function*() {
      const from = yield* Clock.currentTimeMillis
      const { exit, stdout } = yield* runSg("trace-id")
      expect(exit._tag).toBe("Success")
      expectIds(stdout, 1, from, yield* Clock.currentTimeMillis)
    }))

  it.live("prints --count ids, strictly increasing, stamped with the current time", () =>
    Effect.gen(function*() {
      const from = yield* Clock.currentTimeMillis
      const { exit, stdout } = yield* runSg("trace-id", "--count", "25000")
      expect(exit._tag).toBe("Success")
      expectIds(stdout, 25_000, from, yield* Clock.currentTimeMillis)
    }))

  it.live.each([["0"], ["-3"]])("refuses --count %s with a clear message", ([count]) =>
    Effect.gen(function*() {
      const { exit, stdout, stderr } = yield* runSg("trace-id", "--count", count!)
      expect(exit._tag).toBe("Failure")
      expect(stdout).toBe("")
      expect(stderr).toContain("--count must be a whole number of at least 1")
    }))

  it.live("refuses a --count that is not a number", () =>
    Effect.gen(function*() {
      const { exit, stdout, stderr } = yield* runSg("trace-id", "--count", "many")
      expect(exit._tag).toBe("Failure")
      expect(stdout).toBe("")
      expect(stderr).toContain("'many'")
    }))

  it.live("runs as a process: ids on stdout, exit code 0; a bad count exits non-zero", () =>
    Effect.gen(function*() {
      const sg = (...args: Array<string>) =>
        PlatformCommand.make(path.join(root, "node_modules/.bin/tsx"), "apps/supervisor/src/bin.ts", ...args).pipe(
          PlatformCommand.workingDirectory(root)
        )
      const from = yield* Clock.currentTimeMillis
      const stdout = yield* PlatformCommand.string(sg("trace-id", "--count", "1000"))
      expectIds(stdout.trimEnd(), 1000, from, yield* Clock.currentTimeMillis)
      expect(yield* PlatformCommand.exitCode(sg("trace-id", "--count", "0"))).not.toBe(0)
    }).pipe(Effect.provide(NodeContext.layer)), 60_000)
})
