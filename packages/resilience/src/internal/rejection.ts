/**
 * The `CircuitOpenError` of a rejection, built cheaply.
 */
import * as Duration from "effect/Duration"
import { CircuitOpenError } from "../CircuitBreakerError.js"

const openMessage = (name: string, retryAfterMs: number): string =>
  retryAfterMs === Infinity
    ? `circuit breaker "${name}" is isolated`
    : retryAfterMs === 0
    ? `circuit breaker "${name}" is half-open and its trial calls are in flight`
    : `circuit breaker "${name}" is open; retry in ${retryAfterMs} ms`

// Rejections skip the constructor: an Error's costs microseconds even with no stack captured (the schema class adds
// more), and a rejection should cost well under one. Such an instance is a `CircuitOpenError` with the same own
// fields (so `Equal` holds with one built by `new`); its message and JSON are derived on read, and `stack` is the
// message line.
const rejectionPrototype: object = Object.create(CircuitOpenError.prototype, {
  message: {
    get(this: CircuitOpenError) {
      return openMessage(this.name, Duration.toMillis(this.retryAfter))
    }
  },
  stack: {
    get(this: CircuitOpenError) {
      return `CircuitOpenError: ${this.message}`
    }
  },
  toJSON: {
    value(this: CircuitOpenError) {
      return { ...this, message: this.message }
    }
  }
})

/** A `CircuitOpenError` for the hot path of a rejection: no stack trace, no validation. */
export const rejected = (name: string, retryAfterMs: number): CircuitOpenError => {
  const error = Object.create(rejectionPrototype) as { -readonly [K in keyof CircuitOpenError]: CircuitOpenError[K] }
  error._tag = "CircuitOpenError"
  error.name = name
  error.retryAfter = Duration.millis(retryAfterMs)
  return error
}
