/**
 * Best-effort lifecycle writes for the request path. Each `TraceStore` call runs behind the trace store's own
 * circuit breaker (`trace-store`, local to the process: it guards Redis itself, with a short cool-down of its own),
 * and never fails. `begin`, `transition` and `annotate` hand their write to the request's lane and return; `finish`
 * waits until every write of the request has been attempted, so a trace has ended before its response leaves, but at
 * most `SG_LIFECYCLE_DEADLINE` (50 ms, on `Clock`): a slower write goes on in the background. A write the store could not take (an outage, the breaker open) is queued, bounded by
 * `SG_LIFECYCLE_QUEUE` (10,000), and replayed in order once the store answers, so a request that answered is not left
 * in flight for the watchdog to call orphaned. A request's writes are kept in order on its lane (`begin` gives it;
 * `CurrentTrace` carries it), each under the request's token, so a write replayed after a lost reply counts once.
 * Closing the layer's scope replays what is queued, within `flushTimeout`.
 */
import { CircuitBreaker, type CircuitOpenError, type CircuitTimeoutError } from "@sg/resilience"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import type * as Scope from "effect/Scope"
import * as CurrentTrace from "./CurrentTrace.js"
import { type Attempt, Lane, make as makeWriter, type Stats } from "./internal/lifecycleWriter.js"
import type { TraceId } from "./TraceId.js"
import type { State, TerminalState } from "./TraceRecord.js"
import { TraceStore } from "./TraceStore.js"
import { isTraceStoreFailure } from "./TraceStoreError.js"

/** Lifecycle writes that never fail. */
export interface Service {
  /**
   * Registers a request of the trace `id` (`RECEIVED` unless told otherwise): a new trace, one more request of a
   * trace in flight, or a reopened one. Gives the request's lane at once (the write goes out on it without the request
   * waiting): provide it in `CurrentTrace` for what follows.
   */
  readonly begin: (
    id: TraceId,
    metadata?: Readonly<Record<string, string>>,
    state?: State
  ) => Effect.Effect<CurrentTrace.RequestLane>
  /** Moves the current request's trace (see `CurrentTrace`) to `state`; nothing when there is none. */
  readonly transition: (state: State) => Effect.Effect<void>
  /** Adds caller fields (metadata) to the current request's trace; nothing without one or with no fields. */
  readonly annotate: (fields: Readonly<Record<string, string>>) => Effect.Effect<void>
  /**
   * Ends the request of `lane`; the last one of the trace in flight ends the trace. Waits for the lane's writes, at
   * most the deadline.
   */
  readonly finish: (
    lane: CurrentTrace.RequestLane,
    state: TerminalState,
    fields?: Readonly<Record<string, string>>
  ) => Effect.Effect<void>
  /** Writes waiting for the store, and writes past their deadline still running. */
  readonly stats: Effect.Effect<Stats>
}

/** Best-effort lifecycle writes. */
export class TraceLifecycle extends Context.Tag("@sg/trace/TraceLifecycle")<TraceLifecycle, Service>() {}

/** The breaker every lifecycle write goes through. */
export const breakerName = "trace-store"

/** Lifecycle writes lost, by `operation` and `reason`: the replay queue full, still queued at shutdown, or a defect. */
export const writesLost = Metric.counter("sg_lifecycle_writes_lost_total", {
  description: "trace lifecycle writes lost: the replay queue was full, they were still queued at shutdown, or died",
  incremental: true
})

/** What the store refuses by contract (not an outage): these are not lost writes. */
const refusals: ReadonlySet<string> = new Set([
  "TraceNotFound",
  "TraceAlreadyTerminal",
  "StaleTraceWrite",
  "InvalidTraceInput"
])

/** How lifecycle writes are bounded. */
export interface Options {
  /** The longest a write holds its request (`SG_LIFECYCLE_DEADLINE`, 50 ms); it goes on in the background. */
  readonly deadline?: Duration.DurationInput | undefined
  /** Writes kept for replay while the store is away (`SG_LIFECYCLE_QUEUE`, 10,000); past it they are lost, counted. */
  readonly queueCapacity?: number | undefined
  /** How soon the replayer tries the store again after an outage (250 ms; the breaker paces the trials). */
  readonly retry?: Duration.DurationInput | undefined
  /** How long closing the scope may spend replaying the queue (5 seconds). */
  readonly flushTimeout?: Duration.DurationInput | undefined
}

