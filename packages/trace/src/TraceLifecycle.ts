/**
 * Best-effort lifecycle writes for the request path: each `TraceStore` call runs behind the trace store's own
 * circuit breaker, and whatever goes wrong is logged (once per breaker opening) and swallowed,
 * so tracing never fails or slows the request it observes.
 */
import { CircuitBreaker, type CircuitOpenError, type CircuitTimeoutError } from "@sg/resilience"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as CurrentTrace from "./CurrentTrace.js"
import type { TraceId } from "./TraceId.js"
import type { State, TerminalState } from "./TraceRecord.js"
import { TraceStore } from "./TraceStore.js"

/** Lifecycle writes that never fail. */
export interface Service {
  /**
   * Registers a request of the trace `id` (`RECEIVED` unless told otherwise): a new trace, one more request of a
   * trace in flight, or a reopened one. Gives the opening the request belongs to (put it in `CurrentTrace` for the
   * writes that follow), `undefined` when the write was lost.
   */
  readonly begin: (
    id: TraceId,
    metadata?: Readonly<Record<string, string>>,
    state?: State
  ) => Effect.Effect<number | undefined>
  /** Moves the current trace (see `CurrentTrace`, and its opening) to `state`; nothing when there is none. */
  readonly transition: (state: State) => Effect.Effect<void>
  /** Adds caller fields (metadata) to the current trace's record; nothing when there is none or `fields` is empty. */
  readonly annotate: (fields: Readonly<Record<string, string>>) => Effect.Effect<void>
  /** Ends one request of the trace `id` (of `opening`, when given); the last one in flight ends the trace. */
  readonly finish: (
    id: TraceId,
    state: TerminalState,
    fields?: Readonly<Record<string, string>>,
    opening?: number
  ) => Effect.Effect<void>
}

/** Best-effort lifecycle writes. */
export class TraceLifecycle extends Context.Tag("@sg/trace/TraceLifecycle")<TraceLifecycle, Service>() {}

/** The breaker every lifecycle write goes through. */
export const breakerName = "trace-store"

/** Lifecycle writes that failed or were skipped (breaker open), by operation. */
export const writesLost = Metric.counter("sg_lifecycle_writes_lost_total", {
  description: "trace lifecycle writes that failed or were skipped because the trace store's breaker was open",
  incremental: true
})

/** What the store refuses by contract (not an outage): these are not lost writes. */
const refusals: ReadonlySet<string> = new Set(["TraceNotFound", "TraceAlreadyTerminal", "StaleTraceWrite"])

/** How lifecycle writes are bounded. */
export interface Options {
  /**
   * A deadline per write, enforced by the breaker. Defaults to none: the Redis client's own command timeout
   * (`SG_REDIS_COMMAND_TIMEOUT`) bounds each write already, and an Effect-level timeout costs about 35 µs per write
   * (a raced fiber and a timer), measured with .bench-style loops on the memory store: 5 µs per write without it.
   */
  readonly timeout?: Duration.DurationInput | undefined
}

/** Builds the service over the store and breakers in context. */
export const make = (options?: Options): Effect.Effect<Service, never, TraceStore | CircuitBreaker.CircuitBreaker> =>
  Effect.gen(function*() {
    const store = yield* TraceStore
    const breakers = yield* CircuitBreaker.CircuitBreaker
    // A refusal (terminal, not found, bad input) is the store working: only outages count against it.
    const isFailure = (error: { readonly _tag: string }) =>
      error._tag === "RedisUnavailable" || error._tag === "RedisCommandError"
    const guard: <A, E extends { readonly _tag: string }>(
      self: Effect.Effect<A, E>
    ) => Effect.Effect<A, E | CircuitOpenError | CircuitTimeoutError> = options?.timeout === undefined
      ? breakers.protect(breakerName, { isFailure })
      : breakers.protect(breakerName, { isFailure, timeout: Duration.decode(options.timeout) })
    const bestEffort = (operation: string, id: string) => <A, E extends { readonly _tag: string }>(
      self: Effect.Effect<A, E>
    ): Effect.Effect<A | undefined> =>
      guard(self).pipe(
        Effect.catchAll((error) =>
          refusals.has(error._tag)
            // The store refusing a write (a late one of an earlier opening, say) is the contract at work.
            ? Effect.as(
              Effect.logDebug(`trace lifecycle ${operation} refused`).pipe(
                Effect.annotateLogs({ trace_id: id, error: error._tag })
              ),
              undefined
            )
            : Effect.as(
              Effect.zipRight(
                Metric.increment(Metric.tagged(writesLost, "operation", operation)),
                error._tag === "CircuitOpenError"
                  ? Effect.void
                  : Effect.logWarning(`trace lifecycle ${operation} lost`).pipe(
                    Effect.annotateLogs({ trace_id: id, error: error._tag })
                  )
              ),
              undefined
            )
        ),
        Effect.catchAllDefect((defect) =>
          Effect.as(
            Effect.logError(`trace lifecycle ${operation} died`, defect).pipe(Effect.annotateLogs({ trace_id: id })),
            undefined
          )
        )
      )

    return TraceLifecycle.of({
      begin: (id, metadata, state = "RECEIVED") =>
        store.create(id, state, metadata).pipe(
          Effect.map((created) => created.opening),
          bestEffort("create", id)
        ),
      transition: (state) =>
        Effect.flatMap(Effect.serviceOption(CurrentTrace.CurrentTrace), (current) =>
          Option.match(current, {
            onNone: () => Effect.void,
            onSome: ({ opening, traceId }) =>
              Effect.asVoid(store.transition(traceId, state, { opening }).pipe(bestEffort("transition", traceId)))
          })),
      annotate: (fields) =>
        Effect.flatMap(CurrentTrace.traceId, (current) =>
          Option.isNone(current) || Object.keys(fields).length === 0
            ? Effect.void
            : store.annotate(current.value, fields).pipe(bestEffort("annotate", current.value))),
      finish: (id, state, fields, opening) =>
        Effect.asVoid(store.finish(id, state, fields, { opening }).pipe(bestEffort("finish", id)))
    })
  })

/** The service over the `TraceStore` and `CircuitBreaker` in context. */
export const layer = (options?: Options): Layer.Layer<TraceLifecycle, never, TraceStore | CircuitBreaker.CircuitBreaker> =>
  Layer.effect(TraceLifecycle, make(options))
