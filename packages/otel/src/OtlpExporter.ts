/**
 * The OTLP/HTTP trace exporter: a capped queue of spans, sent in batches by one fiber, best effort.
 *
 * - `offer` only pushes onto the queue (it never waits, never does I/O): past `maxQueueSize` spans, what does not fit
 *   is dropped and counted (`queue_full`). So a dead or slow collector never slows whoever offers, and memory stays at
 *   most the queue plus the one batch in flight.
 * - The sender takes up to `maxBatchSize` spans as soon as that many wait, or every `scheduledDelay`, and posts them
 *   (`http/json` through @effect/opentelemetry's `OtlpSerialization`, `http/protobuf` with protobufjs' writer, see
 *   `internal/protobuf.ts`) with a deadline of
 *   `exportTimeout`. A transport failure, a timeout, 429, 502, 503 or 504 is retried `maxRetries` times (honouring
 *   `Retry-After` up to 30 seconds, else backing off from 500 ms), then the batch is dropped (`export_failed`); any
 *   other answer drops it at once (`rejected`). One export at a time: while one is slow the queue fills and drops.
 *   After a failed batch the sender pauses (1 s, doubling to 5 s) instead of spinning on a collector that fails.
 * - Counted in `sg_otel_spans_exported_total` and `sg_otel_spans_dropped_total{reason}`, the queue in
 *   `sg_otel_queue_spans`; one warning per burst of drops, and one line when export works again.
 * - Closing the scope flushes the queue within `shutdownTimeout`; what is left is dropped (`shutdown`).
 *
 * Hand-written rather than `@effect/opentelemetry`'s own exporter (its `OtlpTracer` internals): that one exports every
 * span as it ends (no tail sampling), keeps an unbounded buffer, forks an export per full batch without limit, has no
 * request deadline, drops silently for a minute after a failure and counts nothing.
 */
import * as OtlpResource from "@effect/opentelemetry/OtlpResource"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Redaction from "@sg/trace/Redaction"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { encodeTraces } from "./internal/protobuf.js"
import type { OtlpSpan } from "./OtlpSpan.js"

/** The OTLP/HTTP encodings. */
export type Protocol = "http/protobuf" | "http/json"

