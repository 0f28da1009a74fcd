import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Metric, MetricBoundaries } from "effect"
import * as Prometheus from "../src/Prometheus.js"
import * as Prom from "./utils/promText.js"

/** Names unique to this run, so other tests' metrics in the shared registry do not matter. */
const prefix = `promtest_${process.pid}_`

const snapshotOf = Effect.map(Metric.snapshot, (pairs) => pairs.filter((p) => p.metricKey.name.startsWith(prefix)))

describe("Prometheus text exposition", () => {
  it.effect("counters, gauges, histograms, frequencies and summaries, one family per name", () =>
    Effect.gen(function*() {
      const requests = Metric.counter(`${prefix}requests_total`, { description: "requests served", incremental: true })
      yield* Metric.incrementBy(Metric.tagged(requests, "route", "/v1/runs"), 3)
      yield* Metric.increment(Metric.tagged(requests, "route", "/healthz"))
      const big = Metric.counter(`${prefix}bytes_total`, { bigint: true })
      yield* Metric.update(big, 12345678901234567890n)
      const gauge = Metric.gauge(`${prefix}breaker_state`, { description: "0 closed\n2 open" })
      yield* Metric.set(Metric.tagged(gauge, "breaker", "model:demo"), 2)
      const latency = Metric.histogram(
        `${prefix}latency_seconds`,
        MetricBoundaries.fromIterable([0.1, 0.5, 1]),
        "latency"
      )
      for (const v of [0.05, 0.2, 0.2, 0.7, 3]) yield* Metric.update(latency, v)
      const words = Metric.frequency(`${prefix}outcomes`)
      for (const w of ["ok", "ok", "error"]) yield* Metric.update(words, w)
      const summary = Metric.summary({
        name: `${prefix}sizes`,
        maxAge: Duration.minutes(1),
        maxSize: 100,
        error: 0.01,
        quantiles: [0.5, 0.99]
      })
      for (const v of [1, 2, 3, 4]) yield* Metric.update(summary, v)
      const weird = Metric.gauge(`${prefix}weird-name.x`)
      yield* Metric.set(Metric.tagged(weird, "path", "a\"b\\c\nd"), -1.5)

      const text = Prometheus.encode(yield* snapshotOf)
      const parsed = Prom.parse(text)
      const value = (name: string, labels: Record<string, string> = {}) => {
        const found = Prom.find(parsed, `${prefix}${name}`, labels)
        expect(found, `${name} ${JSON.stringify(labels)}\n${text}`).toHaveLength(1)
        return found[0]!.value
      }
      expect(parsed.types.get(`${prefix}requests_total`)).toBe("counter")
      expect(parsed.help.get(`${prefix}requests_total`)).toBe("requests served")
      expect(value("requests_total", { route: "/v1/runs" })).toBe(3)
      expect(value("requests_total", { route: "/healthz" })).toBe(1)
      expect(text).toContain(`${prefix}bytes_total 12345678901234567890\n`)
      expect(parsed.types.get(`${prefix}breaker_state`)).toBe("gauge")
      expect(parsed.help.get(`${prefix}breaker_state`)).toBe("0 closed\\n2 open")
      expect(value("breaker_state", { breaker: "model:demo" })).toBe(2)

      expect(parsed.types.get(`${prefix}latency_seconds`)).toBe("histogram")
      expect(Prom.find(parsed, `${prefix}latency_seconds_bucket`).map((s) => [s.labels["le"], s.value])).toEqual([
        ["0.1", 1],
        ["0.5", 3],
        ["1", 4],
        ["+Inf", 5]
      ])
      expect(value("latency_seconds_count")).toBe(5)
      expect(value("latency_seconds_sum")).toBeCloseTo(4.15)

      expect(parsed.types.get(`${prefix}outcomes`)).toBe("counter")
      expect(value("outcomes", { key: "ok" })).toBe(2)
      expect(value("outcomes", { key: "error" })).toBe(1)

      expect(parsed.types.get(`${prefix}sizes`)).toBe("summary")
      expect(value("sizes_count")).toBe(4)
      expect(value("sizes_sum")).toBe(10)
      expect(Prom.find(parsed, `${prefix}sizes`).map((s) => s.labels["quantile"])).toEqual(["0.5", "0.99"])

      expect(value("weird_name_x", { path: "a\"b\\c\nd" })).toBe(-1.5)
      expect(text.split("\n").filter((line) => line.startsWith(`# TYPE ${prefix}requests_total`))).toHaveLength(1)
    }))

  it("an empty registry is an empty exposition", () => {
    expect(Prometheus.encode([])).toBe("")
    expect(Prom.parse("")).toEqual({ types: new Map(), help: new Map(), samples: [] })
  })

  it("names Prometheus cannot hold are made valid", () => {
    expect(Prometheus.sanitizeName("sg.http-requests")).toBe("sg_http_requests")
    expect(Prometheus.sanitizeName("9lives")).toBe("_9lives")
    expect(Prometheus.sanitizeName("a:b_c")).toBe("a:b_c")
  })
})
