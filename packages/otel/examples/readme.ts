import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { Otel } from "@sg/otel"
import { ExecutionSpan, Recorder } from "@sg/trace"
import { Effect, Layer } from "effect"

// One agent run with a tool call: exported as `invoke_agent weather` with an `execute_tool forecast` child.
const program = Effect.succeed({ city: "Paris", sky: "rain" }).pipe(
  ExecutionSpan.tool("forecast", { input: { city: "Paris" } }),
  ExecutionSpan.agentRun({ agentId: "weather", conversationId: "c-42" })
)

// The recorder decides about each trace when it ends (errors always, successes at `sampleSuccess`) and hands the
// ones it keeps to the exporter provided below it. `Otel.layerConfig` reads the OTEL_* variables instead.
const Export = Otel.layer({ url: "http://localhost:4318/v1/traces", serviceName: "weather", sampleSuccess: 1 })
const Tracing = Recorder.layer({ save: () => Effect.void, sampleSuccess: 1 }).pipe(
  Layer.provide(Export),
  Layer.provide(FetchHttpClient.layer)
)

// Closing the layer flushes the recorder, then the exporter's queue.
Effect.runPromise(program.pipe(Effect.provide(Tracing)))
