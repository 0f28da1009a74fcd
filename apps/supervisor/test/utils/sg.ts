/**
 * `sg <args>` run in this process, for verbs whose exit code is not what a test checks: configuration from the given
 * environment only, `Console.log` and `Console.error` captured (logs included), the loggers restored after.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { Cli } from "@sg/supervisor"
import { ConfigProvider, Effect, type Exit, FiberRef } from "effect"

/** What an in-process run printed, and how it ended. */
export interface Ran {
  readonly exit: Exit.Exit<void, unknown>
  readonly stdout: string
  readonly stderr: string
}

/** Runs `sg <args>` with `REDIS_URL` set to `redisUrl` (empty: the memory store). */
export const runSg = (redisUrl: string, args: ReadonlyArray<string>): Effect.Effect<Ran> =>
  Effect.gen(function*() {
    const out: Array<string> = []
    const err: Array<string> = []
    const loggers = yield* FiberRef.get(FiberRef.currentLoggers)
    const log = (...xs: ReadonlyArray<unknown>) => void out.push(xs.join(" "))
    const error = (...xs: ReadonlyArray<unknown>) => void err.push(xs.join(" "))
    const exit = yield* Effect.consoleWith((console) =>
      Cli.run(["node", "sg", ...args]).pipe(
        Effect.withConsole({
          ...console,
          log: (...xs) => Effect.sync(() => log(...xs)),
          error: (...xs) => Effect.sync(() => error(...xs)),
          // Loggers write through `unsafe`.
          unsafe: { ...console.unsafe, log, error }
        }),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["REDIS_URL", redisUrl]]))),
        Effect.locally(FiberRef.currentLoggers, loggers),
        Effect.exit
      )
    )
    return { exit, stdout: out.join("\n"), stderr: err.join("\n") }
  }).pipe(Effect.provide(NodeContext.layer))
