/**
 * A private Redis for tests: spawns `redis-server` on a free port for the scope's lifetime,
 * or borrows the server named by `REDIS_URL` under a key prefix of its own (deleting only those keys after).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { Redis } from "ioredis"
import * as RedisClient from "./RedisClient.js"

/** No `redis-server` binary on PATH and no `REDIS_URL`. */
export class RedisServerNotFound extends Schema.TaggedError<RedisServerNotFound>("@sg/redis/RedisServerNotFound")(
  "RedisServerNotFound",
  { message: Schema.String }
) {}

/** `redis-server` would not start. */
export class RedisServerFailed extends Schema.TaggedError<RedisServerFailed>("@sg/redis/RedisServerFailed")(
  "RedisServerFailed",
  { message: Schema.String }
) {}

/** The one line a test run prints when it has no Redis to use. */
export const notFoundMessage =
  "redis-server was not found on PATH: install it (sudo apt-get install -y redis-server) or set REDIS_URL to a Redis 7 the tests may use"

/** A Redis server the tests may use. */
export interface Service {
  readonly url: string
  /** The prefix tests must put their keys under (`sg` on a private server). */
  readonly prefix: string
  /** Whether the server is the one `REDIS_URL` names (not ours to stop). */
  readonly external: boolean
  /** Kills the server at once, as a crash would (private servers only). */
  readonly stop: Effect.Effect<void, RedisServerFailed>
  /** Starts it again on the same port, with an empty dataset (private servers only). */
  readonly start: Effect.Effect<void, RedisServerFailed>
  /** Freezes the server (SIGSTOP): connections stay open, nothing answers (private servers only). */
  readonly pause: Effect.Effect<void, RedisServerFailed>
  /** Lets a paused server go on (SIGCONT). */
  readonly resume: Effect.Effect<void, RedisServerFailed>
}

/** The test Redis server. */
export class RedisTestServer extends Context.Tag("@sg/redis/RedisTestServer")<RedisTestServer, Service>() {}

const freePort = Effect.async<number, RedisServerFailed>((resume) => {
  const server = Net.createServer()
  server.once("error", (error) => resume(Effect.fail(new RedisServerFailed({ message: `no free port: ${error.message}` }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const spawnServer = (port: number, dir: string) =>
  Effect.async<ChildProcess, RedisServerFailed | RedisServerNotFound>((resume) => {
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
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

const killServer = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    child.kill("SIGKILL")
  })

const makeSpawned: Effect.Effect<Service, RedisServerFailed | RedisServerNotFound, Scope.Scope> = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "sg-redis-"))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )
  let port = 0
  let child: ChildProcess | undefined
  const startOn = (candidate: number) => Effect.tap(spawnServer(candidate, dir), (c) => Effect.sync(() => {
    port = candidate
    child = c
  }))
  // A port found free can be taken before redis-server binds it: try a few.
  yield* Effect.flatMap(freePort, startOn).pipe(
    Effect.retry({ times: 4, while: (error) => error._tag === "RedisServerFailed" })
  )
  yield* Effect.addFinalizer(() => child === undefined ? Effect.void : killServer(child))
  const stop = Effect.suspend(() => child === undefined ? Effect.void : killServer(child)).pipe(
    Effect.tap(() => Effect.sync(() => child = undefined))
  )
  const start = Effect.suspend(() => child === undefined ? startOn(port) : Effect.void).pipe(
    Effect.asVoid,
    Effect.catchTag("RedisServerNotFound", (e) => Effect.fail(new RedisServerFailed({ message: e.message })))
  )
  const signal = (name: NodeJS.Signals) =>
    Effect.suspend(() =>
      child === undefined
        ? Effect.fail(new RedisServerFailed({ message: `the server is stopped: cannot send it ${name}` }))
        : Effect.sync(() => void child!.kill(name))
    )
  yield* Effect.addFinalizer(() => Effect.ignore(signal("SIGCONT")))
  return {
    url: `redis://127.0.0.1:${port}`,
    prefix: "sg",
    external: false,
    stop,
    start,
    pause: signal("SIGSTOP"),
    resume: signal("SIGCONT")
  }
})

const makeExternal = (url: string): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = `sgtest-${process.pid}-${Math.random().toString(36).slice(2, 10)}`
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
        try {
          await client.connect()
          let cursor = "0"
          do {
            const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000)
            if (keys.length > 0) await client.del(...keys)
            cursor = next
          } while (cursor !== "0")
          await client.quit()
        } catch {
          client.disconnect()
        }
      })
    )
    const unsupported = Effect.fail(
      new RedisServerFailed({ message: "this test stops and starts Redis: it needs a private redis-server, not REDIS_URL" })
    )
    return { url, prefix, external: true, stop: unsupported, start: unsupported, pause: unsupported, resume: unsupported }
  })

/** A private `redis-server` on a free port, always (for tests that stop and start it). */
export const layerSpawned: Layer.Layer<RedisTestServer, RedisServerFailed | RedisServerNotFound> = Layer.scoped(
  RedisTestServer,
  makeSpawned
)

/** The server `REDIS_URL` names when set, a private `redis-server` otherwise. */
export const layer: Layer.Layer<RedisTestServer, RedisServerFailed | RedisServerNotFound> = Layer.scoped(
  RedisTestServer,
  Effect.suspend(() => {
    const url = process.env["REDIS_URL"]
    return url !== undefined && url !== "" ? makeExternal(url) : makeSpawned
  })
)

/** A `RedisClient` for the test server, under its prefix, with short timeouts. */
export const layerClient = (options?: Partial<RedisClient.Options>): Layer.Layer<RedisClient.RedisClient, never, RedisTestServer> =>
  Layer.scoped(
    RedisClient.RedisClient,
    Effect.flatMap(RedisTestServer, (server) =>
      RedisClient.make({
        url: server.url,
        prefix: server.prefix,
        connectTimeout: "500 millis",
        commandTimeout: "1 second",
        ...options
      }))
  )

/** A test server and a client for it, in one layer. */
export const layerWithClient: Layer.Layer<
  RedisClient.RedisClient | RedisTestServer,
  RedisServerFailed | RedisServerNotFound
> = Layer.provideMerge(layerClient(), layer)
