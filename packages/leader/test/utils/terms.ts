import { Lease } from "@sg/leader"
import { Clock, Effect, Ref } from "effect"

/** One term as the leader's effect saw it. */
export interface TermRecord {
  readonly elector: string
  readonly token: string
  readonly epoch: number
  readonly start: number
  readonly end: number | undefined
}

/** A log of terms, filled by `recordTerm`. */
export type TermLog = Ref.Ref<ReadonlyArray<TermRecord>>

/** A leader's effect that logs its term's start and (when interrupted) its end, by `Clock`, and runs until then. */
export const recordTerm = (log: TermLog, elector: string): Effect.Effect<never, never, Lease.Lease> =>
  Effect.gen(function*() {
    const lease = yield* Lease.Lease
    const start = yield* Clock.currentTimeMillis
    const index = yield* Ref.modify(log, (terms) => [
      terms.length,
      [...terms, { elector, token: lease.token, epoch: lease.epoch, start, end: undefined }]
    ])
    return yield* Effect.never.pipe(
      Effect.onExit(() =>
        Effect.flatMap(Clock.currentTimeMillis, (end) =>
          Ref.update(log, (terms) => terms.map((term, i) => (i === index ? { ...term, end } : term))))
      )
    )
  })

/** Every pair of terms, sorted by start: the earlier must have ended by the time the later began. */
export const overlaps = (terms: ReadonlyArray<TermRecord>): ReadonlyArray<string> => {
  const sorted = [...terms].sort((a, b) => a.start - b.start || a.epoch - b.epoch)
  const problems: Array<string> = []
  for (let i = 1; i < sorted.length; i++) {
    const before = sorted[i - 1]!
    const after = sorted[i]!
    if (before.end === undefined || before.end > after.start) {
      problems.push(`${before.elector} (epoch ${before.epoch}, ${before.start}..${before.end}) overlaps ` +
        `${after.elector} (epoch ${after.epoch}, from ${after.start})`)
    }
    if (after.epoch <= before.epoch) {
      problems.push(
        `epoch ${after.epoch} of ${after.elector} does not exceed epoch ${before.epoch} of ${before.elector}`
      )
    }
  }
  return problems
}

/** An empty term log. */
export const makeTermLog: Effect.Effect<TermLog> = Ref.make<ReadonlyArray<TermRecord>>([])
