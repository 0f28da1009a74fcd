import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Net from "node:net"
import { notFoundMessage, RedisServerFailed, RedisServerNotFound } from "./testErrors.js"

/** A TCP port nothing listens on right now (another process may still take it before we bind it). */
export const freePort = Effect.async<number, RedisServerFailed>((resume) => {
  const server = Net.createServer()
  server.once("error", (error) => resume(Effect.fail(new RedisServerFailed({ message: `no free port: ${error.message}` }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** Starts `redis-server` on `port` with its files in `dir` (and `extra` arguments); succeeds once it accepts connections. */
export const spawnServer = (port: number, dir: string, extra: ReadonlyArray<string> = []) =>
  Effect.async<ChildProcess, RedisServerFailed | RedisServerNotFound>((resume) => {
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extra],
      { stdio: ["ignore", "pipe", "pipe"] }
    )
    let output = ""
    let settled = false
    const settle = (effect: Effect.Effect<ChildProcess, RedisServerFailed | RedisServerNotFound>) => {
      if (settled) return
      settled = true
      child.stdout?.removeAllListeners("data")
      resume(effect)
    }
    child.once("error", (error: NodeJS.ErrnoException) =>
      settle(
        error.code === "ENOENT"
          ? Effect.fail(new RedisServerNotFound({ message: notFoundMessage }))
          : Effect.fail(new RedisServerFailed({ message: `redis-server: ${error.message}` }))
      ))
    child.once("exit", (code) =>
      settle(Effect.fail(new RedisServerFailed({ message: `redis-server exited with ${code}: ${output.slice(-500)}` }))))
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes("Ready to accept connections")) settle(Effect.succeed(child))
    })
    child.stderr?.resume()
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** SIGKILLs a server (as a crash would) and waits for it to exit. */
export const killServer = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

