/**
 * The spending of one run tree against its budgets, shared by the root run and every sub-agent. A check that fails
 * also trips the tree, so a budget hit deep inside a tool (a sub-agent that may not start) still ends the root run.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
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
  /**
   * Run beside the root run (once): fails with `run_timeout` once the root run outlasts its budget (on `Clock`), or
   * is interrupted as soon as any budget is hit, whoever checked it (`hit` then says which); never succeeds.
   */
  readonly guard: Effect.Effect<never, BudgetExceeded>
  /** The first budget the tree hit, if any. */
  readonly hit: () => BudgetExceeded | undefined
  /** Tokens used so far by the whole tree. */
  readonly usage: () => { readonly input: number; readonly output: number }
}

/** A fresh tracker. */
export const make = (budgets: Budgets): Effect.Effect<Tracker> =>
  Effect.sync(() => {
    let steps = 0
    let subagents = 0
    let input = 0
    let output = 0
    let first: BudgetExceeded | undefined
    let guardFiber: Fiber.RuntimeFiber<never, BudgetExceeded> | undefined
    const trip = (error: BudgetExceeded): BudgetExceeded => {
      if (first === undefined) first = error
      // Waking the guard by interrupting it, not through a Deferred it awaits beside a timer: one fiber fewer per run.
      guardFiber?.unsafeInterruptAsFork(FiberId.none)
      return error
    }
    const fail = (error: BudgetExceeded): Effect.Effect<never, BudgetExceeded> => Effect.fail(trip(error))
    // Called by the guard itself when its time is up: the tree is tripped, and there is no guard left to wake.
    const timedOut = (): BudgetExceeded => {
      const limit = Duration.toMillis(budgets.runTimeout)
      const spent = `the run tree did not finish within ${Duration.format(budgets.runTimeout)}`
      const error = exceeded("run_timeout", limit, spent)
      if (first === undefined) first = error
      return error
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
      guard: Effect.withFiberRuntime<never, BudgetExceeded>((fiber) => {
        if (first !== undefined) return Effect.fail(first)
        guardFiber = fiber
        return Effect.zipRight(Effect.sleep(budgets.runTimeout), Effect.failSync(timedOut))
      }),
      hit: () => first,
      usage: () => ({ input, output })
    }
  })
