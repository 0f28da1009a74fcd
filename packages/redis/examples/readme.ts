import { RedisClient, RedisScript } from "@sg/redis"
import { Effect, Schema } from "effect"

const incrBy = RedisScript.make({
  name: "incrBy",
  numberOfKeys: 1,
  lua: "return redis.call('INCRBY', KEYS[1], ARGV[1])",
  reply: Schema.Number
})

const program = Effect.gen(function*() {
  const redis = yield* RedisClient.RedisClient
  yield* redis.use("SET", (client) => client.set(redis.key("greeting"), "hello"))
  return yield* redis.eval(incrBy, [redis.key("counter")], [5])
})

program.pipe(Effect.provide(RedisClient.layer({ url: "redis://127.0.0.1:6379" })), Effect.runPromise)
