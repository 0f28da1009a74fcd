/**
 * A seam for tests: runs between a sweep batch's read and its atomic decision, so a test can finish a trace in
 * that window (the race the decision script must win). Never provided outside tests.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** Hooks the sweep calls when present in its context. */
export class SweepHooks extends Context.Tag("@sg/trace/internal/SweepHooks")<SweepHooks, {
  /** Called with a batch's ids after they were read and before the decision step runs. */
  readonly afterRead: (ids: ReadonlyArray<string>) => Effect.Effect<void>
}>() {}
