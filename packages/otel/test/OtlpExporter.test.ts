import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Otel, OtlpExporter, type OtlpSpan } from "@sg/otel"
import * as OtlpTestReceiver from "@sg/otel/OtlpTestReceiver"
import { type Duration, Effect, Exit, Metric, Scope } from "effect"

const traceId = "0190a1b2c3d47e5f8a6b7c8d9e0f1a2b"

const spanOf = (i: number): OtlpSpan.OtlpSpan => ({
  traceId,
  spanId: (0x1000000000000 + i).toString(16).padStart(16, "0"),
  name: `span ${i}`,
  kind: 1,
  startTimeUnixNano: "1763870000000000000",
  endTimeUnixNano: "1763870000001000000",
  attributes: [{ key: "i", value: { intValue: i } }],
  droppedAttributesCount: 0,
  events: [],
  droppedEventsCount: 0,
  links: [],
  droppedLinksCount: 0,
  status: { code: 0 }
})

const spans = (from: number, n: number) => Array.from({ length: n }, (_, i) => spanOf(from + i))

/** An exporter to `receiver` in a scope of its own, so a test can close it. */
const start = (receiver: OtlpTestReceiver.Receiver, options?: Partial<OtlpExporter.Options>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const exporter = yield* OtlpExporter.make({
      url: receiver.url,
      resource: Otel.resourceOf("exporter-test"),
      maxQueueSize: 100,
      maxBatchSize: 10,
      scheduledDelay: "20 millis",
      exportTimeout: "1 second",
      maxRetries: 1,
      shutdownTimeout: "2 seconds",
      ...options
    }).pipe(Effect.provide(FetchHttpClient.layer), Scope.extend(scope))
    return { exporter, close: Scope.close(scope, Exit.void) }
  })

/** Polls until `check` holds, failing after `limit`. */
const eventually = (what: string, check: Effect.Effect<boolean>, limit: Duration.DurationInput = "10 seconds") =>
  Effect.gen(function*() {
    while (!(yield* check)) yield* Effect.sleep("20 millis")
  }).pipe(Effect.timeoutFail({ duration: limit, onTimeout: () => new Error(`timed out waiting for ${what}`) }))

const received = (receiver: OtlpTestReceiver.Receiver) => Effect.map(receiver.spans, (s) => s.map((x) => x.name))

const droppedCount = (reason: OtlpExporter.DropReason) =>
  Effect.map(Metric.value(OtlpExporter.spansDropped.pipe(Metric.tagged("reason", reason))), (state) => state.count)

describe("OtlpExporter against a bad collector", () => {
  it.scopedLive("down: offers never wait, the queue stays capped, drops are counted, export resumes when back", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      yield* receiver.down
      const { exporter } = yield* start(receiver)
      const failedBefore = yield* droppedCount("export_failed")
      const fullBefore = yield* droppedCount("queue_full")
      let maxQueued = 0
      for (let round = 0; round < 20; round++) {
        exporter.offer(spans(round * 50, 50))
        maxQueued = Math.max(maxQueued, (yield* exporter.stats).queued)
        yield* Effect.sleep("50 millis")
      }
      expect(maxQueued).toBeLessThanOrEqual(100)
      yield* eventually("failed exports to be counted", Effect.map(exporter.stats, (s) => s.failing && s.dropped > 0))
      expect((yield* droppedCount("export_failed")) - failedBefore).toBeGreaterThan(0)
      expect((yield* droppedCount("queue_full")) - fullBefore).toBeGreaterThan(0)
      const stats = yield* exporter.stats
      expect(stats.exported).toBe(0)
      expect(stats.dropped + stats.queued).toBeLessThanOrEqual(1000)

      yield* receiver.up
      yield* Effect.sleep("1500 millis") // what was queued while it was down is sent or given up by now
      exporter.offer(spans(5000, 3))
      yield* eventually("export to resume", Effect.map(received(receiver), (names) => names.includes("span 5002")))
      yield* eventually("the burst to end", Effect.map(exporter.stats, (s) => !s.failing))
    }), { timeout: 60_000 })

  it.scopedLive("slow: one export at a time, the queue fills and drops, nothing waits; resumes when it is fast", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      yield* receiver.setBehavior({ _tag: "Slow", delay: "1500 millis" })
      const { exporter } = yield* start(receiver, { exportTimeout: "5 seconds" })
      for (let round = 0; round < 10; round++) {
        const started = performance.now()
        exporter.offer(spans(round * 40, 40))
        expect(performance.now() - started).toBeLessThan(50)
        yield* Effect.sleep("100 millis")
      }
      const stats = yield* exporter.stats
      expect(stats.queued).toBeLessThanOrEqual(100)
      expect(stats.dropped).toBeGreaterThan(0)
      expect(yield* receiver.attempts).toBeLessThanOrEqual(2)
      yield* receiver.setBehavior({ _tag: "Accept" })
      yield* eventually("the queue to drain", Effect.map(exporter.stats, (s) => s.queued === 0))
      exporter.offer(spans(9000, 2))
      yield* eventually("the late spans", Effect.map(received(receiver), (names) => names.includes("span 9001")))
    }), { timeout: 60_000 })

  it.scopedLive("a collector that rejects a batch (400): dropped at once, not retried", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      yield* receiver.setBehavior({ _tag: "Status", status: 400 })
      const before = yield* droppedCount("rejected")
      const { exporter } = yield* start(receiver, { maxRetries: 3 })
      exporter.offer(spans(0, 5))
      yield* eventually("the rejection", Effect.map(exporter.stats, (s) => s.dropped === 5))
      expect(yield* receiver.attempts).toBe(1)
      expect((yield* droppedCount("rejected")) - before).toBe(5)
    }))

  it.scopedLive("503 is retried after a back-off, and the batch gets through", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      yield* receiver.setBehavior({ _tag: "Status", status: 503 })
      const { exporter } = yield* start(receiver, { maxRetries: 3 })
      exporter.offer(spans(0, 5))
      yield* eventually("a first attempt", Effect.map(receiver.attempts, (n) => n >= 1))
      yield* receiver.setBehavior({ _tag: "Accept" })
      yield* eventually("the retried batch", Effect.map(received(receiver), (names) => names.length === 5))
      expect(yield* receiver.attempts).toBeGreaterThanOrEqual(2)
      expect((yield* exporter.stats).dropped).toBe(0)
    }))

  it.scopedLive("closing the scope sends what is queued", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      const { close, exporter } = yield* start(receiver, { scheduledDelay: "1 hour", maxBatchSize: 512 })
      exporter.offer(spans(0, 30))
      yield* Effect.sleep("100 millis")
      expect(yield* receiver.attempts).toBe(0)
      yield* close
      expect((yield* received(receiver)).length).toBe(30)
    }))

  it.scopedLive("closing while the collector hangs gives up after shutdownTimeout and counts the rest", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      yield* receiver.setBehavior({ _tag: "Slow", delay: "30 seconds" })
      const before = yield* droppedCount("shutdown")
      const { close, exporter } = yield* start(receiver, {
        scheduledDelay: "1 hour",
        exportTimeout: "30 seconds",
        shutdownTimeout: "500 millis"
      })
      exporter.offer(spans(0, 30))
      const started = performance.now()
      yield* close
      expect(performance.now() - started).toBeLessThan(5000)
      expect((yield* droppedCount("shutdown")) - before).toBe(30)
      // After the close, offers are counted as shut down, never queued.
      exporter.offer(spans(100, 2))
      expect((yield* exporter.stats).queued).toBe(0)
    }), { timeout: 30_000 })
})
