/**
 * Where the trace store's keys live. Standalone (the default, shared with the Python `core.trace` module):
 * `<prefix>:trace:<id>`, `<prefix>:traces:active`, `<prefix>:exec:<id>`, `<prefix>:exec:index[...]`, one shard. On a
 * Redis Cluster each trace id belongs to one of `shards` shards (`fnv1a32(id) % shards`) and every key of that shard
 * carries the shard as its hash tag: `<prefix>:{<shard>}:trace:<id>`, `<prefix>:{<shard>}:traces:active`,
 * `<prefix>:{<shard>}:exec:<id>`, `<prefix>:{<shard>}:exec:index[...]` and the sweep's fence
 * `<prefix>:{<shard>}:fence:<lease>`; so a trace's hash, its shard of the active set and of the execution indexes share
 * one slot (one script or MULTI may touch them all), while the shards spread over the masters.
 */
import * as Config from "effect/Config"
import type { Status } from "../ExecutionRecord.js"

/** DESIGN.md's `SG_INDEX_SHARDS`: 16 shards on a cluster. */
export const defaultShards = 16

/**
 * `SG_INDEX_SHARDS` (16, 1 to 1024): on a Redis Cluster, how many shards the active set and the execution indexes are
 * split into. Fixed for a keyspace's life: a trace's keys are found by its shard.
 */
export const shardsConfig: Config.Config<number> = Config.integer("SG_INDEX_SHARDS").pipe(
  Config.withDefault(defaultShards),
  Config.validate({
    message: "SG_INDEX_SHARDS must be a whole number from 1 to 1024",
    validation: (n) => Number.isInteger(n) && n >= 1 && n <= 1024
  }),
  Config.withDescription("on a Redis Cluster, the shards of the active set and the execution indexes")
)

/** The keys of one keyspace. */
export interface Layout {
  readonly mode: "redis" | "redis-cluster"
  /** How many shards the active set and the execution indexes are split into (1 standalone). */
  readonly shards: number
  readonly shardOf: (id: string) => number
  readonly trace: (id: string) => string
  readonly active: (shard: number) => string
  /**
   * The highest epoch of lease `lease` a sweep of the shard has seen, on a cluster; standalone, the lease's own epoch
   * key (a standalone sweep checks the lease itself, atomically with its writes).
   */
  readonly fence: (shard: number, lease: string) => string
  readonly record: (id: string) => string
  readonly index: (shard: number) => string
  readonly status: (shard: number, status: Status) => string
  readonly agent: (shard: number, agent: string) => string
  readonly tenant: (shard: number, tenant: string) => string
}

/** FNV-1a, 32 bits, over the id's UTF-16 code units (an id is ASCII: its bytes): a shard anyone can recompute. */
export const fnv1a32 = (text: string): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash
}

/** The standalone keyspace under `prefix`: DESIGN.md's table, unchanged. */
export const standalone = (prefix: string): Layout => ({
  mode: "redis",
  shards: 1,
  shardOf: () => 0,
  trace: (id) => `${prefix}:trace:${id}`,
  active: () => `${prefix}:traces:active`,
  fence: (_, lease) => `${prefix}:lease:${lease}:epoch`,
  record: (id) => `${prefix}:exec:${id}`,
  index: () => `${prefix}:exec:index`,
  status: (_, status) => `${prefix}:exec:index:status:${status}`,
  agent: (_, agent) => `${prefix}:exec:index:agent:${agent}`,
  tenant: (_, tenant) => `${prefix}:exec:index:tenant:${tenant}`
})

/** The cluster keyspace under `prefix`, in `shards` shards. */
export const sharded = (prefix: string, shards: number): Layout => {
  const tagged = (shard: number) => `${prefix}:{${shard}}`
  const shardOf = (id: string) => fnv1a32(id) % shards
  return {
    mode: "redis-cluster",
    shards,
    shardOf,
    trace: (id) => `${tagged(shardOf(id))}:trace:${id}`,
    active: (shard) => `${tagged(shard)}:traces:active`,
    fence: (shard, lease) => `${tagged(shard)}:fence:${lease}`,
    record: (id) => `${tagged(shardOf(id))}:exec:${id}`,
    index: (shard) => `${tagged(shard)}:exec:index`,
    status: (shard, status) => `${tagged(shard)}:exec:index:status:${status}`,
    agent: (shard, agent) => `${tagged(shard)}:exec:index:agent:${agent}`,
    tenant: (shard, tenant) => `${tagged(shard)}:exec:index:tenant:${tenant}`
  }
}

/** The keyspace for a client: standalone on one server, `shards` shards on a cluster. */
export const layoutFor = (redis: { readonly prefix: string; readonly mode: "redis" | "redis-cluster" }, shards: number) =>
  redis.mode === "redis-cluster" ? sharded(redis.prefix, shards) : standalone(redis.prefix)
