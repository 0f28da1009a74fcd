import { HttpClient, HttpClientRequest } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { RedisTestServer } from "@sg/redis/testing"
import { CircuitBreaker } from "@sg/resilience"
import { ExecutionRecord, ExecutionStore, Recorder, TraceId, TraceIdGenerator, TraceStore, TraceWatchdog } from "@sg/trace"
import { ConfigProvider, Context, Duration, Effect, Layer, Logger, Option, Ref, TestClock } from "effect"
import * as Sg from "../src/Sg.js"
import * as StandIn from "../src/StandIn.js"
import * as Weather from "../src/Weather.js"

/** The stand-in upstream's switch, and how many calls reached it. */
class Upstream extends Context.Tag("test/Upstream")<Upstream, {
  readonly down: Ref.Ref<boolean>
  readonly calls: Ref.Ref<number>
}>() {}

const UpstreamLive = Layer.effect(Upstream, Effect.all({ down: Ref.make(false), calls: Ref.make(0) }))

const ForecastLive = Layer.unwrapEffect(
  Effect.map(Upstream, ({ calls, down }) =>
    Weather.layerForecastApi("http://forecast.test").pipe(
      Layer.provide(Layer.succeed(
        HttpClient.HttpClient,
        StandIn.make({ down }).pipe(HttpClient.tapRequest(() => Ref.update(calls, (n) => n + 1)))
      ))
    ))
)

/** The service as `main.ts` builds it, over the given sg layer, on a free port. */
const serviceOver = <E, R>(sg: Layer.Layer<Layer.Layer.Success<ReturnType<typeof Sg.layer>>, E, R>) =>
  Weather.layer.pipe(
    Layer.provide(ForecastLive),
    Layer.provideMerge(NodeHttpServer.layerTest),
    Layer.provideMerge(sg),
    Layer.provideMerge(UpstreamLive)
  )

/** The service over sg's memory layers. */
const TestService = serviceOver(Sg.layer(Sg.Memory))

/**
 * sg's settings for the tests, whatever the environment holds: every successful record kept, and a lease renewed
 * every 100 seconds rather than every 5 (35 minutes of `TestClock` would otherwise wake the renewal loop 420 times,
 * three seconds of test). DESIGN.md's defaults for the rest.
 */
const settings = ConfigProvider.fromMap(new Map([["SG_SAMPLE_SUCCESS", "1"], ["SG_LEASE_TTL", "5 minutes"]]))

const inService = <A, E>(effect: Effect.Effect<A, E, Layer.Layer.Success<typeof TestService>>) =>
  effect.pipe(Effect.provide(TestService), Effect.withConfigProvider(settings))

/** A GET to the service (the test's own calls are not traced, so the service mints every trace id). */
const get = (path: string) =>
  Effect.gen(function*() {
    const client = (yield* HttpClient.HttpClient).pipe(HttpClient.withTracerDisabledWhen(() => true))
    const response = yield* client.execute(HttpClientRequest.get(path))
    const text = yield* response.text
    const body: unknown = response.headers["content-type"]?.includes("json") ? JSON.parse(text) : text
    const traceId = Option.getOrThrow(TraceId.parse(response.headers["x-trace-id"] ?? ""))
    return { status: response.status, body, traceId, traceparent: response.headers["traceparent"] }
  })

/** The execution record of a trace, once the recorder has saved what it holds. */
const recordOf = (id: TraceId.TraceId) =>
  Effect.gen(function*() {
    yield* (yield* Recorder.Recorder).flush
    return Option.getOrThrow(yield* (yield* ExecutionStore.ExecutionStore).get(id))
  })

