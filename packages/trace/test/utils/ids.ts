/**
 * Trace ids for tests, minted from a counter (not through TraceIdGenerator): valid UUIDv7s, unique in the process.
 */
import { Schema } from "effect"
import * as TraceId from "../../src/TraceId.js"

const decode = Schema.decodeSync(TraceId.TraceId)
const run = Math.floor(Math.random() * 0xfff)
let counter = 0

/** A fresh UUIDv7 trace id; `millis` sets its timestamp (defaults to a fixed one). */
export const nextTraceId = (millis = 0x0190_0000_0000): TraceId.TraceId => {
  counter++
  const time = millis.toString(16).padStart(12, "0")
  const randA = run.toString(16).padStart(3, "0")
  const randB = (counter >>> 16 & 0xfff).toString(16).padStart(3, "0")
  return decode(`${time.slice(0, 8)}-${time.slice(8)}-7${randA}-8${randB}-${counter.toString(16).padStart(12, "0")}`)
}
