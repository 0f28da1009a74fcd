/**
 * The recorder: an Effect `Tracer` wrapped around whatever tracer is installed (so an OpenTelemetry exporter still
 * runs beside it) that collects the spans of each trace and, when the trace's root span ends, reduces them into one
 * `ExecutionRecord`, samples it and hands it to a sink (the store's `save`).
 *
 * Everything past collecting spans happens off the request path: a root's end puts its trace on a bounded ready list
 * and a writer fiber reduces, samples and saves, after a short grace period so spans that end just after their root
 * are in the record; a span that ends later still queues the trace again and the record is saved again with it.
 * Recording is best effort: a full list or a failing sink drops the record, counts it in `sg_records_dropped_total`
 * and logs once per burst, never failing or slowing the traced effect. Closing the layer's scope flushes what is
 * queued, within `flushTimeout`. With `SG_RECORD=off` nothing is installed (unless a `TraceExporter` needs the spans).
 *
 * Bounded: at most `maxTraces` traces in flight and `maxBufferedSpans` spans across them (past either a new trace is
 * not recorded, and past the span total a trace's further spans are counted in its record's `dropped.spans`), and a
 * trace still open `maxOpenAge` after its first root started (a leaked span, a root that never ends) is dropped: each
 * loss counted in `sg_records_dropped_total` with its reason. Old buffers are purged as new traces open, under `Clock`.
 *
 * Export: a `TraceExporter` in the context the recorder is built in is handed the spans of each trace it samples, by
 * the same rule at the same moment as records (at its own success rate), from the writer.
 *
 * Status of calls and runs: `timeout` when the failure is a timeout (`TimeoutException`, or an error whose `_tag` says
 * timeout), `error` otherwise. An interruption (a call that lost a race, a request cancelled) is not a timeout: it is
 * `error` with the error text `interrupted` and `interrupted: true`. A request whose client went away (its root span
 * marked `ExecutionSpan.cancelled`) is an error `cancelled`, as are its interrupted runs, and like every error it is
 * kept whatever the sampling rate.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { ExecutionRecord } from "./ExecutionRecord.js"
import { ExecutionStore } from "./ExecutionStore.js"
import * as ExecTracer from "./internal/execTracer.js"
import { ExpiringMap } from "./internal/expiringMap.js"
import { type Limits, reduce, surelySuccess } from "./internal/reduce.js"
import * as Redaction from "./Redaction.js"
import * as Sampling from "./Sampling.js"
import * as TraceExporter from "./TraceExporter.js"
import * as TraceId from "./TraceId.js"

/** How the recorder records. Only `save` is required; the rest default to `defaults`. */
export interface Options {
  /** Where kept records go (the store's `save`). Its failures are counted and logged, never propagated. */
  readonly save: (record: ExecutionRecord) => Effect.Effect<void, unknown>
  /** Share of successful records kept, 0 to 1 (`SG_SAMPLE_SUCCESS`, 0.1). */
  readonly sampleSuccess?: number | undefined
  /** Characters kept of each input, output and error (`SG_TRUNCATE`, 500). */
  readonly truncate?: number | undefined
  /** Calls kept per run (1,000). */
  readonly maxCallsPerRun?: number | undefined
  /** Size cap of a record's JSON in bytes (256 KiB). */
  readonly maxRecordBytes?: number | undefined
  /** Runs over every stored text before it is cut (`Redaction.defaults`). */
  readonly redact?: Redaction.Redactor | undefined
  /** How long after the root ends the trace is reduced, for spans that end just after it (100 millis). */
  readonly grace?: Duration.DurationInput | undefined
  /** Traces that may wait for the writer; past this, records are dropped (1,000). */
  readonly queueCapacity?: number | undefined
  /** Traces in flight that may be buffered at once; past this, new traces are not recorded (10,000). */
  readonly maxTraces?: number | undefined
  /** Spans buffered per trace; past this they are counted in the record's `dropped.spans` (10,000). */
  readonly maxSpansPerTrace?: number | undefined
  /**
   * Spans buffered across all traces in flight (100,000); past this new traces are not recorded and the spans of
   * those buffered are counted in their record's `dropped.spans` (their roots and agent runs are still kept).
   */
  readonly maxBufferedSpans?: number | undefined
  /**
   * How long a trace may stay open from its first root's start before it is dropped (30 minutes, the orphan
   * threshold's default): a root that never ends must not hold its spans forever.
   */
  readonly maxOpenAge?: Duration.DurationInput | undefined
  /** Saves the writer runs at once (16). */
  readonly concurrency?: number | undefined
  /** How long closing the scope may spend flushing the queue (5 seconds). */
  readonly flushTimeout?: Duration.DurationInput | undefined
  /** False: no record is built or saved, the spans only go to the `TraceExporter` (true). */
  readonly records?: boolean | undefined
}

