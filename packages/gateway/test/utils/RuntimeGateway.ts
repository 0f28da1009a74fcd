/**
 * A gateway over the real agent runtime for tests: the demo agents on the demo model, plus `stalling`, whose
 * calculator never answers (it says when it was called, through `calculatorCalled`), the memory store, real
 * breakers, the recorder (every success kept) and the watchdog under a memory lease, as `sg serve` runs them.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Agent, AgentRuntime, Demo, Provider } from "@sg/agent-runtime"
import { LeaderElection } from "@sg/leader"
import { ExecutionStore, Recorder, TraceIdGenerator, TraceLifecycle, TraceStore, TraceWatchdog } from "@sg/trace"
import { Duration, Effect, Layer, Queue } from "effect"
import * as Gateway from "../../src/Gateway.js"
import { breakers } from "./TestGateway.js"

/** Each call of the stalling agent's calculator offers its expression here, then waits forever. */
export const calculatorCalled = Effect.runSync(Queue.unbounded<string>())

/** An agent with the demo tools whose calculator is called and never answers. */
export const stalling: Agent.Agent = Agent.make({
  name: "stalling",
  instructions: "You calculate, slowly.",
  toolkit: Demo.toolkit,
  handlers: Demo.toolkit.of({
    ...Demo.handlers,
    calculator: ({ expression }) => Effect.zipRight(Queue.offer(calculatorCalled, expression), Effect.never)
  })
})

const runtime = AgentRuntime.layer({ agents: [...Demo.agents, stalling] }).pipe(
  Layer.provide(Provider.layerDemo()),
  Layer.orDie
)

const recording = Layer.unwrapEffect(
  Effect.map(ExecutionStore.ExecutionStore, (store) =>
    Recorder.layer({ save: store.save, sampleSuccess: 0, grace: Duration.millis(5) }))
)

const watchdog = TraceWatchdog.layer().pipe(
  Layer.provide(LeaderElection.layerMemory({ ttl: Duration.seconds(15) })),
  Layer.orDie
)

/**
 * The gateway over the runtime, on a free port. The recorder keeps no success (`sampleSuccess` 0), so what it keeps
 * is kept because it failed.
 */
export const layer = Gateway.layer().pipe(
  Layer.provide(recording),
  Layer.provideMerge(NodeHttpServer.layerTest),
  Layer.provideMerge(Layer.mergeAll(runtime, TraceLifecycle.layer(), watchdog)),
  Layer.provideMerge(Layer.mergeAll(TraceStore.layerMemory, ExecutionStore.layerMemory, breakers, TraceIdGenerator.layer))
)
