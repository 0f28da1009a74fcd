/**
 * Checks of the trace headers every gateway response carries.
 */
import { expect } from "@effect/vitest"
import { TraceId } from "@sg/trace"
import { Option } from "effect"
import type { Answer } from "./TestGateway.js"

/** What a response's trace headers say. */
export interface TraceHeaders {
  readonly traceId: TraceId.TraceId
  readonly spanId: string
  readonly flags: number
}

/**
 * Asserts `x-trace-id` is a trace id and `traceparent` a strictly valid W3C header of that same trace, without the
 * random flag; returns what they say.
 */
export const traceHeadersOf = (answer: Answer): TraceHeaders => {
  const xTraceId = answer.headers["x-trace-id"]
  const traceparent = answer.headers["traceparent"]
  expect(typeof xTraceId, `x-trace-id on ${answer.status} ${answer.text}`).toBe("string")
  expect(typeof traceparent, `traceparent on ${answer.status} ${answer.text}`).toBe("string")
  const traceId = Option.getOrThrow(TraceId.parse(xTraceId as string))
  const parsed = Option.getOrThrow(TraceId.fromTraceparent(traceparent as string))
  expect(parsed.traceId).toBe(traceId)
  expect(parsed.flags & 0x02).toBe(0)
  return { traceId, spanId: parsed.parentId, flags: parsed.flags }
}

/** Asserts the response's trace id was minted by sg (a UUIDv7) and returns it. */
export const mintedIdOf = (answer: Answer): TraceId.TraceId => {
  const { traceId } = traceHeadersOf(answer)
  expect(TraceId.versionOf(traceId)).toBe(7)
  return traceId
}
