/**
 * A Lua script with a typed reply, registered once per client with ioredis' `defineCommand`
 * (EVALSHA, and EVAL again after NOSCRIPT when the server lost its script cache).
 */
import type * as Schema from "effect/Schema"

/**
 * A Lua script: its command name, how many of its arguments are keys (`"variable"`: as many as each call passes),
 * its source and its reply's schema.
 */
export interface RedisScript<A, I = unknown> {
  readonly name: string
  readonly numberOfKeys: number | "variable"
  readonly lua: string
  readonly reply: Schema.Schema<A, I>
}

/** Declares a script; run it with `RedisClient.eval`. */
export const make = <A, I>(options: {
  readonly name: string
  readonly numberOfKeys: number | "variable"
  readonly lua: string
  readonly reply: Schema.Schema<A, I>
}): RedisScript<A, I> => options
