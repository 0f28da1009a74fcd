import * as Either from "effect/Either"

/** One node a cluster client starts from. */
export interface Seed {
  readonly host: string
  readonly port: number
}

/** Where a client connects: one server (its URL, as ioredis takes it), or a cluster's seed nodes and credentials. */
export type Target =
  | { readonly _tag: "Standalone"; readonly url: string }
  | {
    readonly _tag: "Cluster"
    readonly seeds: ReadonlyArray<Seed>
    readonly username: string | undefined
    readonly password: string | undefined
    readonly tls: boolean
  }

const schemes = /^(rediss?)(\+cluster)?:$/

/**
 * Reads `REDIS_URL`: one `redis://` or `rediss://` URL for a standalone server; with `cluster` (or any
 * `redis+cluster://` URL) a comma-separated list of seed nodes, sharing one scheme and one set of credentials, with
 * no database (a cluster has only database 0). Fails with a message naming what is wrong.
 */
export const parseTarget = (input: string, cluster: boolean): Either.Either<Target, string> => {
  const parts = input.split(",").map((part) => part.trim()).filter((part) => part !== "")
  if (parts.length === 0) return Either.left("expected a URL like redis://[:password@]host:port[/db]")
  const parsed: Array<URL> = []
  for (const part of parts) {
    let url: URL
    try {
      url = new URL(part)
    } catch {
      return Either.left(`${JSON.stringify(redactPart(part))} is not a URL like redis://[:password@]host:port`)
    }
    if (!schemes.test(url.protocol) || url.hostname === "") {
      return Either.left(`${JSON.stringify(redactPart(part))}: expected redis://, rediss:// or redis+cluster://host:port`)
    }
    parsed.push(url)
  }
  const isCluster = cluster || parsed.some((url) => url.protocol.includes("+cluster"))
  if (!isCluster) {
    if (parsed.length > 1) {
      return Either.left("several URLs name a cluster's seed nodes: set SG_REDIS_CLUSTER=1 or use redis+cluster:// URLs")
    }
    return Either.right({ _tag: "Standalone", url: parts[0]! })
  }
  const tls = parsed[0]!.protocol.startsWith("rediss")
  const seeds: Array<Seed> = []
  for (const url of parsed) {
    if (url.protocol.startsWith("rediss") !== tls) return Either.left("every seed node takes one scheme: all rediss or none")
    if (url.pathname !== "" && url.pathname !== "/" && url.pathname !== "/0") {
      return Either.left(`a Redis Cluster has only database 0, not ${url.pathname.slice(1)}`)
    }
    seeds.push({ host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: url.port === "" ? 6379 : Number(url.port) })
  }
  const withCredentials = parsed.find((url) => url.password !== "" || url.username !== "")
  return Either.right({
    _tag: "Cluster",
    seeds,
    username: withCredentials === undefined || withCredentials.username === ""
      ? undefined
      : decodeURIComponent(withCredentials.username),
    password: withCredentials === undefined || withCredentials.password === ""
      ? undefined
      : decodeURIComponent(withCredentials.password),
    tls
  })
}

const redactPart = (part: string): string => part.replace(/\/\/([^@/]*):[^@/]*@/, "//$1:***@")
