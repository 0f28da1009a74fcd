/**
 * Effect's metrics registry in the Prometheus text exposition format (version 0.0.4), for `GET /metrics`.
 * Hand-written: Effect only exports metrics through OpenTelemetry, and an OTel SDK plus its Prometheus exporter
 * would be two dependencies for what is a hundred lines of formatting.
 *
 * Counters and gauges are one sample each; histograms give cumulative `_bucket{le}` samples, `_sum` and `_count`;
 * summaries give `{quantile}` samples, `_sum` and `_count`; a frequency is a counter with one sample per
 * occurrence, labelled `key`. Metrics that share a name form one family (one `# HELP` and `# TYPE`).
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as MetricKey from "effect/MetricKey"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

/** The content type of the exposition. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

type Kind = "counter" | "gauge" | "histogram" | "summary"

interface Family {
  readonly name: string
  readonly kind: Kind
  help: string | undefined
  readonly lines: Array<readonly [sortKey: string, text: string]>
}

/** A metric or label name as Prometheus allows it: other characters become `_`. */
export const sanitizeName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[a-zA-Z_:]/.test(cleaned) ? cleaned : `_${cleaned}`
}

const sanitizeLabel = (name: string): string => sanitizeName(name).replace(/:/g, "_")

const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

const escapeHelp = (help: string): string => help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const formatNumber = (n: number | bigint): string => {
  if (typeof n === "bigint") return n.toString()
  if (Number.isNaN(n)) return "NaN"
  if (n === Infinity) return "+Inf"
  if (n === -Infinity) return "-Inf"
  return String(n)
}

const formatLabels = (labels: ReadonlyArray<readonly [string, string]>): string =>
  labels.length === 0
    ? ""
    : `{${labels.map(([key, value]) => `${sanitizeLabel(key)}="${escapeLabelValue(value)}"`).join(",")}}`

const kindOf = (state: MetricState.MetricState.Untyped): Kind | undefined =>
  MetricState.isCounterState(state) || MetricState.isFrequencyState(state)
    ? "counter"
    : MetricState.isGaugeState(state)
    ? "gauge"
    : MetricState.isHistogramState(state)
    ? "histogram"
    : MetricState.isSummaryState(state)
    ? "summary"
    : undefined

const samples = (
  name: string,
  tags: ReadonlyArray<readonly [string, string]>,
  state: MetricState.MetricState.Untyped
): Array<string> => {
  const line = (suffix: string, extra: ReadonlyArray<readonly [string, string]>, value: number | bigint) =>
    `${name}${suffix}${formatLabels([...tags, ...extra])} ${formatNumber(value)}`
  if (MetricState.isCounterState(state)) return [line("", [], state.count)]
  if (MetricState.isGaugeState(state)) return [line("", [], state.value)]
  if (MetricState.isFrequencyState(state)) {
    return Array.from(state.occurrences, ([key, count]) => line("", [["key", key]], count))
  }
  if (MetricState.isHistogramState(state)) {
    const out = state.buckets.map(([le, count]) => line("_bucket", [["le", formatNumber(le)]], count))
    if (state.buckets.length === 0 || state.buckets[state.buckets.length - 1]![0] !== Infinity) {
      out.push(line("_bucket", [["le", "+Inf"]], state.count))
    }
    out.push(line("_sum", [], state.sum), line("_count", [], state.count))
    return out
  }
  if (MetricState.isSummaryState(state)) {
    const out = state.quantiles.map(([q, value]) =>
      line("", [["quantile", formatNumber(q)]], Option.getOrElse(value, () => NaN))
    )
    out.push(line("_sum", [], state.sum), line("_count", [], state.count))
    return out
  }
  return []
}

const descriptionOf = (key: MetricKey.MetricKey.Untyped): string | undefined => Option.getOrUndefined(key.description)

/** Formats metric pairs (as `Metric.snapshot` returns them) as the text exposition. */
export const encode = (pairs: Iterable<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  for (const pair of pairs) {
    const kind = kindOf(pair.metricState)
    if (kind === undefined) continue
    const name = sanitizeName(pair.metricKey.name)
    let family = families.get(name)
    if (family === undefined) {
      family = { name, kind, help: descriptionOf(pair.metricKey), lines: [] }
      families.set(name, family)
    } else if (family.kind !== kind) {
      // Two metrics of different types under one name: Prometheus cannot hold both; the first one wins.
      continue
    }
    family.help ??= descriptionOf(pair.metricKey)
    const tags = pair.metricKey.tags.map((tag) => [tag.key, tag.value] as const)
    const sortKey = formatLabels([...tags].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    for (const text of samples(name, tags, pair.metricState)) family.lines.push([sortKey, text])
  }
  const out: Array<string> = []
  for (const family of Array.from(families.values()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (family.help !== undefined) out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`)
    out.push(`# TYPE ${family.name} ${family.kind}`)
    // Stable sort: the samples of one series (buckets, sum, count) stay together and in order.
    const sorted = family.lines.slice().sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    for (const [, text] of sorted) out.push(text)
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}

/** The whole registry, formatted. */
export const snapshot: Effect.Effect<string> = Effect.map(Metric.snapshot, encode)