/** The defaults of every option but `save`. */
export const defaults: {
  readonly sampleSuccess: number
  readonly truncate: number
  readonly maxCallsPerRun: number
  readonly maxRecordBytes: number
  readonly redact: Redaction.Redactor
  readonly grace: Duration.Duration
  readonly queueCapacity: number
  readonly maxTraces: number
  readonly maxSpansPerTrace: number
  readonly maxBufferedSpans: number
  readonly maxOpenAge: Duration.Duration
  readonly concurrency: number
  readonly flushTimeout: Duration.Duration
} = {
  sampleSuccess: 0.1,
  truncate: 500,
  maxCallsPerRun: 1000,
  maxRecordBytes: 256 * 1024,
  redact: Redaction.defaults,
  grace: Duration.millis(100),
  queueCapacity: 1000,
  maxTraces: 10_000,
  maxSpansPerTrace: 10_000,
  maxBufferedSpans: 100_000,
  maxOpenAge: Duration.minutes(30),
  concurrency: 16,
  flushTimeout: Duration.seconds(5)
}

/** Why a record was lost. */
export type DropReason =
  | "queue_full"
  | "store_failed"
  | "too_many_traces"
  | "too_many_spans"
  | "open_too_long"
  | "invalid_trace_id"
  | "reduce_failed"
  | "shutdown"

const dropReasons: ReadonlyArray<DropReason> = [
  "queue_full",
  "store_failed",
  "too_many_traces",
  "invalid_trace_id",
  "reduce_failed",
  "shutdown"
]

/** Records lost, tagged with `reason` (a `DropReason`). */
export const recordsDropped = Metric.counter("sg_records_dropped_total", {
  description: "execution records lost: queue full, store failing, or shut down before they were saved",
  incremental: true
})

/** Records handed to the sink and saved. */
export const recordsSaved = Metric.counter("sg_records_saved_total", {
  description: "execution records saved",
  incremental: true
})

/** What the recorder holds right now. */
export interface Stats {
  /** Traces whose root is still running. */
  readonly openTraces: number
  /** Traces waiting for the writer. */
  readonly queued: number
  /** Spans buffered across the traces in flight or queued. */
  readonly bufferedSpans: number
}

