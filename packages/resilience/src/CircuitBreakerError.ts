/**
 * The ways a guarded call fails on the breaker's account: rejected while the breaker is open, or cut off by its
 * timeout. Plus the error a layer fails with when given a policy that makes no sense.
 */
import * as Schema from "effect/Schema"

/**
 * The breaker `name` is open (or half-open with its trial calls already in flight), so the call was not made.
 * `retryAfter` is what is left of the cool-down: zero while trials run, infinite while isolated.
 */
export class CircuitOpenError extends Schema.TaggedError<CircuitOpenError>("@sg/resilience/CircuitOpenError")(
  "CircuitOpenError",
  {
    name: Schema.String,
    retryAfter: Schema.Duration,
    message: Schema.String
  }
) {}

/** A call guarded by the breaker `name` took longer than its `timeout`; it was interrupted and counted as a failure. */
export class CircuitTimeoutError extends Schema.TaggedError<CircuitTimeoutError>("@sg/resilience/CircuitTimeoutError")(
  "CircuitTimeoutError",
  {
    name: Schema.String,
    timeout: Schema.Duration,
    message: Schema.String
  }
) {}

/** A breaker policy given to a layer is invalid; `message` says which option and why. */
export class InvalidBreakerPolicy extends Schema.TaggedError<InvalidBreakerPolicy>(
  "@sg/resilience/InvalidBreakerPolicy"
)(
  "InvalidBreakerPolicy",
  {
    /** The breaker the policy was registered for; absent for the defaults. */
    breaker: Schema.optional(Schema.String),
    message: Schema.String
  }
) {}

/** True for a `CircuitOpenError`. */
export const isCircuitOpenError = (u: unknown): u is CircuitOpenError => u instanceof CircuitOpenError

/** True for a `CircuitTimeoutError`. */
export const isCircuitTimeoutError = (u: unknown): u is CircuitTimeoutError => u instanceof CircuitTimeoutError
