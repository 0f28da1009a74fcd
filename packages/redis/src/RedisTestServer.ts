/**
 * A private Redis for tests: spawns `redis-server` on a free port for the scope's lifetime,
 * or borrows the server named by `REDIS_URL` under a key prefix of its own (deleting only those keys after).
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Redis } from "ioredis"
import { freePort, killServer, spawnServer } from "./internal/spawn.js"
import * as RedisClient from "./RedisClient.js"

import { RedisServerFailed, type RedisServerNotFound } from "./internal/testErrors.js"

/** `redis-server` is missing, or would not start; the line a test run prints without one. */
export { notFoundMessage, RedisServerFailed, RedisServerNotFound } from "./internal/testErrors.js"

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
