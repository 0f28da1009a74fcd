import { RedisClient } from "@sg/redis"
import { CircuitBreaker } from "@sg/resilience"
import * as SharedBreakers from "@sg/resilience/CircuitBreaker/Redis"
import { Effect, Layer } from "effect"

// Every replica running this sees one state per breaker, through Redis; "trace-store" stays in this process.
const Breakers = SharedBreakers.layerConfig({ local: ["trace-store"] }).pipe(
  Layer.provide(RedisClient.layerConfig) // REDIS_URL, SG_KEY_PREFIX
)

const program = Effect.gen(function*() {
  const breakers = yield* CircuitBreaker.CircuitBreaker
  yield* breakers.protect("model:openai")(Effect.succeed("a call"))
  console.log(yield* breakers.status("model:openai")) // { state: "closed", shared: true, ... }
})

Effect.runPromise(program.pipe(Effect.provide(Breakers)))
