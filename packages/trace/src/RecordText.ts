/**
 * How execution records turn values into short, redacted texts, for whatever else stores or sends the same values
 * (`@sg/otel` cuts span contents with it, so they are cut and redacted exactly like records).
 */
export {
  /** The breaker named by a `CircuitOpenError`, if the value is one. */
  circuitOf,
  /** `value` as text, redacted, then cut to `limit` characters and marked as cut. */
  clip,
  /** The first `limit` characters of a text and a marker saying how many were cut. */
  cut,
  /** The marker appended to a cut text. */
  cutMarker,
  /** An error as `<type>: <message>`. */
  describeError,
  /** Whether a failure is a timeout: Effect's `TimeoutException`, or an error whose `_tag` says timeout. */
  isTimeout,
  /** A value as text: strings as they are, anything else as JSON. */
  stringify
} from "./internal/truncate.js"
