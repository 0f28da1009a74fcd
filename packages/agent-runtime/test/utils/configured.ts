/**
 * Test helpers: the runtime `AgentRuntime.layerConfig(Demo.agents)` builds from a set of environment variables, a run
 * on it, and a real-time wait for something a fake server sees (which no `TestClock` drives).
 */
import { AgentRuntime, Demo } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { ConfigProvider, Effect, Layer } from "effect"

/** Runs `program` under `vars` as the environment. */
export const env = (vars: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

/** Provides the runtime `AgentRuntime.layerConfig` builds from `vars`, with fresh breakers. */
export const configured = (vars: Record<string, string>) =>
<A, E>(
  program: Effect.Effect<A, E, AgentRuntime.AgentRuntime | CircuitBreaker.CircuitBreaker>
) => program.pipe(Effect.provide(AgentRuntime.layerConfig(Demo.agents).pipe(Layer.provideMerge(CircuitBreaker.layer()))), env(vars))

/** Runs the default agent on `input`. */
export const run = (input: string, options?: AgentRuntime.RunOptions) =>
  Effect.flatMap(AgentRuntime.AgentRuntime, (runtime) => runtime.run({ input }, options))

/** Waits, in real time (every 10 ms, at most 10 s), until `ready()`; fails saying what it waited for otherwise. */
export const waitUntil = (ready: () => boolean, what = "the condition") =>
  Effect.async<void, Error>((resume) => {
    const deadline = performance.now() + 10_000
    const check = () => {
      if (ready()) return resume(Effect.void)
      if (performance.now() > deadline) return resume(Effect.fail(new Error(`timed out waiting for ${what}`)))
      timer = setTimeout(check, 10)
    }
    let timer = setTimeout(check, 0)
    return Effect.sync(() => clearTimeout(timer))
  })
