/**
 * What `bench/trace-store.ts` and `bench/sweep.ts` import. The workspace root does not depend on `effect` or `ioredis`,
 * so a file under bench/ cannot import them by name; it reaches them through this module of @sg/trace instead.
 */
export { Effect, Layer, Logger, ManagedRuntime } from "effect"
export { RedisClient, RedisTestServer } from "@sg/redis"
export * as TraceId from "../../src/TraceId.js"
export * as TraceStore from "../../src/TraceStore.js"
export * as TraceStoreScripts from "../../src/internal/scripts.js"
