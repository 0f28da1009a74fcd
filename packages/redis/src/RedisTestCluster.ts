/**
 * A private Redis Cluster for tests: three masters and three replicas, each a `redis-server` on free ports with a
 * directory of its own, joined by `redis-cli --cluster create --cluster-replicas 1`, for the scope's lifetime (the
 * servers are killed and their directories removed when it closes). Start one per test file: it takes about two
 * seconds. Tests share it under key prefixes of their own.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Redis } from "ioredis"
import { freePort, killServer, spawnServer } from "./internal/spawn.js"
import { notFoundMessage, RedisServerFailed, RedisServerNotFound } from "./internal/testErrors.js"
import * as RedisClient from "./RedisClient.js"

/** One node as `CLUSTER NODES` describes it. */
export interface Node {
  readonly port: number
  readonly id: string
  readonly role: "master" | "replica"
  /** Flagged `fail` (or `pfail`) by the node asked. */
  readonly failing: boolean
  /** For a replica, the id of its master. */
  readonly masterId: string | undefined
  /** How many slots it serves (masters). */
  readonly slots: number
}

/** The test cluster. */
export interface Service {
  /** The seed nodes, as `REDIS_URL` takes them: `redis://127.0.0.1:<port>,...` (every node). */
  readonly url: string
  /** The prefix tests put their keys under. */
  readonly prefix: string
  /** Every node's port, masters first as created. */
  readonly ports: ReadonlyArray<number>
  /** The cluster as a live node sees it now. */
  readonly nodes: Effect.Effect<ReadonlyArray<Node>, RedisServerFailed>
  /** The ports of the masters serving slots now (not failing). */
  readonly masters: Effect.Effect<ReadonlyArray<number>, RedisServerFailed>
  /** Kills a master at once, as a crash would (the first live one unless `port` names one); returns its port. */
  readonly killMaster: (port?: number) => Effect.Effect<number, RedisServerFailed>
  /**
   * Waits until the killed master `port` is flagged failed, a replica serves its slots and every live node says
   * `cluster_state:ok`; returns the promoted replica's port.
   */
  readonly awaitFailover: (port: number) => Effect.Effect<number, RedisServerFailed>
  /** Starts a killed node again; it rejoins as a replica. Waits until it has synced and the cluster is ok. */
  readonly restart: (port: number) => Effect.Effect<void, RedisServerFailed>
  /** How many keys matching `pattern` each live master holds, by port. */
  readonly keysPerMaster: (pattern: string) => Effect.Effect<ReadonlyMap<number, number>, RedisServerFailed>
}

/** The test cluster. */
export class RedisTestCluster extends Context.Tag("@sg/redis/RedisTestCluster")<RedisTestCluster, Service>() {}

/** How the cluster is started. */
export interface Options {
  /**
   * `cluster-node-timeout`: how long a master may be silent before it counts as failed; 1.5 seconds by default (a
   * failover then takes about three). Shorter risks false failovers on a busy machine.
   */
  readonly nodeTimeout?: Duration.DurationInput | undefined
}

// The cluster's own time, whatever clock the test runs under: these waits are on real processes.
const live = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.withClock(effect, Clock.make())

const failed = (message: string) => new RedisServerFailed({ message })

const nodeArgs = (busPort: number, nodeTimeoutMs: number) => [
  "--cluster-enabled", "yes",
  "--cluster-config-file", "nodes.conf",
  "--cluster-port", String(busPort),
  "--cluster-node-timeout", String(nodeTimeoutMs),
  // A replica may take over however long it was cut off, and syncs at once (the default waits 5 s for others).
  "--cluster-replica-validity-factor", "0",
  "--repl-diskless-sync-delay", "0"
]

const parseNodes = (text: string): Array<Node> =>
  text.trim().split("\n").filter((line) => line !== "").map((line) => {
    const [id, address, flags, master, , , , , ...slots] = line.split(" ")
    const port = Number(address!.split("@")[0]!.split(":").pop())
    const flagSet = new Set(flags!.split(","))
    let count = 0
    for (const range of slots) {
      if (range.startsWith("[")) continue
      const [from, to] = range.split("-").map(Number)
      count += to === undefined ? 1 : to - from! + 1
    }
    return {
      port,
      id: id!,
      role: flagSet.has("master") ? "master" : "replica",
      failing: flagSet.has("fail") || flagSet.has("fail?"),
      masterId: master === "-" ? undefined : master,
      slots: count
    }
  })

