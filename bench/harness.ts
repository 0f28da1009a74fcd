/**
 * A small harness for `pnpm bench`: time a batch of operations until enough time has passed, and print each
 * figure beside its ratio to a baseline measured in the same run.
 */
import { performance } from "node:perf_hooks"

/** One measured line of a report. */
export interface Figure {
  readonly name: string
  /** Operations per second. */
  readonly opsPerSec: number
  /** Extra columns, printed as given. */
  readonly extra?: Readonly<Record<string, string>>
}

/** Times `batch` (which performs `opsPerBatch` operations) repeatedly for at least `minMs`, after a warm-up. */
export const measure = async (
  name: string,
  opsPerBatch: number,
  batch: () => unknown,
  options: { readonly minMs?: number; readonly warmupMs?: number } = {}
): Promise<Figure> => {
  const minMs = options.minMs ?? 1000
  const warmupMs = options.warmupMs ?? Math.min(300, minMs / 3)
  const runFor = async (ms: number) => {
    let ops = 0
    const start = performance.now()
    let elapsed = 0
    while (elapsed < ms) {
      const result = batch()
      if (result instanceof Promise) await result
      ops += opsPerBatch
      elapsed = performance.now() - start
    }
    return { ops, elapsed }
  }
  await runFor(warmupMs)
  const { elapsed, ops } = await runFor(minMs)
  return { name, opsPerSec: (ops / elapsed) * 1000 }
}

const format = (n: number): string =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)} M/s` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k/s` : `${n.toFixed(1)} /s`

/** Prints a table of figures with each one's ratio to `baseline` (a figure's name). */
export const report = (title: string, figures: ReadonlyArray<Figure>, baseline?: string): void => {
  const base = figures.find((f) => f.name === baseline)
  const rows = figures.map((f) => ({
    name: f.name,
    rate: format(f.opsPerSec),
    perOp: `${(1e9 / f.opsPerSec).toFixed(0)} ns/op`,
    ratio: base === undefined ? "" : `${(f.opsPerSec / base.opsPerSec).toFixed(2)}x ${baseline}`,
    ...f.extra
  }))
  const columns = Object.keys(rows.reduce((all, row) => ({ ...all, ...row }), {}))
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String((r as Record<string, string>)[c] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ")
  console.log(`\n## ${title}`)
  console.log(line(columns))
  for (const row of rows) console.log(line(columns.map((c) => String((row as Record<string, string>)[c] ?? ""))))
}

/** The median of `values` (the mean of the middle two for an even count). */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