/** The running recorder. */
export interface Service {
  readonly enabled: boolean
  /** Reduces and saves every queued trace now, without waiting for its grace period. */
  readonly flush: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

/** The recorder of the current scope. */
export class Recorder extends Context.Tag("@sg/trace/Recorder")<Recorder, Service>() {}

const batchSize = 256
// Buffers past their age examined per new trace (beyond what `ExpiringMap.set` purges itself).
const purgeBudget = 16

const labels = new Map<DropReason, ReadonlyArray<MetricLabel.MetricLabel>>()
const labelsOf = (reason: DropReason) => {
  let found = labels.get(reason)
  if (found === undefined) {
    found = [MetricLabel.make("reason", reason)]
    labels.set(reason, found)
  }
  return found
}

/**
 * Starts recording in the current scope: installs the recording tracer around the current one (for the rest of the
 * scope) and forks the writer. Closing the scope flushes the queue.
 */
export const make = (options: Options): Effect.Effect<Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const o = {
      save: options.save,
      sampleSuccess: options.sampleSuccess ?? defaults.sampleSuccess,
      truncate: options.truncate ?? defaults.truncate,
      maxCallsPerRun: options.maxCallsPerRun ?? defaults.maxCallsPerRun,
      maxRecordBytes: options.maxRecordBytes ?? defaults.maxRecordBytes,
      redact: options.redact ?? defaults.redact,
      grace: options.grace ?? defaults.grace,
      queueCapacity: options.queueCapacity ?? defaults.queueCapacity,
      maxTraces: options.maxTraces ?? defaults.maxTraces,
      maxSpansPerTrace: options.maxSpansPerTrace ?? defaults.maxSpansPerTrace,
      maxBufferedSpans: options.maxBufferedSpans ?? defaults.maxBufferedSpans,
      maxOpenAge: options.maxOpenAge ?? defaults.maxOpenAge,
      concurrency: options.concurrency ?? defaults.concurrency,
      flushTimeout: options.flushTimeout ?? defaults.flushTimeout,
      records: options.records ?? true
    }
    const exporter = Option.getOrUndefined(yield* Effect.serviceOption(TraceExporter.TraceExporter))
    const limits: Limits = {
      truncate: o.truncate,
      maxCallsPerRun: o.maxCallsPerRun,
      maxRecordBytes: o.maxRecordBytes,
      redact: o.redact
    }
    const graceMs = Duration.toMillis(o.grace)
    const maxOpenAgeMs = Duration.toMillis(o.maxOpenAge)
    const budget: ExecTracer.SpanBudget = { buffered: 0, max: o.maxBufferedSpans }
    // By trace key, each expiring `maxOpenAge` after it opened; `rootBuffer` refuses past `maxTraces` itself.
    const traces = new ExpiringMap<string, ExecTracer.TraceBuffer>({
      capacity: Infinity,
      onRemove: (_key, buffer) => {
        // A queued trace is the writer's now; an open one is given up on.
        if (buffer.state !== "open") return
        buffer.state = "dropped"
        ExecTracer.release(buffer, budget)
        drop("open_too_long")
      }
    })
    const ready: Array<ExecTracer.TraceBuffer> = []
    const wake = yield* Effect.makeLatch(false)
    const lock = yield* Effect.makeSemaphore(1)
    let closed = false

    // Drops since the last log line, and whether we are inside a burst of them.
    let pendingDrops = 0
    let lastReason: DropReason = "queue_full"
    let lastCause: Cause.Cause<unknown> = Cause.empty
    let inBurst = false
    let burstDrops = 0
    let savedSinceDrop = false
    const drop = (reason: DropReason, n = 1) => {
      recordsDropped.unsafeUpdate(n, labelsOf(reason))
      pendingDrops += n
      lastReason = reason
      savedSinceDrop = false
      wake.unsafeOpen()
    }

    const hooks: ExecTracer.Hooks = {
      maxSpansPerTrace: o.maxSpansPerTrace,
      budget,
      rootBuffer: (traceId, startTime) => {
        const now = ExecTracer.toMillis(startTime)
        const existing = traces.get(traceId, now)
        if (existing !== undefined) return existing
        if (closed) return undefined
        traces.purge(now, purgeBudget)
        if (traces.size >= o.maxTraces) {
          drop("too_many_traces")
          return undefined
        }
        if (budget.buffered >= budget.max) {
          drop("too_many_spans")
          return undefined
        }
        const buffer = ExecTracer.makeBuffer(traceId)
        traces.set(traceId, buffer, now, now + maxOpenAgeMs)
        return buffer
      },
      schedule: (buffer, endTime) => {
        if (buffer.state === "queued" || buffer.state === "dropped") return
        if (closed || ready.length >= o.queueCapacity) {
          buffer.state = "dropped"
          ExecTracer.release(buffer, budget)
          if (traces.peek(buffer.key) === buffer) traces.delete(buffer.key)
          drop(closed ? "shutdown" : "queue_full")
          return
        }
        buffer.state = "queued"
        buffer.dueAt = ExecTracer.toMillis(endTime) + graceMs
        ready.push(buffer)
        wake.unsafeOpen()
      }
    }

