/**
 * `sg` as child processes for process-level tests: spawned with `node --import tsx` (one process, so its pid is the
 * one in its lease token and signals reach it directly), or as an operator starts it (`pnpm start`, in a process
 * group of its own, as a service manager runs it); output collected, and always killed when the scope closes.
 */
import { Clock, Deferred, Duration, Effect, Option, type Scope } from "effect"
import { spawn } from "node:child_process"
import * as Net from "node:net"
import * as path from "node:path"

/** The repository root. */
export const root = path.join(import.meta.dirname, "../../../..")

/** How a child ended. */
export interface Ended {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** A running `sg` child. */
export interface Child {
  readonly name: string
  readonly pid: number
  /** Everything it printed on stdout so far. */
  readonly stdout: () => string
  /** Everything it printed on stderr so far. */
  readonly stderr: () => string
  /** Completes when it has exited. */
  readonly ended: Deferred.Deferred<Ended>
  /** Sends it a signal. */
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** Sends a signal to its process group (it leads one only when spawned `detached`). */
  readonly signalGroup: (signal: NodeJS.Signals) => Effect.Effect<void>
}

/**
 * Spawns `command <args>` from the repository root with `env` added to this process' environment; `detached` puts
 * it at the head of a process group (and session) of its own, with no terminal, as a service manager would.
 */
export const spawnProcess = (
  name: string,
  command: string,
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string>>,
  options?: { readonly detached?: boolean }
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const ended = yield* Deferred.make<Ended>()
      const detached = options?.detached === true
      const child = spawn(command, args, {
        cwd: root,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
        detached
      })
      let out = ""
      let err = ""
      child.stdout.on("data", (chunk: Buffer) => void (out += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => void (err += chunk.toString()))
      child.once("exit", (code, signal) => Deferred.unsafeDone(ended, Effect.succeed({ code, signal })))
      child.once("error", (error) => {
        err += `spawn failed: ${error.message}\n`
        Deferred.unsafeDone(ended, Effect.succeed({ code: null, signal: null }))
      })
      return {
        name,
        pid: child.pid ?? -1,
        stdout: () => out,
        stderr: () => err,
        ended,
        signal: (signal: NodeJS.Signals) => Effect.sync(() => void child.kill(signal)),
        signalGroup: (signal: NodeJS.Signals) =>
          Effect.sync(() => {
            if (!detached || child.pid === undefined) return void child.kill(signal)
            try {
              process.kill(-child.pid, signal)
            } catch {
              // the group is gone already
            }
          })
      }
    }),
    (child) =>
      Effect.gen(function*() {
        // The whole group of a detached child: whatever it started goes with it.
        const kill = (signal: NodeJS.Signals) => Effect.zipRight(child.signalGroup(signal), child.signal(signal))
        if (yield* Deferred.isDone(child.ended)) return yield* kill("SIGKILL")
        // A stopped child dies of SIGKILL too; SIGCONT first in case it is stopped, so nothing is left frozen.
        yield* kill("SIGCONT")
        yield* kill("SIGKILL")
        yield* Deferred.await(child.ended).pipe(Effect.timeout("5 seconds"), Effect.ignore)
      })
  )

/** Spawns `sg <args>` (`node --conditions=@sg/source --import tsx apps/supervisor/src/bin.ts`, the sources) with `env` added to this environment. */
export const spawnSg = (
  name: string,
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string>>
): Effect.Effect<Child, never, Scope.Scope> =>
  spawnProcess(name, process.execPath, ["--conditions=@sg/source", "--import", "tsx", "apps/supervisor/src/bin.ts", ...args], env)

/** A loopback port free right now (for a server that must be reached before it says where it listens). */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Polls `check` every 25 ms until it gives a value, dying with `what` (and `context`) after `limit`. */
export const waitFor = <A, E, R>(
  what: string,
  check: Effect.Effect<Option.Option<A>, E, R>,
  limit: Duration.DurationInput,
  context: () => string = () => ""
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    while (true) {
      const result = yield* check
      if (Option.isSome(result)) return result.value
      yield* Effect.sleep("25 millis")
    }
  }).pipe(
    Effect.timeout(limit),
    Effect.catchTag("TimeoutException", () =>
      Effect.dieMessage(`timed out after ${Duration.format(Duration.decode(limit))} waiting for ${what}${context()}`))
  )

/** `waitFor` a condition. */
export const waitUntil = <E, R>(
  what: string,
  check: Effect.Effect<boolean, E, R>,
  limit: Duration.DurationInput,
  context?: () => string
): Effect.Effect<void, E, R> =>
  waitFor(what, Effect.map(check, (ok) => (ok ? Option.some(undefined) : Option.none())), limit, context)

/** Waits for the child to exit. */
export const ended = (child: Child, limit: Duration.DurationInput = "15 seconds"): Effect.Effect<Ended> =>
  Deferred.await(child.ended).pipe(
    Effect.timeout(limit),
    Effect.catchTag("TimeoutException", () =>
      Effect.dieMessage(
        `${child.name} (pid ${child.pid}) did not exit within ${Duration.format(Duration.decode(limit))}`
      ))
  )

/** The real time, in milliseconds (tests here run with the live clock). */
export const now: Effect.Effect<number> = Clock.currentTimeMillis

/** The pid in a lease token `<hostname>:<pid>:<random>`. */
export const pidOfToken = (token: string): number => Number(token.split(":").at(-2))

/** Both children's output, for a failure message. */
export const outputs = (...children: ReadonlyArray<Child>) => () =>
  children.map((c) => `\n--- ${c.name} (pid ${c.pid}) stderr:\n${c.stderr()}`).join("")
