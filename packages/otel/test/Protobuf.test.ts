import { describe, expect, it } from "@effect/vitest"
import { Otel, type OtlpSpan } from "@sg/otel"
import * as OtlpTestReceiver from "@sg/otel/OtlpTestReceiver"
import { encodeTraces } from "../src/internal/protobuf.js"

const span: OtlpSpan.OtlpSpan = {
  traceId: "0190a1b2c3d47e5f8a6b7c8d9e0f1a2b",
  spanId: "00f067aa0ba902b7",
  parentSpanId: "1111222233334444",
  name: "chat gpt-4o — ünïcode ✓",
  kind: 3,
  startTimeUnixNano: "1763870000123456789",
  endTimeUnixNano: "9223372036854775807",
  attributes: [
    { key: "s", value: { stringValue: "text with \"quotes\" and 日本語" } },
    { key: "empty", value: { stringValue: "" } },
    { key: "t", value: { boolValue: true } },
    { key: "f", value: { boolValue: false } },
    { key: "int", value: { intValue: 9007199254740991 } },
    { key: "negative", value: { intValue: -42 } },
    { key: "zero", value: { intValue: 0 } },
    { key: "double", value: { doubleValue: -0.125 } },
    { key: "array", value: { arrayValue: { values: [{ stringValue: "stop" }, { intValue: 2 }] } } },
    { key: "kv", value: { kvlistValue: { values: [{ key: "inner", value: { boolValue: true } }] } } }
  ],
  droppedAttributesCount: 3,
  events: [{
    timeUnixNano: "1763870000200000000",
    name: "exception",
    attributes: [{ key: "exception.type", value: { stringValue: "UpstreamError" } }],
    droppedAttributesCount: 0
  }],
  droppedEventsCount: 0,
  links: [],
  droppedLinksCount: 0,
  status: { code: 2, message: "model provider failed" }
}

const root: OtlpSpan.OtlpSpan = { ...span, spanId: "aaaabbbbccccdddd", parentSpanId: undefined, status: { code: 0 } }

describe("the protobuf writer", () => {
  it("writes what the official definitions read, the same as the JSON form", () => {
    const resource = Otel.resourceOf("sg", { "deployment.environment": "test" })
    const scope = { name: "@sg/otel", version: "0.1.0" }
    const schemaUrl = "https://opentelemetry.io/schemas/1.41.0"
    const binary = OtlpTestReceiver.decode(
      "application/x-protobuf",
      Buffer.from(encodeTraces({ resource, scope, schemaUrl, spans: [span, root] }))
    )
    const request = { resourceSpans: [{ resource, scopeSpans: [{ scope, schemaUrl, spans: [span, root] }] }] }
    const json = OtlpTestReceiver.decode("application/json", Buffer.from(JSON.stringify(request)))
    expect(typeof binary).not.toBe("string")
    expect(binary).toEqual(json)
    const [decoded, decodedRoot] = binary as ReadonlyArray<OtlpTestReceiver.ReceivedSpan>
    expect(decoded).toMatchObject({
      traceId: span.traceId,
      spanId: span.spanId,
      parentSpanId: span.parentSpanId,
      name: span.name,
      kind: 3,
      startTimeUnixNano: "1763870000123456789",
      endTimeUnixNano: "9223372036854775807",
      status: { code: 2, message: "model provider failed" },
      resource: { "service.name": "sg", "deployment.environment": "test", "telemetry.sdk.name": "@sg/otel" },
      scope,
      schemaUrl
    })
    expect(decoded!.attributes).toEqual({
      s: "text with \"quotes\" and 日本語",
      empty: "",
      t: true,
      f: false,
      int: 9007199254740991,
      negative: -42,
      zero: 0,
      double: -0.125,
      array: ["stop", 2],
      kv: { inner: true }
    })
    expect(decoded!.events).toEqual([{ name: "exception", attributes: { "exception.type": "UpstreamError" } }])
    expect(decodedRoot!.parentSpanId).toBeUndefined()
    expect(decodedRoot!.status).toEqual({ code: 0, message: undefined })
  })

  it("a body that is not an export request is refused by the receiver's decoder", () => {
    expect(typeof OtlpTestReceiver.decode("application/x-protobuf", Buffer.from([0xff, 0xff, 0xff]))).toBe("string")
    expect(typeof OtlpTestReceiver.decode("application/json", Buffer.from("{\"resourceSpans\": 3}"))).toBe("string")
  })
})