    // Reduces and samples a trace (plain code: most traces end here, kept by no one); the record when it is kept.
    const prepare = (buffer: ExecTracer.TraceBuffer): ExecutionRecord | undefined => {
      if (buffer.openRoots > 0) {
        if (traces.peek(buffer.key) === buffer) buffer.state = "open"
        else {
          // It aged out of `traces` while queued, and a root joined it meanwhile: nothing would ever expire it now.
          buffer.state = "dropped"
          ExecTracer.release(buffer, budget)
          drop("open_too_long")
        }
        return undefined
      }
      buffer.state = "done"
      ExecTracer.release(buffer, budget)
      if (traces.peek(buffer.key) === buffer) traces.delete(buffer.key)
      const traceId = TraceId.fromHex(buffer.key)
      if (Option.isNone(traceId)) {
        drop("invalid_trace_id")
        return undefined
      }
      const spans = buffer.spans.slice()
      const sure = surelySuccess(spans)
      const record = o.records && !(sure && !Sampling.keep(traceId.value, "success", o.sampleSuccess))
      const exported = exporter !== undefined &&
        !(sure && !Sampling.keep(traceId.value, "success", exporter.sampleSuccess))
      if (!record && !exported) return undefined
      try {
        const reduced = reduce({ traceId: traceId.value, spans, droppedSpans: buffer.droppedSpans })
        if (Option.isNone(reduced)) return undefined
        if (exported) handOver(exporter, buffer, spans, traceId.value, reduced.value.status)
        if (!record || !Sampling.keep(traceId.value, reduced.value.status, o.sampleSuccess)) return undefined
        return reduced.value.build(limits)
      } catch (defect) {
        lastCause = Cause.die(defect)
        drop("reduce_failed")
        return undefined
      }
    }

    // The spans the exporter has not had yet, when it samples the trace.
    const handOver = (
      exporter: TraceExporter.Service,
      buffer: ExecTracer.TraceBuffer,
      spans: ReadonlyArray<TraceExporter.EndedSpan>,
      traceId: TraceId.TraceId,
      status: ExecutionRecord["status"]
    ) => {
      if (buffer.exported >= spans.length || !Sampling.keep(traceId, status, exporter.sampleSuccess)) return
      const late = buffer.exported > 0
      const fresh = late ? spans.slice(buffer.exported) : spans
      buffer.exported = spans.length
      try {
        exporter.offer({ traceId, spans: fresh, status, droppedSpans: buffer.droppedSpans, late })
      } catch {
        // the exporter counts its own losses; a record must not be lost with them
      }
    }

    const saveOne = (record: ExecutionRecord): Effect.Effect<void> =>
      o.save(record).pipe(
        Effect.matchCause({
          onFailure: (cause) => {
            if (Cause.isInterruptedOnly(cause)) return drop("shutdown")
            lastCause = cause
            drop("store_failed")
          },
          onSuccess: () => {
            recordsSaved.unsafeUpdate(1, [])
            savedSinceDrop = true
          }
        }),
        Effect.onInterrupt(() => Effect.sync(() => drop("shutdown")))
      )

    const logBurst = Effect.suspend(() => {
      if (pendingDrops > 0) {
        const n = pendingDrops
        pendingDrops = 0
        burstDrops += n
        if (inBurst) return Effect.void
        inBurst = true
        return Effect.logWarning(
          `execution records dropped (${lastReason}); further drops are counted in sg_records_dropped_total`,
          lastCause
        ).pipe(Effect.annotateLogs({ reason: lastReason, dropped: n }))
      }
      if (inBurst && savedSinceDrop) {
        inBurst = false
        const n = burstDrops
        burstDrops = 0
        lastCause = Cause.empty
        return Effect.logInfo(`execution records are saved again, after ${n} were dropped`)
      }
      return Effect.void
    })

    const processBatch = (batch: ReadonlyArray<ExecTracer.TraceBuffer>) =>
      Effect.suspend(() => {
        const records: Array<ExecutionRecord> = []
        for (const buffer of batch) {
          const record = prepare(buffer)
          if (record !== undefined) records.push(record)
        }
        return records.length === 0
          ? Effect.void
          : Effect.forEach(records, saveOne, { concurrency: o.concurrency, discard: true })
      })

    // At most `batchSize` at a time, so a backlog is worked off in slices the request fibers can run between.
    const takeDue = (now: number) => {
      const due: Array<ExecTracer.TraceBuffer> = []
      let kept = 0
      for (const buffer of ready) {
        if (buffer.dueAt <= now && due.length < batchSize) due.push(buffer)
        else ready[kept++] = buffer
      }
      ready.length = kept
      return due
    }

    const flush = lock.withPermits(1)(Effect.suspend(() => processBatch(ready.splice(0)))).pipe(
      Effect.zipRight(logBurst),
      Effect.withTracerEnabled(false)
    )

