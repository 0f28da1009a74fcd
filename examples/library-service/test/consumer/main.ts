// The memory stores, with no ioredis installed. The Redis layers are only named in types, to check that their
// declarations resolve.
import { LeaderElection } from "@sg/leader"
import { ExecutionStore, TraceStore } from "@sg/trace"
import type * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import type * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Layer } from "effect"
import { main } from "./app.js"

export type RedisLayers = [typeof TraceStoreRedis.layer, typeof ExecutionStoreRedis.layer]

main(Layer.mergeAll(TraceStore.layerMemory, ExecutionStore.layerMemory, LeaderElection.layerMemory()))
