/**
 * Export settings from the environment: the standard OpenTelemetry variables and sg's own.
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | unset | the traces URL, used as given |
 * | `OTEL_EXPORTER_OTLP_ENDPOINT` | unset | the collector's base URL: traces go to `<it>/v1/traces` |
 * | `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` | `http/protobuf` | or `http/json` (`grpc` is refused, by name) |
 * | `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS` | none | `key=value,...`, percent-decoded; values never logged |
 * | `OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT` | 10000 | milliseconds one request may take |
 * | `OTEL_SERVICE_NAME` | `sg` | `service.name` (else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) |
 * | `OTEL_RESOURCE_ATTRIBUTES` | none | `key=value,...`, percent-decoded |
 * | `OTEL_BSP_MAX_QUEUE_SIZE`, `_MAX_EXPORT_BATCH_SIZE`, `_SCHEDULE_DELAY` | 2048, 512, 5000 ms | the queue |
 * | `OTEL_SDK_DISABLED` | false | `true`: no export, whatever else is set |
 * | `SG_OTEL_CONTENT` | off | `on`: message contents, tool arguments and results are exported, cut and redacted |
 * | `SG_OTEL_SAMPLE_SUCCESS` | `SG_SAMPLE_SUCCESS` | share of successful traces exported, 0 to 1 |
 * | `SG_TRUNCATE` | 500 | characters kept of each exported text |
 *
 * With neither endpoint set (or `OTEL_SDK_DISABLED=true`), export is off. A bad value is a `ConfigError` naming the
 * variable.
 */
import * as Recorder from "@sg/trace/Recorder"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { Protocol } from "./OtlpExporter.js"

/** What export is configured to do. */
export interface Settings {
  readonly url: string
  readonly protocol: Protocol
  /** Sent with every request; their values are secrets (API keys) and are never logged. */
  readonly headers: Readonly<Record<string, string>>
  readonly serviceName: string
  readonly resourceAttributes: Readonly<Record<string, string>>
  readonly content: boolean
  readonly sampleSuccess: number
  readonly truncate: number
  readonly exportTimeout: Duration.Duration
  readonly maxQueueSize: number
  readonly maxBatchSize: number
  readonly scheduledDelay: Duration.Duration
}

const invalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

const httpUrl = (name: string, value: string): Effect.Effect<string, ConfigError.ConfigError> => {
  try {
    const url = new URL(value.trim())
    if (url.username !== "" || url.password !== "") {
      return Effect.fail(invalid(name, "must not hold credentials: put them in OTEL_EXPORTER_OTLP_HEADERS"))
    }
    if (url.protocol === "http:" || url.protocol === "https:") return Effect.succeed(url.toString())
  } catch {
    // reported below
  }
  return Effect.fail(invalid(name, "must be an http:// or https:// URL"))
}

/** The traces URL of a base endpoint: `<base>/v1/traces`, as the OTLP exporter specification says. */
export const tracesUrlOf = (base: string): string => `${base.replace(/\/+$/, "")}/v1/traces`

/**
 * `key=value` pairs separated by commas, each part trimmed and percent-decoded (the W3C Baggage form the OTel
 * variables use). The error names the variable and the entry, never a value.
 */
export const parsePairs = (
  name: string,
  text: string
): Effect.Effect<Record<string, string>, ConfigError.ConfigError> => {
  const pairs: Record<string, string> = {}
  const entries = text.split(",")
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!.trim()
    if (entry === "") continue
    const eq = entry.indexOf("=")
    const key = eq <= 0 ? "" : entry.slice(0, eq).trim()
    if (key === "") return Effect.fail(invalid(name, `entry ${i + 1} is not key=value`))
    try {
      pairs[decodeURIComponent(key)] = decodeURIComponent(entry.slice(eq + 1).trim())
    } catch {
      return Effect.fail(invalid(name, `entry ${i + 1} (${key}) is not valid percent-encoding`))
    }
  }
  return Effect.succeed(pairs)
}

const optionalString = (name: string) => Config.option(Config.string(name))

const firstOf = (...names: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    for (const name of names) {
      const value = yield* optionalString(name)
      if (Option.isSome(value) && value.value.trim() !== "") return Option.some({ name, value: value.value })
    }
    return Option.none<{ readonly name: string; readonly value: string }>()
  })