    const writer = Effect.gen(function*() {
      yield* wake.await
      yield* wake.close
      for (;;) {
        yield* logBurst
        if (ready.length === 0) return
        const now = yield* Clock.currentTimeMillis
        let next = Infinity
        for (const buffer of ready) next = Math.min(next, buffer.dueAt)
        if (next > now) yield* Clock.sleep(Duration.millis(next - now))
        else {
          yield* lock.withPermits(1)(Effect.suspend(() => processBatch(takeDue(now))))
          yield* Effect.yieldNow()
        }
      }
    }).pipe(
      Effect.forever,
      Effect.withTracerEnabled(false),
      Effect.annotateLogs({ package: "@sg/trace", fiber: "Recorder" })
    )
    yield* Effect.forkScoped(Effect.interruptible(writer))

    yield* Effect.addFinalizer(() =>
      flush.pipe(
        Effect.interruptible,
        Effect.timeoutOption(o.flushTimeout),
        Effect.zipRight(Effect.suspend(() => {
          closed = true
          const left = new Set([...ready, ...traces.values()])
          for (const buffer of left) {
            buffer.state = "dropped"
            ExecTracer.release(buffer, budget)
          }
          ready.length = 0
          traces.clear()
          if (left.size > 0) drop("shutdown", left.size)
          return logBurst
        })),
        Effect.annotateLogs({ package: "@sg/trace", fiber: "Recorder" })
      )
    )

    // Every series exists from the start, at 0 until something is saved or dropped.
    recordsSaved.unsafeUpdate(0, [])
    for (const reason of dropReasons) recordsDropped.unsafeUpdate(0, labelsOf(reason))

    const inner = yield* Effect.tracer
    yield* Effect.withTracerScoped(ExecTracer.make(inner, hooks))

    return Recorder.of({
      enabled: true,
      flush,
      stats: Effect.sync(() => ({ openTraces: traces.size, queued: ready.length, bufferedSpans: budget.buffered }))
    })
  })

/** Records every trace of the program it is provided to, saving kept records through `options.save`. */
export const layer = (options: Options): Layer.Layer<Recorder> => Layer.scoped(Recorder, make(options))

/** A recorder that records nothing and installs nothing: what `SG_RECORD=off` gives. */
export const layerDisabled: Layer.Layer<Recorder> = Layer.succeed(Recorder, {
  enabled: false,
  flush: Effect.void,
  stats: Effect.succeed({ openTraces: 0, queued: 0, bufferedSpans: 0 })
})

/** `SG_RECORD` (on), `SG_SAMPLE_SUCCESS` (0.1) and `SG_TRUNCATE` (500), through `Config`. */
export const config: Config.Config<{
  readonly enabled: boolean
  readonly sampleSuccess: number
  readonly truncate: number
}> = Config.all({
    enabled: Config.boolean("SG_RECORD").pipe(
      Config.withDefault(true),
      Config.withDescription("record execution records: on or off")
    ),
    sampleSuccess: Sampling.config,
    truncate: Config.integer("SG_TRUNCATE").pipe(
      Config.withDefault(500),
      Config.validate({ message: "SG_TRUNCATE must be at least 1", validation: (n) => n >= 1 }),
      Config.withDescription("characters kept of each input, output and error in an execution record")
    )
  })

/**
 * A recorder configured from the environment (see `config`); with `SG_RECORD=off`, `layerDisabled`, or, when a
 * `TraceExporter` is in context, a recorder that only feeds it.
 */
export const layerConfig = (
  options: Omit<Options, "sampleSuccess" | "truncate">
): Layer.Layer<Recorder, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(Effect.zip(config, Effect.serviceOption(TraceExporter.TraceExporter)), ([c, exporter]) => {
      const configured = { ...options, sampleSuccess: c.sampleSuccess, truncate: c.truncate }
      if (c.enabled) return layer(configured)
      return Option.isSome(exporter) ? layer({ ...configured, records: false }) : layerDisabled
    })
  )

/** `layerConfig` saving kept records to the `ExecutionStore` in context. */
export const layerStore: Layer.Layer<Recorder, ConfigError.ConfigError, ExecutionStore> = Layer.unwrapEffect(
  Effect.map(ExecutionStore, (store) => layerConfig({ save: store.save }))
)
