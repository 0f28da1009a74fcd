import { describe, expect, it } from "@effect/vitest"
import { OtelConfig } from "@sg/otel"
import { ConfigProvider, Duration, Effect, Either, Option } from "effect"

const read = (env: Record<string, string>) =>
  OtelConfig.settings.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

const settingsOf = (env: Record<string, string>) => Effect.map(read(env), Option.getOrThrow)

const errorOf = (env: Record<string, string>) =>
  Effect.map(Effect.either(read(env)), (result) => (Either.isLeft(result) ? String(result.left) : "no error"))

describe("OtelConfig", () => {
  it.effect("no endpoint, or OTEL_SDK_DISABLED=true: export is off", () =>
    Effect.gen(function*() {
      expect(yield* read({})).toEqual(Option.none())
      expect(yield* read({ OTEL_SERVICE_NAME: "x", SG_OTEL_CONTENT: "on" })).toEqual(Option.none())
      expect(yield* read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" })).toEqual(
        Option.none()
      )
    }))

  it.effect("the defaults: protobuf, service sg, contents off, the records' rate and cut, the standard queue", () =>
    Effect.gen(function*() {
      const s = yield* settingsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" })
      expect(s).toMatchObject({
        url: "http://collector:4318/v1/traces",
        protocol: "http/protobuf",
        headers: {},
        serviceName: "sg",
        content: false,
        sampleSuccess: 0.1,
        truncate: 500,
        maxQueueSize: 2048,
        maxBatchSize: 512
      })
      expect(Duration.toMillis(s.exportTimeout)).toBe(10_000)
      expect(Duration.toMillis(s.scheduledDelay)).toBe(5000)
    }))

  it.effect("the traces endpoint is used as given and wins over the base one", () =>
    Effect.gen(function*() {
      const s = yield* settingsOf({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://cloud.langfuse.com/api/public/otel/v1/traces"
      })
      expect(s.url).toBe("https://cloud.langfuse.com/api/public/otel/v1/traces")
      expect((yield* settingsOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://h:6006/api/otel" })).url).toBe(
        "http://h:6006/api/otel/v1/traces"
      )
    }))

  it.effect("headers, resource attributes, service name, protocol, timeouts, rates, from the environment", () =>
    Effect.gen(function*() {
      const s = yield* settingsOf({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
        OTEL_EXPORTER_OTLP_HEADERS: "Authorization=Basic%20cGs6c2s=, x-tenant = a ",
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: "x-tenant=b",
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod,service.name=from-attrs,team=a%2Cb",
        OTEL_EXPORTER_OTLP_TIMEOUT: "2500",
        OTEL_BSP_SCHEDULE_DELAY: "100",
        OTEL_BSP_MAX_QUEUE_SIZE: "100",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "500",
        SG_SAMPLE_SUCCESS: "0.5",
        SG_OTEL_SAMPLE_SUCCESS: "1",
        SG_OTEL_CONTENT: "on",
        SG_TRUNCATE: "80"
      })
      expect(s).toMatchObject({
        protocol: "http/json",
        headers: { Authorization: "Basic cGs6c2s=", "x-tenant": "b" },
        serviceName: "from-attrs",
        resourceAttributes: { "deployment.environment": "prod", team: "a,b" },
        content: true,
        sampleSuccess: 1,
        truncate: 80,
        maxQueueSize: 100,
        maxBatchSize: 100
      })
      expect(Duration.toMillis(s.exportTimeout)).toBe(2500)
      expect(Duration.toMillis(s.scheduledDelay)).toBe(100)
      const named = yield* settingsOf({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
        OTEL_SERVICE_NAME: "gateway-eu",
        OTEL_RESOURCE_ATTRIBUTES: "service.name=other",
        SG_SAMPLE_SUCCESS: "0.25"
      })
      expect(named.serviceName).toBe("gateway-eu")
      expect(named.sampleSuccess).toBe(0.25)
    }))

  it.effect("a bad value names its variable, never a header's value", () =>
    Effect.gen(function*() {
      const base = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }
      expect(yield* errorOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toContain("OTEL_EXPORTER_OTLP_ENDPOINT")
      expect(yield* errorOf({ ...base, OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" })).toContain("grpc is not supported")
      const credentials = yield* errorOf({ OTEL_EXPORTER_OTLP_ENDPOINT: "https://pk:s3cr3t@cloud.example/otel" })
      expect(credentials).toContain("OTEL_EXPORTER_OTLP_HEADERS")
      expect(credentials).not.toContain("s3cr3t")
      expect(yield* errorOf({ ...base, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "thrift" })).toContain(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
      )
      const headers = yield* errorOf({ ...base, OTEL_EXPORTER_OTLP_HEADERS: "api-key=s3cr3t,oops" })
      expect(headers).toContain("OTEL_EXPORTER_OTLP_HEADERS")
      expect(headers).not.toContain("s3cr3t")
      expect(yield* errorOf({ ...base, OTEL_EXPORTER_OTLP_HEADERS: "bad key=s3cr3t" })).not.toContain("s3cr3t")
      expect(yield* errorOf({ ...base, SG_OTEL_SAMPLE_SUCCESS: "2" })).toContain("SG_OTEL_SAMPLE_SUCCESS")
      expect(yield* errorOf({ ...base, SG_OTEL_CONTENT: "maybe" })).toContain("SG_OTEL_CONTENT")
      expect(yield* errorOf({ ...base, OTEL_EXPORTER_OTLP_TIMEOUT: "0" })).toContain("OTEL_EXPORTER_OTLP_TIMEOUT")
    }))
})