/** Where and how spans are sent. Only `url` and `resource` are required. */
export interface Options {
  /** The traces endpoint, e.g. `http://collector:4318/v1/traces`. */
  readonly url: string
  /** `http/protobuf` (default) or `http/json`. */
  readonly protocol?: Protocol | undefined
  /** Sent with every request (`OTEL_EXPORTER_OTLP_HEADERS`). */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Who sends: `service.name` and the other resource attributes. */
  readonly resource: OtlpResource.Resource
  /** The instrumentation scope spans are reported under. */
  readonly scope?: { readonly name: string; readonly version?: string } | undefined
  /** The schema URL of the spans' conventions. */
  readonly schemaUrl?: string | undefined
  /** Spans that may wait; past this, new ones are dropped (2048, `OTEL_BSP_MAX_QUEUE_SIZE`). */
  readonly maxQueueSize?: number | undefined
  /** Spans per request (512, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`). */
  readonly maxBatchSize?: number | undefined
  /** Longest a span waits for a batch to fill (5 seconds, `OTEL_BSP_SCHEDULE_DELAY`). */
  readonly scheduledDelay?: Duration.DurationInput | undefined
  /** Deadline of one request, response included (10 seconds, `OTEL_EXPORTER_OTLP_TIMEOUT`). */
  readonly exportTimeout?: Duration.DurationInput | undefined
  /** Retries of a batch after a retryable failure (2). */
  readonly maxRetries?: number | undefined
  /** How long closing the scope may spend sending what is queued (5 seconds). */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/** The defaults of the options that have one. */
export const defaults = {
  protocol: "http/protobuf" as Protocol,
  maxQueueSize: 2048,
  maxBatchSize: 512,
  scheduledDelay: Duration.seconds(5),
  exportTimeout: Duration.seconds(10),
  maxRetries: 2,
  shutdownTimeout: Duration.seconds(5)
} as const

/** Why spans were not exported. */
export type DropReason = "queue_full" | "export_failed" | "rejected" | "invalid" | "shutdown"

/** Every drop reason, for dashboards and tests. */
export const dropReasons: ReadonlyArray<DropReason> = ["queue_full", "export_failed", "rejected", "invalid", "shutdown"]

/** Spans the collector accepted. */
export const spansExported = Metric.counter("sg_otel_spans_exported_total", {
  description: "spans exported over OTLP and accepted by the collector",
  incremental: true
})

/** Spans lost, tagged with `reason` (a `DropReason`). */
export const spansDropped = Metric.counter("sg_otel_spans_dropped_total", {
  description: "spans not exported over OTLP: queue full, collector failing or rejecting, or shut down first",
  incremental: true
})

/** Spans waiting in the queue (at most `maxQueueSize`). */
export const queueSize = Metric.gauge("sg_otel_queue_spans", {
  description: "spans waiting to be exported over OTLP"
})

/** A request to the collector failed. Never escapes the exporter: it is the cause in its logs. */
export class OtlpExportError extends Schema.TaggedError<OtlpExportError>("@sg/otel/OtlpExportError")(
  "OtlpExportError",
  {
    url: Schema.String,
    status: Schema.optional(Schema.Number),
    retryable: Schema.Boolean,
    retryAfter: Schema.optional(Schema.Duration),
    message: Schema.String,
    cause: Schema.optional(Schema.Defect)
  }
) {}

/** What the exporter holds and has done. */
export interface Stats {
  readonly queued: number
  readonly exported: number
  readonly dropped: number
  /** Whether the last spans it handled were dropped (a burst of failures is going on). */
  readonly failing: boolean
}

/** The running exporter. */
export interface Service {
  readonly enabled: boolean
  /** The traces endpoint (a password in it masked). */
  readonly url: string
  /** Queues spans; what does not fit is dropped (`queue_full`). Never blocks, never throws. */
  readonly offer: (spans: ReadonlyArray<OtlpSpan>) => void
  /** Room left in the queue, in spans. */
  readonly room: () => number
  /** Counts spans lost before they reached the queue. */
  readonly drop: (n: number, reason: DropReason, cause?: Cause.Cause<unknown>) => void
  /** Sends everything queued now. */
  readonly flush: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

/** The OTLP exporter of the current scope (a disabled one when export is off). */
export class OtlpExporter extends Context.Tag("@sg/otel/OtlpExporter")<OtlpExporter, Service>() {}

/** The exporter when export is off: it exports nothing and counts nothing. */
export const disabled: Service = {
  enabled: false,
  url: "",
  offer: () => {},
  room: () => 0,
  drop: () => {},
  flush: Effect.void,
  stats: Effect.succeed({ queued: 0, exported: 0, dropped: 0, failing: false })
}

const labels = new Map<DropReason, ReadonlyArray<MetricLabel.MetricLabel>>()
const labelsOf = (reason: DropReason) => {
  let found = labels.get(reason)
  if (found === undefined) {
    found = [MetricLabel.make("reason", reason)]
    labels.set(reason, found)
  }
  return found
}

/** An error's first line, and that of the innermost cause it wraps (`connect ECONNREFUSED …`) when there is one. */
const firstLine = (error: unknown): string => {
  const lineOf = (e: unknown) => (e instanceof Error ? e.message : String(e)).split("\n", 1)[0]!
  let inner: unknown = error
  for (let depth = 0; depth < 8 && inner instanceof Error && inner.cause !== undefined; depth++) inner = inner.cause
  return inner === error ? lineOf(error) : `${lineOf(error)}: ${lineOf(inner)}`
}

const retryableStatus = new Set([429, 502, 503, 504])
const maxRetryAfter = Duration.seconds(30)

const retryAfterOf = (header: string | undefined): Duration.Duration | undefined => {
  if (header === undefined) return undefined
  const seconds = Number(header)
  return Number.isFinite(seconds) && seconds >= 0 ? Duration.min(Duration.seconds(seconds), maxRetryAfter) : undefined
}

/** Starts the exporter in the current scope: its sender fiber, and a flush when the scope closes. */
export const make = (
  options: Options
): Effect.Effect<Service, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const o = {
      protocol: options.protocol ?? defaults.protocol,
      maxQueueSize: Math.max(1, options.maxQueueSize ?? defaults.maxQueueSize),
      maxBatchSize: Math.max(1, options.maxBatchSize ?? defaults.maxBatchSize),
      scheduledDelay: Duration.decode(options.scheduledDelay ?? defaults.scheduledDelay),
      exportTimeout: Duration.decode(options.exportTimeout ?? defaults.exportTimeout),
      maxRetries: Math.max(0, options.maxRetries ?? defaults.maxRetries),
      shutdownTimeout: Duration.decode(options.shutdownTimeout ?? defaults.shutdownTimeout)
    }
    const json = yield* Effect.provide(OtlpSerialization.OtlpSerialization, OtlpSerialization.layerJson)
    const client = HttpClient.withTracerPropagation(yield* HttpClient.HttpClient, false)
    const request = HttpClientRequest.post(options.url, {
      headers: { ...options.headers, "user-agent": "sg-otel/0.1.0" },
      acceptJson: o.protocol === "http/json"
    })
    const scope = options.scope ?? { name: "@sg/otel", version: "0.1.0" }
    // The endpoint as logs show it: a password in it is masked.
    const shown = Redaction.defaults(options.url)

