/**
 * The memory stores' shared bound: their default cap (`SG_MEMORY_MAX_TRACES`) and the counter of what the cap pushed
 * out, `sg_records_evicted_total` by `store`.
 */
import * as Metric from "effect/Metric"
import * as MetricLabel from "effect/MetricLabel"

/** The memory stores' default cap: lifecycle hashes, active ids and execution records, each (100,000). */
export const defaultMaxTraces = 100_000

/** Which bounded map evicted: lifecycle hashes, the active set's ids, or execution records. */
export type EvictingStore = "lifecycle" | "active_set" | "execution"

/** Entries the memory stores' count cap pushed out, oldest first, tagged with `store` (an `EvictingStore`). */
export const recordsEvicted = Metric.counter("sg_records_evicted_total", {
  description: "entries the memory stores evicted past SG_MEMORY_MAX_TRACES, oldest first, by store",
  incremental: true
})

const labels: Record<EvictingStore, ReadonlyArray<MetricLabel.MetricLabel>> = {
  lifecycle: [MetricLabel.make("store", "lifecycle")],
  active_set: [MetricLabel.make("store", "active_set")],
  execution: [MetricLabel.make("store", "execution")]
}

/** Counts one eviction from `store`. */
export const countEviction = (store: EvictingStore): void => recordsEvicted.unsafeUpdate(1, labels[store])
