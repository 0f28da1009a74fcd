/**
 * Helpers for export tests: run a program under a recorder and OTLP export to a test receiver (both flushed before the
 * answer), with the ingress' shape of trace (a server span parented on a remote placeholder span of the trace id).
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { AgentRuntime } from "@sg/agent-runtime"
import { Otel, OtlpExporter } from "@sg/otel"
import * as OtlpTestReceiver from "@sg/otel/OtlpTestReceiver"
import { CircuitBreaker } from "@sg/resilience"
import { CurrentTrace, type ExecutionRecord, Recorder, TraceId } from "@sg/trace"
import { Effect, type Exit, Layer, Option, type Scope, Tracer } from "effect"

/** What a run under export left: the receiver's spans, the saved records and how the program ended. */
export interface Exported<A, E> {
  readonly exit: Exit.Exit<A, E>
  readonly spans: ReadonlyArray<OtlpTestReceiver.ReceivedSpan>
  readonly records: ReadonlyArray<ExecutionRecord.ExecutionRecord>
  readonly errors: ReadonlyArray<string>
}

/** Runs `program` under a recorder (every success kept unless said otherwise) exporting to `receiver`. */
export const exportedTo = <A, E, R>(
  receiver: OtlpTestReceiver.Receiver,
  program: Effect.Effect<A, E, R>,
  options?: { readonly otel?: Partial<Otel.Options>; readonly recorder?: Partial<Recorder.Options> }
): Effect.Effect<Exported<A, E>, never, Exclude<R, Recorder.Recorder | OtlpExporter.OtlpExporter>> =>
  Effect.gen(function*() {
    const records: Array<ExecutionRecord.ExecutionRecord> = []
    const save = (record: ExecutionRecord.ExecutionRecord) => Effect.sync(() => void records.push(record))
    const layer = Recorder.layer({ save, sampleSuccess: 1, ...options?.recorder }).pipe(
      Layer.provideMerge(
        Otel.layer({ url: receiver.url, scheduledDelay: "20 millis", sampleSuccess: 1, ...options?.otel })
      ),
      Layer.provide(FetchHttpClient.layer)
    )
    const exit = yield* Effect.gen(function*() {
      const exit = yield* Effect.exit(program)
      yield* (yield* Recorder.Recorder).flush
      yield* (yield* OtlpExporter.OtlpExporter).flush
      return exit
    }).pipe(Effect.provide(layer))
    return { exit, spans: yield* receiver.spans, records, errors: yield* receiver.errors }
  }) as Effect.Effect<Exported<A, E>, never, Exclude<R, Recorder.Recorder | OtlpExporter.OtlpExporter>>

/** `exportedTo` a receiver of its own. */
export const exported = <A, E, R>(
  program: Effect.Effect<A, E, R>,
  options?: { readonly otel?: Partial<Otel.Options>; readonly recorder?: Partial<Recorder.Options> }
): Effect.Effect<Exported<A, E>, never, Scope.Scope | Exclude<R, Recorder.Recorder | OtlpExporter.OtlpExporter>> =>
  Effect.flatMap(OtlpTestReceiver.make, (receiver) => exportedTo(receiver, program, options))

/** A trace id from 32 hex digits. */
export const traceIdOf = (hex: string): TraceId.TraceId => Option.getOrThrow(TraceId.fromHex(hex))

/**
 * Runs `effect` as the gateway's ingress does: in a server span `http.server POST` whose parent is a remote span of
 * `traceId` (the caller's `parentId`, else the placeholder: the id's low 64 bits), with `CurrentTrace` provided.
 */
export const asRequest = (traceId: TraceId.TraceId, parentId?: string) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, Exclude<R, CurrentTrace.CurrentTrace>> => {
  const hex = TraceId.toHex(traceId)
  const parent = Tracer.externalSpan({ traceId: hex, spanId: parentId ?? hex.slice(16) })
  return Effect.useSpan("http.server POST", { parent, kind: "server", captureStackTrace: false }, (span) => {
    span.attribute("http.request.method", "POST")
    span.attribute("http.route", "/v1/runs")
    return effect.pipe(
      Effect.withParentSpan(span),
      Effect.tap(() => Effect.sync(() => span.attribute("http.response.status_code", 200))),
      CurrentTrace.withTraceId(traceId)
    )
  }) as Effect.Effect<A, E, Exclude<R, CurrentTrace.CurrentTrace>>
}

/** The demo runtime (assistant and researcher on the demo model) with fresh breakers. */
export const demoRuntime = AgentRuntime.layerDemo().pipe(Layer.provideMerge(CircuitBreaker.layer()))

/** One demo run of `input`. */
export const demoRun = (input: string, conversationId?: string) =>
  Effect.flatMap(
    AgentRuntime.AgentRuntime,
    (runtime) => runtime.run(conversationId === undefined ? { input } : { input, conversation_id: conversationId })
  )

/** The spans by name; fails the test when one is missing. */
export const byName = (spans: ReadonlyArray<OtlpTestReceiver.ReceivedSpan>) => (name: string) => {
  const found = spans.filter((span) => span.name === name)
  if (found.length === 0) throw new Error(`no span named ${name}; got ${spans.map((s) => s.name).join(", ")}`)
  return found
}
