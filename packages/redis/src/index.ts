/** The Redis connection sg shares, its errors and scripts. */
export * as RedisClient from "./RedisClient.js"

/** Why a Redis call failed. */
export * from "./RedisError.js"

/** Typed Lua scripts. */
export * as RedisScript from "./RedisScript.js"