const runCli = (args: ReadonlyArray<string>) =>
  Effect.async<void, RedisServerFailed | RedisServerNotFound>((resume) => {
    const child = spawn("redis-cli", args, { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => void (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => void (output += chunk.toString()))
    child.once("error", (error: NodeJS.ErrnoException) =>
      resume(Effect.fail(
        error.code === "ENOENT"
          ? new RedisServerNotFound({ message: notFoundMessage.replace("redis-server", "redis-cli") })
          : failed(`redis-cli: ${error.message}`)
      )))
    child.once("exit", (code) =>
      resume(code === 0 ? Effect.void : Effect.fail(failed(`redis-cli --cluster create exited with ${code}: ${output.slice(-800)}`))))
    return Effect.sync(() => void child.kill("SIGKILL"))
  })

interface Member {
  readonly port: number
  readonly busPort: number
  readonly dir: string
  child: ChildProcess | undefined
  readonly admin: Redis
}

const makeCluster = (options?: Options): Effect.Effect<Service, RedisServerFailed | RedisServerNotFound, Scope.Scope> =>
  Effect.gen(function*() {
    const nodeTimeoutMs = Duration.toMillis(Duration.decode(options?.nodeTimeout ?? Duration.millis(1500)))
    const root = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "sg-redis-cluster-"))),
      (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
    )
    const members: Array<Member> = []
    yield* Effect.addFinalizer(() =>
      Effect.forEach(members, (member) =>
        Effect.zipRight(
          Effect.sync(() => member.admin.disconnect()),
          member.child === undefined ? Effect.void : killServer(member.child)
        ), { concurrency: "unbounded", discard: true })
    )

    const start = (member: Member) =>
      Effect.map(spawnServer(member.port, member.dir, nodeArgs(member.busPort, nodeTimeoutMs)), (child) => {
        member.child = child
      })

    // Twelve ports (a node's and its bus'); one taken meanwhile fails that node's start: pick anew and try again.
    const startAll = Effect.gen(function*() {
      const ports = new Set<number>()
      while (ports.size < 12) ports.add(yield* freePort)
      const list = Array.from(ports)
      const created: Array<Member> = []
      for (let i = 0; i < 6; i++) {
        const dir = Path.join(root, `node-${list[i]}`)
        Fs.mkdirSync(dir, { recursive: true })
        created.push({
          port: list[i]!,
          busPort: list[i + 6]!,
          dir,
          child: undefined,
          admin: new Redis(list[i]!, "127.0.0.1", {
            lazyConnect: true,
            enableOfflineQueue: false,
            maxRetriesPerRequest: 0,
            retryStrategy: () => 100
          })
        })
      }
      for (const member of created) member.admin.on("error", () => undefined)
      members.push(...created)
      yield* Effect.forEach(created, start, { concurrency: "unbounded", discard: true })
      return created
    })
    const created = yield* startAll.pipe(
      Effect.tapError(() =>
        Effect.forEach(members.splice(0), (member) =>
          Effect.zipRight(
            Effect.sync(() => member.admin.disconnect()),
            member.child === undefined ? Effect.void : killServer(member.child)
          ), { discard: true })
      ),
      Effect.retry({ times: 3, while: (error) => error._tag === "RedisServerFailed" })
    )
    yield* runCli([
      "--cluster", "create",
      ...created.map((member) => `127.0.0.1:${member.port}`),
      "--cluster-replicas", "1",
      "--cluster-yes"
    ])
    yield* Effect.forEach(created, (member) => Effect.promise(() => member.admin.connect().catch(() => undefined)), {
      discard: true
    })

    const byPort = (port: number) => members.find((member) => member.port === port)
    const alive = () => members.filter((member) => member.child !== undefined)
    const ask = <A>(member: Member, what: string, f: (admin: Redis) => Promise<A>) =>
      Effect.tryPromise({ try: () => f(member.admin), catch: (error) => failed(`${what} on ${member.port}: ${String(error)}`) })

    const nodesSeenBy = (member: Member) =>
      Effect.map(ask(member, "CLUSTER NODES", (admin) => admin.call("CLUSTER", "NODES") as Promise<string>), parseNodes)
    const nodes = Effect.suspend(() => {
      const first = alive()[0]
      return first === undefined ? Effect.fail(failed("every node is down")) : nodesSeenBy(first)
    })
    const masters = Effect.map(
      nodes,
      (seen) => seen.filter((node) => node.role === "master" && !node.failing && node.slots > 0).map((node) => node.port)
    )

    /**
     * Every live node says ok, sees the nodes of `expectFailing` failed and three masters serving all the slots (every
     * other node a replica), and every live replica has synced.
     */
    const healthy = (expectFailing: ReadonlyArray<number>) =>
      Effect.forEach(alive(), (member) =>
        Effect.gen(function*() {
          const info = yield* ask(member, "CLUSTER INFO", (admin) => admin.call("CLUSTER", "INFO") as Promise<string>)
          if (!info.includes("cluster_state:ok")) return false
          const seen = yield* nodesSeenBy(member)
          const me = seen.find((node) => node.port === member.port)
          for (const port of expectFailing) {
            if (seen.find((node) => node.port === port)?.failing !== true) return false
          }
          const masters = seen.filter((node) => node.role === "master" && !node.failing)
          // Gossip spreads roles node by node: until this one has heard, a new replica still looks like a master.
          if (masters.length !== 3 || masters.some((node) => node.slots === 0)) return false
          if (masters.reduce((n, node) => n + node.slots, 0) !== 16384) return false
          if (me?.role === "replica") {
            const replication = yield* ask(member, "INFO", (admin) => admin.info("replication"))
            if (!replication.includes("master_link_status:up")) return false
          }
          return true
        }), { concurrency: "unbounded" }).pipe(
        Effect.map((answers) => answers.every(Boolean)),
        Effect.orElseSucceed(() => false)
      )

    const waitFor = (condition: Effect.Effect<boolean>, within: Duration.Duration, what: string) =>
      live(Effect.gen(function*() {
        const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(within)
        while (!(yield* condition)) {
          if ((yield* Clock.currentTimeMillis) > deadline) {
            return yield* Effect.fail(failed(`${what} did not happen within ${Duration.format(within)}`))
          }
          yield* Effect.sleep("50 millis")
        }
      }))

    const down = new Set<number>()
    const replicasOfKilled = new Map<number, ReadonlyArray<number>>()
    yield* waitFor(healthy([]), Duration.seconds(30), "the new cluster becoming ok with its replicas synced")

    const killMaster = (port?: number) =>
      Effect.gen(function*() {
        const current = yield* masters
        const chosen = port ?? current.find((p) => byPort(p)?.child !== undefined)
        const member = chosen === undefined ? undefined : byPort(chosen)
        if (member?.child === undefined || !current.includes(member.port)) {
          return yield* Effect.fail(failed(`no live master ${port === undefined ? "" : `on ${port} `}to kill`))
        }
        const seen = yield* nodes
        const id = seen.find((node) => node.port === member.port)?.id
        replicasOfKilled.set(member.port, seen.filter((node) => node.masterId === id).map((node) => node.port))
        yield* killServer(member.child)
        member.child = undefined
        down.add(member.port)
        return member.port
      })

    const awaitFailover = (port: number) =>
      Effect.gen(function*() {
        yield* waitFor(
          healthy(Array.from(down)),
          Duration.seconds(30),
          `a replica taking over the slots of ${port}`
        )
        const seen = yield* nodes
        const replicas = replicasOfKilled.get(port) ?? []
        const promoted = seen.find((node) => replicas.includes(node.port) && node.role === "master" && node.slots > 0)
        if (promoted === undefined) return yield* Effect.fail(failed(`no replica of ${port} was promoted`))
        return promoted.port
      })

    const restart = (port: number) =>
      Effect.gen(function*() {
        const member = byPort(port)
        if (member === undefined || member.child !== undefined) {
          return yield* Effect.fail(failed(`node ${port} is not a killed node of this cluster`))
        }
        yield* start(member).pipe(
          Effect.catchTag("RedisServerNotFound", (error) => Effect.fail(failed(error.message)))
        )
        down.delete(port)
        yield* waitFor(
          Effect.zipWith(healthy([]), nodes, (ok, seen) =>
            ok && seen.find((node) => node.port === port)?.role === "replica" && seen.every((node) => !node.failing)).pipe(
            Effect.orElseSucceed(() => false)
          ),
          Duration.seconds(30),
          `node ${port} rejoining as a synced replica`
        )
      })

    const keysPerMaster = (pattern: string) =>
      Effect.gen(function*() {
        const counts = new Map<number, number>()
        for (const port of yield* masters) {
          const member = byPort(port)!
          let cursor = "0"
          let count = 0
          do {
            const [next, keys] = yield* ask(member, "SCAN", (admin) => admin.scan(cursor, "MATCH", pattern, "COUNT", 5000))
            count += keys.length
            cursor = next
          } while (cursor !== "0")
          counts.set(port, count)
        }
        return counts as ReadonlyMap<number, number>
      })

    return {
      url: created.map((member) => `redis://127.0.0.1:${member.port}`).join(","),
      prefix: "sg",
      ports: created.map((member) => member.port),
      nodes,
      masters,
      killMaster,
      awaitFailover,
      restart,
      keysPerMaster
    }
  })

/** A private three-master, three-replica cluster for the scope's lifetime. */
export const layer = (options?: Options): Layer.Layer<RedisTestCluster, RedisServerFailed | RedisServerNotFound> =>
  Layer.scoped(RedisTestCluster, makeCluster(options))

/** A cluster-mode `RedisClient` for the test cluster, under its prefix, with short timeouts. */
export const layerClient = (
  options?: Partial<RedisClient.Options>
): Layer.Layer<RedisClient.RedisClient, never, RedisTestCluster> =>
  Layer.scoped(
    RedisClient.RedisClient,
    Effect.flatMap(RedisTestCluster, (cluster) =>
      RedisClient.make({
        url: cluster.url,
        cluster: true,
        prefix: cluster.prefix,
        connectTimeout: "500 millis",
        commandTimeout: "1 second",
        ...options
      }))
  )

/** A test cluster and a client for it, in one layer. */
export const layerWithClient = (
  options?: Options
): Layer.Layer<RedisClient.RedisClient | RedisTestCluster, RedisServerFailed | RedisServerNotFound> =>
  Layer.provideMerge(layerClient(), layer(options))