describe("the weather service with sg", () => {
  it.effect("a request gets a trace id, a lifecycle record and an execution record", () =>
    inService(Effect.gen(function*() {
      const answer = yield* get("/weather/paris")
      expect(answer.status).toBe(200)
      expect(answer.body).toEqual({ ...StandIn.forecastOf("paris"), source: "upstream" })
      expect(TraceId.versionOf(answer.traceId)).toBe(7)
      expect(answer.traceparent).toMatch(new RegExp(`^00-${TraceId.toHex(answer.traceId)}-[0-9a-f]{16}-01$`))

      const lifecycle = Option.getOrThrow(yield* (yield* TraceStore.TraceStore).get(answer.traceId))
      expect(lifecycle.state).toBe("COMPLETED")
      expect(lifecycle.fields).toMatchObject({ method: "GET", route: "/weather/paris" })

      const record = yield* recordOf(answer.traceId)
      expect(record.status).toBe("success")
      expect(record.runs).toHaveLength(1)
      expect(record.runs[0]!.agent_id).toBe(ExecutionRecord.UNATTRIBUTED)
      expect(record.runs[0]!.tool_calls).toMatchObject([{ tool: "forecast", status: "success", input: "paris" }])
      expect(record.runs[0]!.tool_calls[0]!.output).toContain("\"conditions\"")

      // Every response carries a trace id; only the routes the lifecycle predicate picks get a lifecycle record.
      const health = yield* get("/healthz")
      expect(health.body).toBe("ok")
      expect(health.traceId).not.toBe(answer.traceId)
      expect(yield* (yield* TraceStore.TraceStore).get(health.traceId)).toEqual(Option.none())
    })))

  it.effect("three upstream failures open the breaker: a fallback, until a trial after the cool-down succeeds", () =>
    inService(Effect.gen(function*() {
      const upstream = yield* Upstream
      const breakers = yield* CircuitBreaker.CircuitBreaker
      yield* Ref.set(upstream.down, true)

      for (let i = 0; i < 3; i++) {
        const failed = yield* get("/weather/paris")
        expect(failed.status).toBe(502)
        expect(failed.body).toMatchObject({ error: "upstream_error" })
        const lifecycle = Option.getOrThrow(yield* (yield* TraceStore.TraceStore).get(failed.traceId))
        expect(lifecycle.state).toBe("ERRORED")
        expect(lifecycle.fields["error"]).toBe("upstream_error")
      }
      expect((yield* breakers.status("forecast-api")).state).toBe("open")

      const fallback = yield* get("/weather/paris")
      expect(fallback.status).toBe(200)
      expect(fallback.body).toEqual({
        city: "paris",
        temperature_c: null,
        conditions: "unknown",
        source: "fallback",
        retry_after_seconds: 30
      })
      expect(yield* Ref.get(upstream.calls)).toBe(3)
      const rejected = yield* recordOf(fallback.traceId)
      expect(rejected.status).toBe("success")
      expect(rejected.runs[0]!.tool_calls).toMatchObject([
        { tool: "forecast", status: "error", circuit: "forecast-api" }
      ])

      yield* Ref.set(upstream.down, false)
      yield* TestClock.adjust("29 seconds")
      expect((yield* get("/weather/paris")).body).toMatchObject({ source: "fallback", retry_after_seconds: 1 })
      yield* TestClock.adjust("1 second")
      const trial = yield* get("/weather/paris")
      expect(trial.body).toEqual({ ...StandIn.forecastOf("paris"), source: "upstream" })
      expect(yield* Ref.get(upstream.calls)).toBe(4)
      expect((yield* breakers.status("forecast-api")).state).toBe("closed")
    })))

  it.effect("the watchdog, leading its lease, retires a trace orphaned by a dead replica after 30 minutes", () =>
    inService(Effect.gen(function*() {
      const store = yield* TraceStore.TraceStore
      // What a replica that died mid-request leaves behind: a trace in flight that nothing will finish.
      const orphan = yield* (yield* TraceIdGenerator.TraceIdGenerator).next
      yield* store.create(orphan, "INFERRING", { method: "GET", route: "/weather/paris" })
      const served = (yield* get("/weather/oslo")).traceId
      yield* Effect.yieldNow()

      yield* TestClock.adjust("25 minutes")
      expect(Option.getOrThrow(yield* store.get(orphan)).state).toBe("INFERRING")
      yield* TestClock.adjust("10 minutes")
      const retired = Option.getOrThrow(yield* store.get(orphan))
      expect(retired.state).toBe("ERRORED")
      expect(retired.fields["error"]).toBe("orphaned")
      expect(yield* store.isActive(orphan)).toBe(false)
      expect(Option.getOrThrow(yield* store.get(served)).state).toBe("COMPLETED")

      const status = yield* (yield* TraceWatchdog.TraceWatchdog).status
      expect(status.leader).toBe(true)
      expect(status.last_sweep?.ok).toBe(true)
    })))

  it.live("with REDIS_URL set, as main.ts runs it, the traces and the watchdog's lease are in Redis", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const redis = ConfigProvider.fromMap(new Map([["REDIS_URL", server.url], ["SG_KEY_PREFIX", server.prefix]]))
      yield* Effect.gen(function*() {
        const store = yield* TraceStore.TraceStore
        expect(store.backend).toBe("redis")
        const answer = yield* get("/weather/paris")
        expect(answer.status).toBe(200)
        expect(Option.getOrThrow(yield* store.get(answer.traceId)).state).toBe("COMPLETED")
        const ttl = Duration.toSeconds(Option.getOrThrow(yield* store.ttl(answer.traceId)))
        expect(ttl).toBeGreaterThan(3590)
        expect(ttl).toBeLessThanOrEqual(3600)
        const watchdog = yield* TraceWatchdog.TraceWatchdog
        const swept = yield* Effect.repeat(Effect.zipLeft(watchdog.status, Effect.sleep("20 millis")), {
          until: (status) => status.last_sweep !== null,
          times: 100
        })
        expect(swept).toMatchObject({ leader: true, last_sweep: { ok: true } })
      }).pipe(Effect.provide(serviceOver(Sg.layerConfig)), Effect.withConfigProvider(redis))
    }).pipe(Effect.provide(Layer.merge(RedisTestServer.layer, Logger.remove(Logger.defaultLogger)))))
})
