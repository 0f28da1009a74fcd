/**
 * The spending of one run tree against its budgets, shared by the root run and every sub-agent. A check that fails
 * also trips the tree, so a budget hit deep inside a tool (a sub-agent that may not start) still ends the root run.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { type BudgetExceeded, type Budgets, exceeded } from "../Budget.js"

/** A run tree's spending. */
export interface Tracker {
  readonly budgets: Budgets
  /** Counts one model call; fails once the tree has made `maxSteps`. */
  readonly step: Effect.Effect<void, BudgetExceeded>
  /** Adds a model call's tokens; fails once the tree has used more than `maxTokens`. */
  readonly tokens: (input: number, output: number) => Effect.Effect<void, BudgetExceeded>
  /** Counts one sub-agent; fails once the tree has started `maxSubagents`. */
  readonly spawn: Effect.Effect<void, BudgetExceeded>
  /** Fails with the first budget the tree hit, whoever checked it; never succeeds. */
  readonly tripped: Effect.Effect<never, BudgetExceeded>
  /** The `run_timeout` failure, once the root run outlasts its budget. */
  readonly timedOut: () => BudgetExceeded
  /** Tokens used so far by the whole tree. */
  readonly usage: () => { readonly input: number; readonly output: number }
}

/** A fresh tracker. */
export const make = (budgets: Budgets): Effect.Effect<Tracker> =>
  Effect.map(Deferred.make<never, BudgetExceeded>(), (trip) => {
    let steps = 0
    let subagents = 0
    let input = 0
    let output = 0
    const fail = (error: BudgetExceeded): Effect.Effect<never, BudgetExceeded> => {
      Deferred.unsafeDone(trip, Exit.fail(error))
      return Effect.fail(error)
    }
    return {
      budgets,
      step: Effect.suspend(() =>
        steps >= budgets.maxSteps
          ? fail(exceeded("max_steps", budgets.maxSteps, `the run tree already made ${steps} model calls`))
          : Effect.sync(() => {
            steps++
          })
      ),
      tokens: (i, o) =>
        Effect.suspend(() => {
          input += i
          output += o
          const used = input + output
          return budgets.maxTokens !== undefined && used > budgets.maxTokens
            ? fail(exceeded("max_tokens", budgets.maxTokens, `the run tree used ${used} tokens`))
            : Effect.void
        }),
      spawn: Effect.suspend(() =>
        subagents >= budgets.maxSubagents
          ? fail(
            exceeded("max_subagents", budgets.maxSubagents, `the run tree already started ${subagents} sub-agents`)
          )
          : Effect.sync(() => {
            subagents++
          })
      ),
      tripped: Deferred.await(trip),
      timedOut: () => {
        const limit = Duration.toMillis(budgets.runTimeout)
        const spent = `the run tree did not finish within ${Duration.format(budgets.runTimeout)}`
        const error = exceeded("run_timeout", limit, spent)
        Deferred.unsafeDone(trip, Exit.fail(error))
        return error
      },
      usage: () => ({ input, output })
    }
  })
