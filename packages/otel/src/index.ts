/** OTLP export of sg's traces, wired to the recorder: `layer`, `layerConfig`. */
export * as Otel from "./Otel.js"

/** Export settings from the standard OpenTelemetry variables and sg's own. */
export * as OtelConfig from "./OtelConfig.js"

/** The capped queue and batch sender, its metrics and its error. */
export * as OtlpExporter from "./OtlpExporter.js"

/** The mapping of sg's spans to the OpenTelemetry GenAI semantic conventions. */
export * as GenAi from "./GenAi.js"

/** A span as OTLP carries it. */
export * as OtlpSpan from "./OtlpSpan.js"
