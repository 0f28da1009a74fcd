import { describe, expect, it, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Environment, Serve } from "@sg/supervisor"
import { TraceStore, TraceWatchdog } from "@sg/trace"
import * as HttpServer from "@effect/platform/HttpServer"
import {
  Clock,
  ConfigProvider,
  Context,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  Option,
  Schedule,
  Scope
} from "effect"
import * as Http from "./utils/http.js"
import { waitUntil } from "./utils/processes.js"

/** Runs with exactly these environment variables. */
const withEnv = (entries: Readonly<Record<string, string>>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(entries))))

describe("sg serve's configuration", () => {
  it.live.each([
    [{ PORT: "http" }, "PORT"],
    [{ PORT: "70000" }, "PORT"],
    [{ PORT: "-1" }, "PORT"],
    [{ SG_SHUTDOWN_GRACE: "0 seconds" }, "SG_SHUTDOWN_GRACE"],
    [{ SG_SHUTDOWN_GRACE: "later" }, "SG_SHUTDOWN_GRACE"],
    [{ REDIS_URL: "localhost:6379" }, "REDIS_URL"],
    [{ REDIS_URL: "redis://127.0.0.1:1", SG_KEY_PREFIX: "a b" }, "SG_KEY_PREFIX"],
    [{ SG_SWEEP_INTERVAL: "0 minutes" }, "SG_SWEEP_INTERVAL"],
    [{ SG_ORPHAN_THRESHOLD: "never" }, "SG_ORPHAN_THRESHOLD"],
    [{ SG_TERMINAL_TTL: "soon" }, "SG_TERMINAL_TTL"],
    [{ SG_EXEC_TTL: "0 seconds" }, "SG_EXEC_TTL"],
    [{ SG_LEASE_TTL: "1 millis" }, "SG_LEASE_TTL"],
    [{ SG_BREAKER_THRESHOLD: "three" }, "SG_BREAKER_THRESHOLD"],
    [{ SG_BREAKER_COOLDOWN: "soon" }, "SG_BREAKER_COOLDOWN"],
    [{ SG_BREAKER_COOLDOWN_MAX: "1 second" }, "SG_BREAKER_COOLDOWN_MAX"],
    [{ SG_BREAKER_COOLDOWN_MAX: "a while" }, "SG_BREAKER_COOLDOWN_MAX"],
    [{ REDIS_URL: "redis://127.0.0.1:1", SG_BREAKER_SHARED: "maybe" }, "SG_BREAKER_SHARED"],
    [{ SG_SAMPLE_SUCCESS: "2" }, "SG_SAMPLE_SUCCESS"],
    [{ SG_TRUNCATE: "0" }, "SG_TRUNCATE"],
    [{ SG_MODEL: "gpt" }, "SG_MODEL"],
    [{ SG_MODEL: "openai" }, "OPENAI_API_KEY"],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT"],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:1", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, "grpc"],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:1", SG_OTEL_SAMPLE_SUCCESS: "x" }, "SG_OTEL_SAMPLE_SUCCESS"],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:1", SG_OTEL_CONTENT: "sometimes" }, "SG_OTEL_CONTENT"],
    [{ SG_API_KEYS: "too-short" }, "SG_API_KEYS entry 1"],
    [{ SG_API_KEYS: "sk-0123456789abcdef:acme:write" }, "SG_API_KEYS entry 1"],
    [{ SG_API_KEYS_FILE: "/nonexistent/sg-keys" }, "SG_API_KEYS_FILE"],
    [{ SG_RATE_LIMIT: "lots" }, "SG_RATE_LIMIT"],
    [{ SG_METRICS_PUBLIC: "sometimes" }, "SG_METRICS_PUBLIC"],
    [{ SG_HOST: "0.0.0.0" }, "SG_INSECURE"],
    [{ SG_HOST: "0.0.0.0", SG_INSECURE: "perhaps" }, "SG_INSECURE"]
  ] as const)("%o is refused with an error naming %s, before anything listens", ([env, variable]) =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(Serve.layer).pipe(Effect.scoped))
      expect(String(error)).toContain(variable)
    }).pipe(withEnv({ PORT: "0", REDIS_URL: "", ...env })))

  it.live("a bad API key entry is named by its position, never by the key", () =>
    Effect.gen(function*() {
      const good = "sk-serve-good-1a2b3c4d5e6f7a8b"
      const bad = "sk-serve-bad-9f8e7d6c5b4a3f2e"
      for (const list of [`${good},${bad}:acme:write`, `${good},${bad}:no tenant:run`, `${good},${good}`]) {
        const error = yield* Effect.flip(Layer.build(Serve.layer).pipe(Effect.scoped)).pipe(
          withEnv({ PORT: "0", REDIS_URL: "", SG_API_KEYS: list })
        )
        const text = `${String(error)} ${JSON.stringify(error)}`
        expect(text).toContain("SG_API_KEYS entry 2")
        expect(text).not.toContain(good)
        expect(text).not.toContain(bad)
      }
    }))

  it.live("the defaults: port 8080 and a 10 second grace", () =>
    Effect.gen(function*() {
      const settings = yield* Serve.config.pipe(withEnv({}))
      expect(settings.port).toBe(8080)
      expect(Duration.toMillis(settings.shutdownGrace)).toBe(10_000)
    }))

  it.live("Environment.backendLayer without REDIS_URL: the memory store, and no Redis client", () =>
    Effect.gen(function*() {
      expect(Option.isNone(yield* Effect.serviceOption(RedisClient.RedisClient))).toBe(true)
      expect((yield* TraceStore.TraceStore).backend).toBe("memory")
    }).pipe(Effect.provide(Environment.backendLayer), withEnv({})))
})

