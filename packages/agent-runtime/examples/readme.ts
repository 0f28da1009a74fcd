import { AgentRuntime, Demo } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { Effect, Layer } from "effect"

const program = Effect.gen(function*() {
  const runtime = yield* AgentRuntime.AgentRuntime
  console.log(yield* runtime.run({ input: "What time is it, and what is (2 + 3) * 4?" }))
  console.log(yield* runtime.run({ input: "research circuit breakers with 3 researchers" }))
})

// The demo agents on the chain SG_MODEL names (pass your own `Agent.make(...)` list instead), over one CircuitBreaker
// layer shared with the rest of the app (the gateway reports its states at /api/status).
Effect.runPromise(program.pipe(
  Effect.provide(AgentRuntime.layerConfig(Demo.agents).pipe(Layer.provideMerge(CircuitBreaker.layerConfig)))
))
