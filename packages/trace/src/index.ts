export * as TraceId from "./TraceId.js"
export * as TraceIdGenerator from "./TraceIdGenerator.js"

/** A trace's lifecycle record, its states and timestamp format. */
export * as TraceRecord from "./TraceRecord.js"

/** The trace lifecycle store (Redis and memory) and its orphan sweep. */
export * as TraceStore from "./TraceStore.js"

/** Why a TraceStore call failed. */
export * from "./TraceStoreError.js"

/** The execution record of a trace: runs, tool calls, model calls, timing, status, tokens. */
export * as ExecutionRecord from "./ExecutionRecord.js"

/** The span conventions execution records are reduced from (agent runs, tool calls, model calls). */
export * as ExecutionSpan from "./ExecutionSpan.js"

/** Where execution records are kept: the interface both stores share, its options and errors. */
export * as ExecutionStore from "./ExecutionStore.js"

/** The recording tracer: collects each trace's spans and saves its sampled execution record off the request path. */
export * as Recorder from "./Recorder.js"

/** Masking credentials in recorded texts. */
export * as Redaction from "./Redaction.js"

/** Which execution records are kept, decided from the trace id. */
export * as Sampling from "./Sampling.js"

/** The trace the current request belongs to. */
export * as CurrentTrace from "./CurrentTrace.js"

/** Best-effort lifecycle writes for the request path, behind the trace store's breaker. */
export * as TraceLifecycle from "./TraceLifecycle.js"

/** The orphan watchdog: the sweep loop one replica runs under the lease. */
export * as TraceWatchdog from "./TraceWatchdog.js"

/** The recorder's export hook: where the spans of each sampled trace go when it ends (`@sg/otel` provides one). */
export * as TraceExporter from "./TraceExporter.js"

/** The texts records store: values stringified, redacted and cut, errors described. */
export * as RecordText from "./RecordText.js"