/** The defaults of `Options`. */
export const defaults = {
  deadline: Duration.millis(50),
  queueCapacity: 10_000,
  retry: Duration.millis(250),
  flushTimeout: Duration.seconds(5)
} as const

/** `SG_LIFECYCLE_DEADLINE` (50 ms) and `SG_LIFECYCLE_QUEUE` (10,000), through `Config`. */
export const config: Config.Config<Options> = Config.all({
  deadline: Config.duration("SG_LIFECYCLE_DEADLINE").pipe(
    Config.withDefault(defaults.deadline),
    Config.validate({
      message: "SG_LIFECYCLE_DEADLINE must be a finite duration",
      validation: (d) => Duration.isFinite(d)
    }),
    Config.withDescription("the longest a lifecycle write may hold a request")
  ),
  queueCapacity: Config.integer("SG_LIFECYCLE_QUEUE").pipe(
    Config.withDefault(defaults.queueCapacity),
    Config.validate({ message: "SG_LIFECYCLE_QUEUE must be at least 0", validation: (n) => n >= 0 }),
    Config.withDescription("lifecycle writes kept for replay while the trace store is away")
  )
})

/**
 * `SG_STORE_BREAKER_COOLDOWN` (1 second): the trace store's own breaker recovers as fast as Redis does, not after the
 * model providers' 30 seconds. Give it to the breakers layer as the `trace-store` policy (see `breakerPolicy`).
 */
export const storeBreakerCooldown: Config.Config<Duration.Duration> = Config.duration("SG_STORE_BREAKER_COOLDOWN").pipe(
  Config.withDefault(Duration.seconds(1)),
  Config.withDescription("how long the trace store's own breaker stays open before it tries the store again")
)

/**
 * The `trace-store` breaker's policy: its own short cool-down, with no backoff, so that after an outage of any length
 * a trial write goes out every cool-down and recording resumes within one of Redis answering again.
 */
export const breakerPolicy = (cooldown: Duration.DurationInput) => ({
  [breakerName]: { cooldown, backoff: { factor: 1, max: cooldown } }
})

const labels = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
const labelsOf = (operation: string, reason: string) => {
  const key = `${operation}/${reason}`
  let found = labels.get(key)
  if (found === undefined) {
    found = [MetricLabel.make("operation", operation), MetricLabel.make("reason", reason)]
    labels.set(key, found)
  }
  return found
}

const hex = (n: number) => (n >>> 0).toString(16).padStart(8, "0")