    let queue: Array<OtlpSpan> = []
    let exported = 0
    let dropped = 0
    let closed = false
    let failedBatches = 0
    const wake = yield* Effect.makeLatch(false)
    const lock = yield* Effect.makeSemaphore(1)

    // Drops since the last log line, and whether we are inside a burst of them.
    let pendingDrops = 0
    let lastReason: DropReason = "queue_full"
    let lastCause: Cause.Cause<unknown> = Cause.empty
    let inBurst = false
    let burstDrops = 0
    let exportedSinceDrop = false
    const drop = (n: number, reason: DropReason, cause?: Cause.Cause<unknown>) => {
      if (n <= 0) return
      spansDropped.unsafeUpdate(n, labelsOf(reason))
      dropped += n
      pendingDrops += n
      lastReason = reason
      if (cause !== undefined) lastCause = cause
      exportedSinceDrop = false
    }
    for (const reason of dropReasons) spansDropped.unsafeUpdate(0, labelsOf(reason))
    spansExported.unsafeUpdate(0, [])

    const offer = (spans: ReadonlyArray<OtlpSpan>) => {
      if (closed) return drop(spans.length, "shutdown")
      const room = o.maxQueueSize - queue.length
      if (room < spans.length) {
        drop(spans.length - Math.max(0, room), "queue_full")
        if (room <= 0) return
        for (let i = 0; i < room; i++) queue.push(spans[i]!)
      } else {
        for (const span of spans) queue.push(span)
      }
      queueSize.unsafeUpdate(queue.length, [])
      if (queue.length >= o.maxBatchSize) wake.unsafeOpen()
    }

    const logBurst = Effect.suspend(() => {
      if (pendingDrops > 0) {
        const n = pendingDrops
        pendingDrops = 0
        burstDrops += n
        if (inBurst) return Effect.void
        inBurst = true
        // One line: the error's own message (its cause chain and stack would be a screenful per burst).
        const why = Cause.isEmpty(lastCause) ? "" : `: ${Redaction.defaults(firstLine(Cause.squash(lastCause)))}`
        return Effect.logWarning(
          `OTLP export dropped ${n} spans (${lastReason}${why}); further drops are counted in ` +
            "sg_otel_spans_dropped_total"
        ).pipe(Effect.annotateLogs({ reason: lastReason, dropped: n, url: shown }))
      }
      if (inBurst && exportedSinceDrop) {
        inBurst = false
        const n = burstDrops
        burstDrops = 0
        lastCause = Cause.empty
        return Effect.logInfo(`OTLP export to ${shown} works again, after ${n} spans were dropped`)
      }
      return Effect.void
    })

    const fail = (message: string, fields?: Partial<Pick<OtlpExportError, "status" | "retryAfter" | "cause">>) =>
      new OtlpExportError({
        url: shown,
        retryable: fields?.status === undefined || retryableStatus.has(fields.status),
        message,
        ...fields
      })