const positiveInteger = (name: string, fallback: number, min: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a whole number of at least ${min}`, validation: (n) => n >= min })
  )

/** Milliseconds from the first of `names` that is set. */
const milliseconds = (names: ReadonlyArray<string>, fallback: number, min: number) =>
  Effect.gen(function*() {
    const set = yield* firstOf(...names)
    if (Option.isNone(set)) return Duration.millis(fallback)
    return Duration.millis(yield* positiveInteger(set.value.name, fallback, min))
  })

/** `SG_OTEL_CONTENT` (off). */
export const content: Config.Config<boolean> = Config.boolean("SG_OTEL_CONTENT").pipe(
  Config.withDefault(false),
  Config.withDescription("export message contents, tool arguments and results over OTLP: on or off")
)

/** `SG_OTEL_SAMPLE_SUCCESS`: unset, the records' rate. */
export const sampleSuccess: Config.Config<Option.Option<number>> = Config.option(
  Config.number("SG_OTEL_SAMPLE_SUCCESS").pipe(
    Config.validate({
      message: "SG_OTEL_SAMPLE_SUCCESS must be a number from 0 to 1",
      validation: (rate) => rate >= 0 && rate <= 1
    }),
    Config.withDescription("share of successful traces exported over OTLP, 0 to 1 (unset: SG_SAMPLE_SUCCESS)")
  )
)

/** The settings, or `None` when export is off (no endpoint, or `OTEL_SDK_DISABLED=true`). */
export const settings: Effect.Effect<Option.Option<Settings>, ConfigError.ConfigError> = Effect.gen(function*() {
  const disabled = yield* Config.boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false))
  if (disabled) return Option.none()
  const endpoint = yield* firstOf("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
  if (Option.isNone(endpoint)) return Option.none()
  const { name, value } = endpoint.value
  const url = yield* httpUrl(name, name === "OTEL_EXPORTER_OTLP_ENDPOINT" ? tracesUrlOf(value.trim()) : value)

  const protocolSetting = yield* firstOf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
  let protocol: Protocol = "http/protobuf"
  if (Option.isSome(protocolSetting)) {
    const p = protocolSetting.value.value.trim()
    if (p === "http/protobuf" || p === "http/json") protocol = p
    else {
      return yield* Effect.fail(invalid(
        protocolSetting.value.name,
        p === "grpc" ? "grpc is not supported: use http/protobuf or http/json" : "must be http/protobuf or http/json"
      ))
    }
  }

  const headers: Record<string, string> = {}
  for (const headerName of ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"]) {
    const raw = yield* Config.option(Config.redacted(headerName))
    if (Option.isSome(raw)) Object.assign(headers, yield* parsePairs(headerName, Redacted.value(raw.value)))
  }
  for (const key of Object.keys(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key)) {
      return yield* Effect.fail(invalid("OTEL_EXPORTER_OTLP_HEADERS", `${key} is not a valid header name`))
    }
  }

  const resourceAttributes = yield* Effect.flatMap(
    optionalString("OTEL_RESOURCE_ATTRIBUTES"),
    Option.match({
      onNone: () => Effect.succeed({} as Record<string, string>),
      onSome: (text) => parsePairs("OTEL_RESOURCE_ATTRIBUTES", text)
    })
  )
  const serviceName = Option.getOrElse(
    Option.filter(yield* optionalString("OTEL_SERVICE_NAME"), (s) => s.trim() !== ""),
    () => resourceAttributes["service.name"] ?? "sg"
  )

  const recorder = yield* Recorder.config
  const rate = yield* sampleSuccess
  const maxQueueSize = yield* positiveInteger("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1)
  const maxBatchSize = yield* positiveInteger("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1)
  return Option.some({
    url,
    protocol,
    headers,
    serviceName: serviceName.trim(),
    resourceAttributes,
    content: yield* content,
    sampleSuccess: Option.getOrElse(rate, () => recorder.sampleSuccess),
    truncate: recorder.truncate,
    exportTimeout: yield* milliseconds(["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"], 10_000, 1),
    maxQueueSize,
    maxBatchSize: Math.min(maxBatchSize, maxQueueSize),
    scheduledDelay: yield* milliseconds(["OTEL_BSP_SCHEDULE_DELAY"], 5000, 0)
  })
})
