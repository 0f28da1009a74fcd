import { AgentRuntime } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { Effect, Layer } from "effect"

const program = Effect.gen(function*() {
  const runtime = yield* AgentRuntime.AgentRuntime
  console.log(yield* runtime.run({ input: "What time is it, and what is (2 + 3) * 4?" }))
  console.log(yield* runtime.run({ input: "research circuit breakers with 3 researchers" }))
})

// Share one CircuitBreaker layer with the rest of the app (the gateway reports its states at /api/status).
Effect.runPromise(program.pipe(
  Effect.provide(AgentRuntime.layerConfig.pipe(Layer.provideMerge(CircuitBreaker.layerConfig)))
))
