import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import { describe, expect, it } from "@effect/vitest"
import { Agent, AgentRuntime, Budget, Demo, Provider } from "@sg/agent-runtime"
import { CircuitBreaker } from "@sg/resilience"
import { Effect, Fiber, Layer, Ref, Schema, TestClock } from "effect"
import { calls, demoRuntime, scriptedRuntime, text } from "./utils/scripted.js"

const Noop = Tool.make("noop", { success: Schema.String })
const Slow = Tool.make("slow", { success: Schema.String })

const looper = (invoked: Ref.Ref<number>) =>
  Agent.make({
    name: "looper",
    instructions: "loop",
    toolkit: Toolkit.make(Noop),
    handlers: { noop: () => Effect.as(Ref.update(invoked, (n) => n + 1), "ok") },
    maxSteps: 100
  })

const run = (input: string) => Effect.flatMap(AgentRuntime.AgentRuntime, (runtime) => runtime.run({ input }))

const exceededOf = (error: unknown) => {
  expect(error).toBeInstanceOf(Budget.BudgetExceeded)
  return error as Budget.BudgetExceeded
}

describe("run-tree budgets", () => {
  it.effect("max_steps: the call past SG_MAX_STEPS is not made; the run fails naming the budget", () =>
    Effect.gen(function*() {
      const invoked = yield* Ref.make(0)
      let modelCalls = 0
      const layer = scriptedRuntime([looper(invoked)], () => {
        modelCalls++
        return calls({ name: "noop", params: {} })
      }, { budgets: { maxSteps: 4 } })
      const error = exceededOf(yield* Effect.flip(run("loop")).pipe(Effect.provide(layer)))
      expect(error).toMatchObject({
        budget: "max_steps",
        limit: 4,
        message: "run budget exceeded: max_steps (SG_MAX_STEPS=4): the run tree already made 4 model calls"
      })
      expect(modelCalls).toBe(4)
      expect(yield* Ref.get(invoked)).toBe(4)
    }))

  it.effect("max_steps counts the sub-agents' model calls too (the whole run tree)", () =>
    Effect.gen(function*() {
      // The demo assistant: one call asking fan_out, three researchers with one call each, then the summary: 5.
      const ok = yield* run("research budgets with 3 researchers").pipe(
        Effect.provide(demoRuntime(undefined, { budgets: { maxSteps: 5 } }))
      )
      expect(ok.status).toBe("success")
      const error = exceededOf(
        yield* Effect.flip(run("research budgets with 3 researchers")).pipe(
          Effect.provide(demoRuntime(undefined, { budgets: { maxSteps: 4 } }))
        )
      )
      expect(error.budget).toBe("max_steps")
    }))

  it.effect("max_tokens: the call that passes SG_MAX_TOKENS ends the run", () =>
    Effect.gen(function*() {
      const invoked = yield* Ref.make(0)
      // Each scripted call reports 10 + 5 tokens: the second one brings the tree to 30, past 20.
      const layer = scriptedRuntime([looper(invoked)], (turn) =>
        turn.call < 5 ? calls({ name: "noop", params: {} }) : text("done"), { budgets: { maxTokens: 20 } })
      const error = exceededOf(yield* Effect.flip(run("loop")).pipe(Effect.provide(layer)))
      expect(error).toMatchObject({
        budget: "max_tokens",
        limit: 20,
        message: "run budget exceeded: max_tokens (SG_MAX_TOKENS=20): the run tree used 30 tokens"
      })
      expect(yield* Ref.get(invoked)).toBe(1)
    }))

  it.effect("max_subagents: a spawn past SG_MAX_SUBAGENTS ends the tree, even inside a tool that catches it", () =>
    Effect.gen(function*() {
      const error = exceededOf(
        yield* Effect.flip(run("research budgets with 3 researchers")).pipe(
          Effect.provide(demoRuntime(undefined, { budgets: { maxSubagents: 2 } }))
        )
      )
      expect(error).toMatchObject({
        budget: "max_subagents",
        limit: 2,
        message: "run budget exceeded: max_subagents (SG_MAX_SUBAGENTS=2): the run tree already started 2 sub-agents"
      })
      const none = exceededOf(
        yield* Effect.flip(run("research budgets with 1 researcher")).pipe(
          Effect.provide(demoRuntime(undefined, { budgets: { maxSubagents: 0 } }))
        )
      )
      expect(none.budget).toBe("max_subagents")
    }))

  it.effect("run_timeout: the tree fails at SG_RUN_TIMEOUT, not before (TestClock)", () =>
    Effect.gen(function*() {
      const layer = scriptedRuntime([
        Agent.make({
          name: "sloth",
          instructions: "",
          toolkit: Toolkit.make(Slow),
          handlers: { slow: () => Effect.as(Effect.sleep("2 minutes"), "done") }
        })
      ], (turn) => turn.results.length === 0 ? calls({ name: "slow", params: {} }) : text("finally"), {
        budgets: { runTimeout: "5 seconds" }
      })
      yield* Effect.gen(function*() {
        const fiber = yield* Effect.fork(Effect.flip(run("be slow")))
        yield* Effect.yieldNow()
        yield* TestClock.adjust("4999 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        const error = exceededOf(yield* Fiber.join(fiber))
        expect(error).toMatchObject({
          budget: "run_timeout",
          limit: 5000,
          message: "run budget exceeded: run_timeout (SG_RUN_TIMEOUT=5s): the run tree did not finish within 5s"
        })
      }).pipe(Effect.provide(layer))
    }))

  it.effect("the defaults are 16 steps, no token limit, 60 seconds and 16 sub-agents", () =>
    Effect.sync(() => {
      expect(Budget.defaults).toMatchObject({ maxSteps: 16, maxTokens: undefined, maxSubagents: 16 })
      expect(Budget.fromInput().runTimeout).toEqual(Budget.defaults.runTimeout)
    }))

  it.effect("budgets that make no sense fail the build with InvalidAgents", () =>
    Effect.gen(function*() {
      const invalid = (budgets: Budget.Input) =>
        AgentRuntime.layer({ agents: Demo.agents, budgets }).pipe(
          Layer.provide([Provider.layerDemo(), CircuitBreaker.layer()]),
          Layer.build,
          Effect.scoped,
          Effect.flip,
          Effect.map((error) => error.message)
        )
      expect(yield* invalid({ maxSteps: 0 })).toBe("maxSteps must be an integer >= 1")
      expect(yield* invalid({ maxTokens: 1.5 })).toBe("maxTokens must be an integer >= 1")
      expect(yield* invalid({ runTimeout: "0 seconds" })).toBe("runTimeout must be finite and positive")
      expect(yield* invalid({ maxSubagents: -1 })).toBe("maxSubagents must be an integer >= 0")
    }))
})
