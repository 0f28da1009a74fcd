import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Otel, OtlpExporter } from "@sg/otel"
import * as OtlpTestReceiver from "@sg/otel/OtlpTestReceiver"
import { type ExecutionRecord, ExecutionSpan, Recorder, TraceExporter } from "@sg/trace"
import { ConfigProvider, Deferred, Effect, Layer } from "effect"
import { asRequest, exportedTo, traceIdOf } from "./utils/exported.js"

const id = traceIdOf("0190a1b2c3d47e5f8a6b7c8d9e0f1a2b")

describe("the recorder's export hook", () => {
  it.scopedLive("a span that ends after its trace was exported follows alone; no span is exported twice", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      const release = yield* Deferred.make<void>()
      const done = yield* Deferred.make<void>()
      // The request answers while a tool call it forked is still running.
      const program = Effect.gen(function*() {
        yield* Effect.forkDaemon(
          Deferred.await(release).pipe(
            ExecutionSpan.tool("slow_lookup"),
            Effect.ensuring(Deferred.succeed(done, undefined))
          )
        )
        return "answered"
      }).pipe(ExecutionSpan.agentRun({ agentId: "hasty" }), asRequest(id))
      const late = Effect.gen(function*() {
        yield* program
        yield* (yield* Recorder.Recorder).flush
        yield* (yield* OtlpExporter.OtlpExporter).flush
        const first = (yield* receiver.spans).map((s) => s.name).sort()
        yield* Deferred.succeed(release, undefined)
        yield* Deferred.await(done)
        yield* Effect.sleep("50 millis")
        return first
      })
      const { exit, spans } = yield* exportedTo(receiver, late, { recorder: { grace: "10 millis" } })
      expect(exit).toMatchObject({ _tag: "Success", value: ["POST /v1/runs", "invoke_agent hasty"] })
      const names = spans.map((s) => s.name).sort()
      expect(names).toEqual(["POST /v1/runs", "execute_tool slow_lookup", "invoke_agent hasty"])
      expect(new Set(spans.map((s) => s.spanId)).size).toBe(3)
      const [run] = spans.filter((s) => s.name === "invoke_agent hasty")
      expect(spans.find((s) => s.name === "execute_tool slow_lookup")!.parentSpanId).toBe(run!.spanId)
    }))

  it.scopedLive("SG_RECORD=off with export on: the spans are exported, no record is built or saved", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpTestReceiver.make
      const records: Array<ExecutionRecord.ExecutionRecord> = []
      const save = (record: ExecutionRecord.ExecutionRecord) => Effect.sync(() => void records.push(record))
      const layer = Recorder.layerConfig({ save }).pipe(
        Layer.provideMerge(Otel.layer({ url: receiver.url, sampleSuccess: 1, scheduledDelay: "20 millis" })),
        Layer.provide(FetchHttpClient.layer),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["SG_RECORD", "off"]]))))
      )
      yield* Effect.gen(function*() {
        const recorder = yield* Recorder.Recorder
        expect(recorder.enabled).toBe(true)
        yield* Effect.fail("broke").pipe(ExecutionSpan.agentRun({ agentId: "a" }), asRequest(id), Effect.exit)
        yield* recorder.flush
        yield* (yield* OtlpExporter.OtlpExporter).flush
      }).pipe(Effect.provide(layer))
      expect(records).toEqual([])
      expect((yield* receiver.spans).map((s) => s.name).sort()).toEqual(["POST /v1/runs", "invoke_agent a"])
    }))

  it.effect("SG_RECORD=off without an exporter installs nothing", () =>
    Effect.gen(function*() {
      const recorder = yield* Effect.provide(
        Recorder.Recorder,
        Recorder.layerConfig({ save: () => Effect.void }).pipe(
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["SG_RECORD", "off"]]))))
        )
      )
      expect(recorder.enabled).toBe(false)
    }))

  it.effect("Otel.layerConfig with no endpoint: a disabled exporter and no hook for the recorder", () =>
    Effect.gen(function*() {
      const context = yield* Layer.build(Otel.layerConfig.pipe(
        Layer.provide(FetchHttpClient.layer),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map())))
      ))
      const exporter = yield* Effect.provide(OtlpExporter.OtlpExporter, Layer.succeedContext(context))
      expect(exporter.enabled).toBe(false)
      const hook = yield* Effect.serviceOption(TraceExporter.TraceExporter).pipe(
        Effect.provide(Layer.succeedContext(context))
      )
      expect(hook._tag).toBe("None")
    }).pipe(Effect.scoped))
})
