/**
 * The orphan watchdog: the sweep loop that exactly one replica runs, under the `trace-watchdog` lease.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { SweepReport } from "./TraceStore.js"

/** The last sweep this process ran. */
export const LastSweep = Schema.Struct({
  /** When it ended (ISO-8601). */
  at: Schema.String,
  /** Whether it completed; a failed sweep has `error` instead of a full report. */
  ok: Schema.Boolean,
  report: Schema.NullOr(SweepReport),
  error: Schema.NullOr(Schema.String)
})

/** What `/api/status` shows of the watchdog. */
export const Status = Schema.Struct({
  /** Whether this process holds the watchdog lease now. */
  leader: Schema.Boolean,
  /** The fencing epoch of the current term, or null when not leading. */
  epoch: Schema.NullOr(Schema.Number),
  last_sweep: Schema.NullOr(LastSweep)
})

/** What `/api/status` shows of the watchdog. */
export type Status = typeof Status.Type

/** The running watchdog. */
export interface Service {
  readonly status: Effect.Effect<Status>
}

/** The running watchdog. */
export class TraceWatchdog extends Context.Tag("@sg/trace/TraceWatchdog")<TraceWatchdog, Service>() {}
