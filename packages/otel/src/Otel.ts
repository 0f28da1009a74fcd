/**
 * OTLP export of sg's traces, wired to the recorder: the layers provide the `TraceExporter` hook of `@sg/trace` and
 * the `OtlpExporter` behind it. Provide them **below** the `Recorder` (where it is built), so the recorder hands each
 * trace it samples to the exporter when the trace ends, and so the exporter's flush runs after the recorder's on
 * shutdown:
 *
 * ```ts
 * Recorder.layer({ save }).pipe(Layer.provide(Otel.layerConfig), Layer.provide(FetchHttpClient.layer))
 * ```
 *
 * Sampling is the records' (decided by the recorder at the end of the trace): a trace is exported exactly when its
 * record is kept, unless `sampleSuccess` (`SG_OTEL_SAMPLE_SUCCESS`) sets another rate for successes. Spans are mapped
 * by `GenAi.toOtlpSpans`, queued and sent by `OtlpExporter`: nothing of that runs on the request path.
 */
import * as OtlpResource from "@effect/opentelemetry/OtlpResource"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Redaction from "@sg/trace/Redaction"
import * as TraceExporter from "@sg/trace/TraceExporter"
import * as Cause from "effect/Cause"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as GenAi from "./GenAi.js"
import * as OtelConfig from "./OtelConfig.js"
import * as OtlpExporter from "./OtlpExporter.js"
import type { OtlpSpan } from "./OtlpSpan.js"

/** What to export, where. Only `url` is required. */
export interface Options extends Omit<OtlpExporter.Options, "resource" | "schemaUrl"> {
  /** `service.name` (`sg`). */
  readonly serviceName?: string | undefined
  /** More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`). */
  readonly resourceAttributes?: Readonly<Record<string, string>> | undefined
  /** Share of successful traces exported, 0 to 1 (`SG_OTEL_SAMPLE_SUCCESS`, else the records' 0.1). */
  readonly sampleSuccess?: number | undefined
  /** Export message contents, tool arguments and results (false). */
  readonly content?: boolean | undefined
  /** Characters kept of each exported text (500). */
  readonly truncate?: number | undefined
  /** Runs over every exported text before it is cut (`Redaction.defaults`). */
  readonly redact?: Redaction.Redactor | undefined
  /** The mapping from a trace's spans to OTLP spans (`GenAi.toOtlpSpans`). */
  readonly toSpans?: ((trace: TraceExporter.EndedTrace, options: GenAi.Options) => ReadonlyArray<OtlpSpan>) | undefined
}

/** The resource spans are sent under: `service.name`, the given attributes and sg's telemetry SDK name. */
export const resourceOf = (
  serviceName: string,
  attributes: Readonly<Record<string, string>> = {}
): OtlpResource.Resource => {
  const { "service.name": _name, "service.version": version, ...rest } = attributes
  return OtlpResource.make({
    serviceName,
    serviceVersion: version,
    attributes: { ...rest, "telemetry.sdk.name": "@sg/otel", "telemetry.sdk.language": "nodejs" }
  })
}

/** Starts export in the current scope; the hook to give the recorder and the exporter behind it. */
export const make = (options: Options): Effect.Effect<
  { readonly hook: TraceExporter.Service; readonly exporter: OtlpExporter.Service },
  never,
  HttpClient.HttpClient | Scope.Scope
> =>
  Effect.gen(function*() {
    const sampleSuccess = options.sampleSuccess ?? 0.1
    const mapping: GenAi.Options = {
      content: options.content ?? false,
      truncate: options.truncate ?? 500,
      redact: options.redact ?? Redaction.defaults,
      sampleSuccess
    }
    const toSpans = options.toSpans ?? GenAi.toOtlpSpans
    const exporter = yield* OtlpExporter.make({
      ...options,
      resource: resourceOf(options.serviceName ?? "sg", options.resourceAttributes),
      schemaUrl: GenAi.schemaUrl
    })
    const hook: TraceExporter.Service = {
      sampleSuccess,
      offer: (trace) => {
        if (exporter.room() <= 0) return exporter.drop(trace.spans.length, "queue_full")
        let spans: ReadonlyArray<OtlpSpan>
        try {
          spans = toSpans(trace, mapping)
        } catch (defect) {
          return exporter.drop(trace.spans.length, "invalid", Cause.die(defect))
        }
        exporter.offer(spans)
      }
    }
    return { hook, exporter }
  })

/** Exports the traces of the recorder built over it to `options.url`. */
export const layer = (
  options: Options
): Layer.Layer<OtlpExporter.OtlpExporter | TraceExporter.TraceExporter, never, HttpClient.HttpClient> =>
  Layer.scopedContext(Effect.map(make(options), ({ exporter, hook }) =>
    Context.make(OtlpExporter.OtlpExporter, exporter).pipe(Context.add(TraceExporter.TraceExporter, hook))))

/** The layer of configured settings, with a start-up line that names the endpoint but no header value. */
export const layerSettings = (
  settings: OtelConfig.Settings,
  extra?: Partial<Options>
): Layer.Layer<OtlpExporter.OtlpExporter | TraceExporter.TraceExporter, never, HttpClient.HttpClient> => {
  const options: Options = {
    url: settings.url,
    protocol: settings.protocol,
    headers: settings.headers,
    serviceName: settings.serviceName,
    resourceAttributes: settings.resourceAttributes,
    sampleSuccess: settings.sampleSuccess,
    content: settings.content,
    truncate: settings.truncate,
    exportTimeout: settings.exportTimeout,
    maxQueueSize: settings.maxQueueSize,
    maxBatchSize: settings.maxBatchSize,
    scheduledDelay: settings.scheduledDelay,
    ...extra
  }
  const headerNames = Object.keys(settings.headers)
  const announce = Effect.logInfo(
    `OTLP export to ${Redaction.defaults(settings.url)} (${settings.protocol}, service ${settings.serviceName}); ` +
      `successes exported at ${settings.sampleSuccess}, contents ${settings.content ? "on" : "off"}` +
      (headerNames.length > 0 ? `; headers ${headerNames.join(", ")}` : "")
  ).pipe(Effect.annotateLogs({ package: "@sg/otel" }))
  return Layer.provideMerge(layer(options), Layer.effectDiscard(announce))
}

/**
 * Export configured from the environment (see `OtelConfig`). With no endpoint it starts nothing and provides only a
 * disabled `OtlpExporter`; with one it also provides the `TraceExporter` hook.
 */
export const layerConfig: Layer.Layer<OtlpExporter.OtlpExporter, ConfigError.ConfigError, HttpClient.HttpClient> =
  Layer.unwrapEffect(Effect.map(OtelConfig.settings, (settings) =>
    Option.match(settings, {
      onNone: () => Layer.succeed(OtlpExporter.OtlpExporter, OtlpExporter.disabled),
      onSome: (s) => layerSettings(s)
    })))