describe("sg serve's stop, in process", () => {
  it.live("a request still in flight when the grace ends has its connection closed, and the stop completes", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const collect = Logger.add(Logger.make(({ message }) => {
        lines.push(Array.isArray(message) ? message.join(" ") : String(message))
      }))
      yield* Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Serve.layer, scope)
        const address = Context.get(context, HttpServer.HttpServer).address
        const port = address._tag === "TcpAddress" ? address.port : 0
        // The trace id is ours, so its lifecycle record (RECEIVED while the body is still coming) tells us it arrived.
        const id = "0190a000-0000-7000-8000-00000000abcd"
        const stuck = yield* Http.halfSentRun(port, { input: "what is 1+1?" }, { "x-trace-id": id })
        yield* waitUntil("the request to arrive", Effect.map(Http.get(port, `/api/traces/${id}`),
          (a) => a.status === 200 && a.json.lifecycle.state === "RECEIVED"), "5 seconds")
        const start = yield* Clock.currentTimeMillis
        const stopping = yield* Effect.fork(Scope.close(scope, Exit.void))
        const failure = yield* Effect.flip(stuck.answer)
        const waited = (yield* Clock.currentTimeMillis) - start
        expect(failure.message).toMatch(/socket hang up|ECONNRESET/)
        expect(waited).toBeGreaterThanOrEqual(450)
        expect(waited).toBeLessThan(3_000)
        yield* Fiber.join(stopping)
        expect(lines).toContainEqual(expect.stringContaining("1 request(s) in flight get up to 500ms"))
        expect(lines).toContain("grace period over: closing the connections of 1 request(s) still in flight")
        expect(lines.indexOf("server stopped")).toBeGreaterThan(-1)
      }).pipe(Effect.scoped, Effect.provide(collect))
    }).pipe(withEnv({ PORT: "0", REDIS_URL: "", SG_SHUTDOWN_GRACE: "500 millis" })), 30_000)
})

const redis = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

layer(redis, { excludeTestServices: true })("Environment.backendLayer", (it) => {
  it.effect("with REDIS_URL: the Redis client is in the context, shared with the store and the lease", () =>
    Effect.gen(function*() {
      const test = yield* RedisTestServer.RedisTestServer
      const client = yield* RedisClient.RedisClient
      const connections = Effect.orDie(client.use("CLIENT", (c) => c.client("LIST"))).pipe(
        Effect.map((list) => String(list).trim().split("\n").length)
      )
      const before = yield* connections
      yield* Effect.gen(function*() {
        const shared = yield* Effect.serviceOption(RedisClient.RedisClient)
        expect(Option.map(shared, (c) => c.target)).toEqual(Option.some(test.url))
        expect((yield* TraceStore.TraceStore).backend).toBe("redis")
        yield* (yield* TraceWatchdog.TraceWatchdog).status.pipe(
          Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (s) => s.leader }),
          Effect.timeout("10 seconds")
        )
        expect(yield* connections).toBe(before + 1)
      }).pipe(Effect.provide(Environment.backendLayer), withEnv({ REDIS_URL: test.url }))
    }))
})
