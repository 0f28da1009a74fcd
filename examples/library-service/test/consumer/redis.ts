// The Redis stores (`REDIS_URL`, `SG_KEY_PREFIX`) over one connection, and the lease in the same Redis.
import * as LeaseStoreRedis from "@sg/leader/LeaseStore/Redis"
import { RedisClient } from "@sg/redis"
import * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Layer } from "effect"
import { main } from "./app.js"

main(
  Layer.mergeAll(TraceStoreRedis.layerConfig, ExecutionStoreRedis.layerConfig, LeaseStoreRedis.layer()).pipe(
    Layer.provide(RedisClient.layerConfig)
  )
)
