import type * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/**
 * Runs a store call for at most `limit`, even inside a finalizer (where interruption is masked and `Effect.timeout`
 * alone would wait for the call): the call is made interruptible, so past the limit it is interrupted. Store calls
 * must be interruptible at their await (ioredis' are: the pending promise is abandoned).
 */
export const bounded = <A, E>(
  call: Effect.Effect<A, E>,
  limit: Duration.DurationInput
): Effect.Effect<A, E | Cause.TimeoutException> => call.pipe(Effect.interruptible, Effect.timeout(limit))
