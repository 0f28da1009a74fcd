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
  /** This request's lifecycle writes (what `TraceLifecycle.begin` gave); absent when it has no lifecycle record. */
  readonly lane?: RequestLane | undefined
}>() {}

/**
 * One request of a trace, as its lifecycle writes know it: a trace id may arrive on several requests, and each
 * request's writes go in order, under its own token, into the opening of the trace its `create` landed in.
 */
export interface RequestLane {
  readonly traceId: TraceId
  /** The request's token, unique among the trace's requests; none for writes made outside a request. */
  readonly request: string | undefined
  /** The opening of the trace this request belongs to, once its `create` has landed. */
  readonly opening: number | undefined
}

/** The current trace id, if a request is being served. */
export const traceId: Effect.Effect<Option.Option<TraceId>> = Effect.map(
  Effect.serviceOption(CurrentTrace),
  Option.map((trace) => trace.traceId)
)

/** Runs `self` as part of the trace `id` (and of a request's lifecycle `lane`, when it has one). */
export const withTraceId = (id: TraceId, lane?: RequestLane) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, CurrentTrace, { traceId: id, lane })