    const sendOnce = (body: HttpBody.HttpBody) =>
      client.execute(HttpClientRequest.setBody(request, body)).pipe(
        Effect.mapError((error) => fail(`OTLP export to ${shown} failed: ${error.message}`, { cause: error })),
        Effect.flatMap((response) =>
          // The body is read in full (and dropped), so the connection can be reused.
          Effect.flatMap(Effect.orElseSucceed(response.arrayBuffer, () => undefined), () =>
            response.status >= 200 && response.status < 300
              ? Effect.void
              : Effect.fail(fail(`OTLP export to ${shown} answered HTTP ${response.status}`, {
                status: response.status,
                ...Option.match(Option.fromNullable(retryAfterOf(response.headers["retry-after"])), {
                  onNone: () => ({}),
                  onSome: (retryAfter) => ({ retryAfter })
                })
              })))
        ),
        Effect.timeoutFail({
          duration: o.exportTimeout,
          onTimeout: () =>
            fail(`OTLP export to ${shown} did not answer within ${Duration.format(o.exportTimeout)}`)
        })
      )

    const exportBatch = (batch: Array<OtlpSpan>): Effect.Effect<void> =>
      Effect.gen(function*() {
        const body = o.protocol === "http/json"
          ? json.traces({
            resourceSpans: [{
              resource: options.resource,
              scopeSpans: [{ scope, spans: batch, ...(options.schemaUrl ? { schemaUrl: options.schemaUrl } : {}) }]
            }]
          })
          : HttpBody.uint8Array(
            encodeTraces({ resource: options.resource, scope, schemaUrl: options.schemaUrl, spans: batch }),
            "application/x-protobuf"
          )
        for (let attempt = 0;; attempt++) {
          const result = yield* Effect.either(sendOnce(body))
          if (result._tag === "Right") {
            spansExported.unsafeUpdate(batch.length, [])
            exported += batch.length
            exportedSinceDrop = true
            failedBatches = 0
            return
          }
          const error = result.left
          if (!error.retryable || attempt >= o.maxRetries || closed) {
            failedBatches++
            return drop(batch.length, error.retryable ? "export_failed" : "rejected", Cause.fail(error))
          }
          yield* Effect.sleep(error.retryAfter ?? Duration.millis(500 * 2 ** attempt))
        }
      }).pipe(Effect.onInterrupt(() => Effect.sync(() => drop(batch.length, "shutdown"))))

    const take = () => {
      let batch: Array<OtlpSpan>
      if (queue.length <= o.maxBatchSize) {
        batch = queue
        queue = []
      } else {
        batch = queue.splice(0, o.maxBatchSize)
      }
      queueSize.unsafeUpdate(queue.length, [])
      return batch
    }

    const flush = lock.withPermits(1)(Effect.suspend(function loop(): Effect.Effect<void> {
      return queue.length === 0 ? Effect.void : Effect.zipRight(exportBatch(take()), Effect.suspend(loop))
    })).pipe(Effect.zipRight(logBurst), Effect.withTracerEnabled(false))

    // After batches failed in a row, the sender pauses (1 s, doubling up to 5 s) rather than spin on a failing or
    // rejecting collector; the queue meanwhile fills and drops as it would anyway.
    const sender = Effect.gen(function*() {
      if (failedBatches > 0) yield* Effect.sleep(Duration.seconds(Math.min(5, 2 ** (failedBatches - 1))))
      if (queue.length < o.maxBatchSize) yield* Effect.timeoutOption(wake.await, o.scheduledDelay)
      yield* wake.close
      if (queue.length > 0) yield* lock.withPermits(1)(Effect.suspend(() => exportBatch(take())))
      yield* logBurst
    }).pipe(
      Effect.forever,
      Effect.withTracerEnabled(false),
      Effect.annotateLogs({ package: "@sg/otel", fiber: "OtlpExporter" })
    )
    yield* Effect.forkScoped(Effect.interruptible(sender))

    // Runs before the sender is interrupted (finalizers run in reverse): it waits for an export in flight, then sends
    // the rest.
    yield* Effect.addFinalizer(() =>
      flush.pipe(
        Effect.interruptible,
        Effect.timeoutOption(o.shutdownTimeout),
        Effect.zipRight(Effect.suspend(() => {
          closed = true
          const left = queue.length
          queue = []
          queueSize.unsafeUpdate(0, [])
          drop(left, "shutdown")
          return logBurst
        })),
        Effect.annotateLogs({ package: "@sg/otel", fiber: "OtlpExporter" })
      )
    )

    return {
      enabled: true,
      url: shown,
      offer,
      room: () => o.maxQueueSize - queue.length,
      drop,
      flush,
      stats: Effect.sync(() => ({ queued: queue.length, exported, dropped, failing: inBurst || pendingDrops > 0 }))
    }
  })
