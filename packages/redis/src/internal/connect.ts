import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis"
import type { Target } from "./target.js"

/** The timeouts and overrides a client is built with. */
export interface Settings {
  readonly connectTimeoutMs: number
  readonly commandTimeoutMs: number
  readonly clientOptions: RedisOptions | undefined
  readonly clusterOptions: ClusterOptions | undefined
}

const backoff = (attempt: number) => Math.min(50 * 2 ** attempt, 2000)

/**
 * A client that is not connected yet: a `Redis` for one server, a `Cluster` over a cluster's seeds. A command waits at
 * most `commandTimeoutMs` once sent to a node, and is tried once more on a reconnection (standalone); on a cluster, a
 * command meeting a closed connection, `CLUSTERDOWN` or `TRYAGAIN` (a failover or a resharding under way) is sent again
 * every 100 ms, at most 16 times, after the slot map is refreshed, and a `MOVED` or `ASK` is followed at once.
 */
export const newClient = (target: Target, settings: Settings): Redis | Cluster => {
  const common = {
    connectTimeout: settings.connectTimeoutMs,
    commandTimeout: settings.commandTimeoutMs,
    maxRetriesPerRequest: 1
  }
  if (target._tag === "Standalone") {
    return new Redis(target.url, { lazyConnect: true, ...common, retryStrategy: backoff, ...settings.clientOptions })
  }
  return new Cluster(target.seeds.map((seed) => ({ host: seed.host, port: seed.port })), {
    lazyConnect: true,
    clusterRetryStrategy: backoff,
    maxRedirections: 16,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: settings.connectTimeoutMs,
    redisOptions: {
      ...common,
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.tls ? { tls: {} } : {}),
      ...settings.clientOptions
    },
    ...settings.clusterOptions
  })
}

/** The masters a client sees now, as `host:port`. */
export const mastersOf = (client: Redis | Cluster): ReadonlyArray<string> =>
  client instanceof Cluster
    ? client.nodes("master").map((node) => `${node.options.host}:${node.options.port}`).sort()
    : [`${client.options.host ?? "127.0.0.1"}:${client.options.port ?? 6379}`]
