/**
 * The trace the current request belongs to. The gateway's ingress provides it; everything downstream (the agent
 * runtime, tools, egress) reads it to stamp results and move the lifecycle record.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { TraceId } from "./TraceId.js"

/** The current request's trace. */
export class CurrentTrace extends Context.Tag("@sg/trace/CurrentTrace")<CurrentTrace, {
  readonly traceId: TraceId
  /**
   * The opening of the trace's lifecycle this request belongs to (what `TraceLifecycle.begin` returned), so its
   * later writes are refused once the trace has been reopened by another request; absent when none was written.
   */
  readonly opening?: number | undefined
}>() {}

/** The current trace id, if a request is being served. */
export const traceId: Effect.Effect<Option.Option<TraceId>> = Effect.map(
  Effect.serviceOption(CurrentTrace),
  Option.map((trace) => trace.traceId)
)

/** Runs `self` as part of the trace `id` (and of its lifecycle's `opening`, when known). */
export const withTraceId = (id: TraceId, opening?: number) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, CurrentTrace, { traceId: id, opening })
