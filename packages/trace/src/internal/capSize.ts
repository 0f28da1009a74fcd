/**
 * Keeping a record under its size cap: fewer calls per run, then no payloads, then fewer runs, saying what it left out.
 */
import type { Dropped, ExecutionRecord, InferenceCall, Run, ToolCall } from "../ExecutionRecord.js"
import type { Limits } from "./spans.js"

/** The first ⌈max/2⌉ and the last ⌊max/2⌋ items, and how many were left out between them. */
export const keepEnds = <A>(
  items: ReadonlyArray<A>,
  max: number
): { readonly kept: Array<A>; readonly dropped: number } => {
  if (items.length <= max) return { kept: items.slice(), dropped: 0 }
  const head = Math.ceil(max / 2)
  const tail = max - head
  return { kept: [...items.slice(0, head), ...items.slice(items.length - tail)], dropped: items.length - max }
}

export const byteLength = (record: ExecutionRecord): number => Buffer.byteLength(JSON.stringify(record), "utf8")

/**
 * An upper bound of the record's JSON size, without serializing it: every text at its longest (cut texts plus their
 * marker) and every character escaped to 6 bytes, names and ids at 200 bytes, the rest at a generous 600 per item.
 */
export const sizeBound = (record: ExecutionRecord, truncate: number): number => {
  const text = 6 * (truncate + 40)
  let bound = 600 + text
  for (const run of record.runs) {
    bound += 1000 + text + run.events.length * (600 + 2 * text)
    bound += (run.tool_calls.length + run.inference_calls.length) * (800 + 3 * text)
  }
  return bound
}

/**
 * Keeps the record under `maxRecordBytes`: first fewer calls per run (halving, down to 16, ends kept), then no call
 * inputs and outputs, then fewer runs (sub-agents last started first), then fewer calls and child results in what is
 * left. It says what it dropped.
 */
export const capSize = (record: ExecutionRecord, droppedSpans: number, limits: Limits): ExecutionRecord => {
  const dropped: { calls: number; runs: number; events: number; spans: number; payloads: boolean } = {
    calls: record.runs.reduce((n, r) => n + (r.dropped_calls ?? 0), 0),
    runs: 0,
    events: 0,
    spans: droppedSpans,
    payloads: false
  }
  const finish = (r: ExecutionRecord): ExecutionRecord =>
    dropped.calls + dropped.runs + dropped.events + dropped.spans > 0 || dropped.payloads
      ? { ...r, dropped: { ...dropped } satisfies Dropped }
      : r
  let current = finish(record)
  if (sizeBound(current, limits.truncate) <= limits.maxRecordBytes || byteLength(current) <= limits.maxRecordBytes) {
    return current
  }

  let runs = record.runs
  let max = Math.max(...runs.map((r) => r.tool_calls.length + r.inference_calls.length))
  while (max > 16) {
    max = Math.max(16, Math.floor(max / 2))
    runs = runs.map((run) => shrinkRun(run, max))
    dropped.calls = runs.reduce((n, r) => n + (r.dropped_calls ?? 0), 0)
    current = finish({ ...record, runs })
    if (byteLength(current) <= limits.maxRecordBytes) return current
  }
  dropped.payloads = true
  runs = runs.map((run) => ({
    ...run,
    tool_calls: run.tool_calls.map((c) => ({ ...c, input: null, output: null })),
    inference_calls: run.inference_calls.map((c) => ({ ...c, input: null, output: null })),
    events: run.events.map((e) => ({ ...e, output: null }))
  }))
  current = finish({ ...record, runs })
  while (byteLength(current) > limits.maxRecordBytes && runs.length > 1) {
    const victim = runs.reduce((worst, run, i) =>
      run.parent_run_id !== undefined && (worst < 0 || run.started_at >= runs[worst]!.started_at) ? i : worst, -1)
    const index = victim < 0 ? runs.length - 1 : victim
    runs = runs.filter((_, i) => i !== index)
    dropped.runs++
    current = finish({ ...record, runs })
  }
  // Last resort: fewer calls and child results in what is left, down to none.
  while (byteLength(current) > limits.maxRecordBytes) {
    const most = Math.max(...runs.map((r) => Math.max(r.tool_calls.length + r.inference_calls.length, r.events.length)))
    if (most === 0) break
    const keep = Math.floor(most / 2)
    runs = runs.map((run) => {
      const shrunk = shrinkRun(run, keep)
      const events = keepEnds(run.events, keep)
      dropped.events += events.dropped
      return { ...shrunk, events: events.kept }
    })
    dropped.calls = runs.reduce((n, r) => n + (r.dropped_calls ?? 0), 0)
    current = finish({ ...record, runs })
  }
  return current
}

export const shrinkRun = (run: Run, max: number): Run => {
  const calls: Array<{ readonly tool?: ToolCall; readonly inference?: InferenceCall; readonly at: string }> = [
    ...run.tool_calls.map((tool) => ({ tool, at: tool.started_at })),
    ...run.inference_calls.map((inference) => ({ inference, at: inference.started_at }))
  ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
  const { dropped, kept } = keepEnds(calls, max)
  if (dropped === 0) return run
  return {
    ...run,
    tool_calls: kept.flatMap((c) => (c.tool !== undefined ? [c.tool] : [])),
    inference_calls: kept.flatMap((c) => (c.inference !== undefined ? [c.inference] : [])),
    dropped_calls: (run.dropped_calls ?? 0) + dropped
  }
}