/** Builds the service over the store and breakers in context; its fibers live in the scope. */
export const make = (
  options?: Options
): Effect.Effect<Service, never, TraceStore | CircuitBreaker.CircuitBreaker | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* TraceStore
    const breakers = yield* CircuitBreaker.CircuitBreaker
    // A refusal (terminal, not found, bad input) is the store working: only outages count against it.
    const isFailure = isTraceStoreFailure
    const guard: <A, E extends { readonly _tag: string }>(
      self: Effect.Effect<A, E>
    ) => Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError> = breakers.protect(breakerName, { isFailure })

    // Outages are logged once per burst (the breaker's own log says when it opens): a line when they start.
    let inOutage = false
    const attempt = <A, E extends { readonly _tag: string }>(
      operation: string,
      lane: Lane,
      self: Effect.Effect<A, E>,
      onDone: (a: A) => void = () => {}
    ): Effect.Effect<Attempt> =>
      guard(self).pipe(
        Effect.matchEffect({
          onSuccess: (a) =>
            Effect.sync((): Attempt => {
              onDone(a)
              if (inOutage) inOutage = false
              return "done"
            }),
          onFailure: (error) => {
            if (refusals.has(error._tag)) {
              // The store refusing a write (a late one of an earlier opening, say) is the contract at work.
              return Effect.as(
                Effect.logDebug(`trace lifecycle ${operation} refused`).pipe(
                  Effect.annotateLogs({ trace_id: lane.traceId, error: error._tag })
                ),
                "refused" as const
              )
            }
            if (inOutage || error._tag === "CircuitOpenError") return Effect.succeed("outage" as const)
            inOutage = true
            return Effect.as(
              Effect.logWarning(`trace lifecycle ${operation} deferred: the trace store is not answering`).pipe(
                Effect.annotateLogs({ trace_id: lane.traceId, error: error._tag })
              ),
              "outage" as const
            )
          }
        }),
        Effect.catchAllDefect((defect) =>
          Effect.as(
            Effect.zipRight(
              Effect.logError(`trace lifecycle ${operation} died`, defect).pipe(
                Effect.annotateLogs({ trace_id: lane.traceId })
              ),
              Effect.sync(() => writesLost.unsafeUpdate(1, labelsOf(operation, "defect")))
            ),
            "refused" as const
          )
        )
      )

    const writer = yield* makeWriter({
      deadline: Duration.decode(options?.deadline ?? defaults.deadline),
      capacity: options?.queueCapacity ?? defaults.queueCapacity,
      retry: Duration.decode(options?.retry ?? defaults.retry),
      lost: (operation, reason, lane) =>
        Effect.zipRight(
          Effect.sync(() => writesLost.unsafeUpdate(1, labelsOf(operation, reason))),
          Effect.logDebug(`trace lifecycle ${operation} lost (${reason})`).pipe(
            Effect.annotateLogs({ trace_id: lane.traceId })
          )
        )
    })
    yield* Effect.addFinalizer(() =>
      writer.flush(Duration.decode(options?.flushTimeout ?? defaults.flushTimeout)).pipe(Effect.interruptible)
    )

    // A trace in context without a lane of ours (`CurrentTrace.withTraceId(id)` alone) still gets its writes, unordered.
    const laneOf = Effect.map(Effect.serviceOption(CurrentTrace.CurrentTrace), (current) =>
      Option.isNone(current)
        ? undefined
        : current.value.lane instanceof Lane
        ? current.value.lane
        : new Lane(current.value.traceId, undefined))

    return TraceLifecycle.of({
      begin: (id, metadata, state = "RECEIVED") =>
        Effect.gen(function*() {
          const lane = new Lane(id, hex(yield* Random.nextInt) + hex(yield* Random.nextInt))
          yield* writer.submit(lane, {
            operation: "create",
            attempt: (l) =>
              attempt("create", l, store.create(id, state, metadata, { request: l.request }), (created) => {
                l.opening = created.opening
              })
          }, false)
          return lane
        }),
      transition: (state) =>
        Effect.flatMap(laneOf, (lane) =>
          lane === undefined ? Effect.void : writer.submit(lane, {
            operation: "transition",
            attempt: (l) => attempt("transition", l, store.transition(l.traceId, state, { opening: l.opening }))
          }, false)),
      annotate: (fields) =>
        Effect.flatMap(laneOf, (lane) =>
          lane === undefined || Object.keys(fields).length === 0 ? Effect.void : writer.submit(lane, {
            operation: "annotate",
            attempt: (l) => attempt("annotate", l, store.annotate(l.traceId, fields))
          }, false)),
      finish: (lane, state, fields) =>
        lane instanceof Lane
          ? writer.submit(lane, {
            operation: "finish",
            attempt: (l) =>
              attempt(
                "finish",
                l,
                store.finish(l.traceId, state, fields, { opening: l.opening, request: l.request })
              )
          }, true)
          : Effect.void,
      stats: writer.stats
    })
  })

/** The service over the `TraceStore` and `CircuitBreaker` in context. */
export const layer = (options?: Options): Layer.Layer<TraceLifecycle, never, TraceStore | CircuitBreaker.CircuitBreaker> =>
  Layer.scoped(TraceLifecycle, make(options))

/** The service configured from the environment (see `config`). */
export const layerConfig: Layer.Layer<
  TraceLifecycle,
  ConfigError.ConfigError,
  TraceStore | CircuitBreaker.CircuitBreaker
> = Layer.scoped(TraceLifecycle, Effect.flatMap(config, make))
