// profiling driver: runtime alone, one input, many runs
import { AgentRuntime, Demo } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { ExecutionStore, Recorder, TraceIdGenerator, TraceLifecycle, TraceStore } from "@sg/trace"
import { Effect, Layer, ManagedRuntime } from "effect"
const layer = AgentRuntime.layerConfig(Demo.agents).pipe(
  Layer.provideMerge(Recorder.layerStore), Layer.provideMerge(TraceLifecycle.layerConfig),
  Layer.provideMerge(Layer.mergeAll(CircuitBreaker.layerConfig, TraceIdGenerator.layer, TraceStore.layerMemoryConfig, ExecutionStore.layerMemoryConfig)), Layer.orDie)
const rt = ManagedRuntime.make(layer)
const input = process.argv[2]!
const n = Number(process.argv[3] ?? 3000)
const p = Effect.flatMap(AgentRuntime.AgentRuntime, (r) => r.run({ input })).pipe(Effect.orDie)
const turn = () => new Promise((r) => setImmediate(r))
for (let i = 0; i < 300; i++) { await rt.runPromise(p); await turn() }
const c = process.cpuUsage(); for (let i = 0; i < n; i++) { await rt.runPromise(p); await turn() }
const u = process.cpuUsage(c); console.log(input, ((u.user + u.system) / n).toFixed(0), "µs/run")
await rt.dispose()
