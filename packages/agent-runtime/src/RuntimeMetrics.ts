/**
 * The agent runtime's metrics, as `/metrics` serves them: tool calls and model calls (counts and latency in seconds,
 * by name and status), model tokens, and runs by agent and status. Label values are configured names only (an
 * agent's tools, a provider and the model it asks for, an agent), so every label set is bounded; a tool name the
 * model made up is `other`.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"

/**
 * How a call ended, as its `status` label says: `circuit_open` when its breaker rejected it, `interrupted` when it
 * was stopped (the run timed out, or its client went away).
 */
export type CallStatus = "success" | "error" | "timeout" | "circuit_open" | "interrupted"

/** How a run ended, as its `status` label says: `cancelled` when it was interrupted (its client went away). */
export type RunStatus = "success" | "error" | "timeout" | "cancelled"

/** The label value of a tool that is not one of the agent's. */
export const otherTool = "other"

/** Tool calls, by `tool` and `status`. */
export const toolCalls = Metric.counter("sg_tool_calls_total", {
  description: "tool calls, by tool and status",
  incremental: true
})

/** Tool call latency in seconds, by `tool` and `status`. */
export const toolCallDuration = Metric.histogram(
  "sg_tool_call_duration_seconds",
  MetricBoundaries.fromIterable([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]),
  "tool call latency in seconds, by tool and status"
)

/** Model calls (each attempt), by `provider`, `model` and `status`. */
export const modelCalls = Metric.counter("sg_model_calls_total", {
  description: "model calls, by provider, model and status",
  incremental: true
})

/** Model call latency in seconds, by `provider`, `model` and `status`. */
export const modelCallDuration = Metric.histogram(
  "sg_model_call_duration_seconds",
  MetricBoundaries.fromIterable([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120]),
  "model call latency in seconds, by provider, model and status"
)

/** Tokens of answered model calls, by `provider`, `model` and `direction` (`input` or `output`). */
export const modelTokens = Metric.counter("sg_model_tokens_total", {
  description: "tokens read (input) and written (output) by model calls, by provider, model and direction",
  incremental: true
})

/** Agent runs (sub-agents included), by `agent` and `status`. */
export const runs = Metric.counter("sg_runs_total", {
  description: "agent runs, sub-agents included, by agent and status (cancelled: its client went away)",
  incremental: true
})

const cache = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()

/** The labels of `pairs` (name, value, name, value...), made once per distinct set; the sets are bounded. */
const labels = (...pairs: ReadonlyArray<string>): ReadonlyArray<MetricLabel.MetricLabel> => {
  const key = pairs.join("\u0000")
  let found = cache.get(key)
  if (found === undefined) {
    const made: Array<MetricLabel.MetricLabel> = []
    for (let i = 0; i + 1 < pairs.length; i += 2) made.push(MetricLabel.make(pairs[i]!, pairs[i + 1]!))
    found = made
    cache.set(key, found)
  }
  return found
}

const tagOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : undefined

/** The status of a failed call: `circuit_open` for `CircuitOpenError`, `timeout`, `interrupted`, else `error`. */
export const failedCallStatus = (cause: Cause.Cause<unknown>): CallStatus => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) {
    const tag = tagOf(failure.value)
    if (tag === "CircuitOpenError") return "circuit_open"
    return tag !== undefined && /timeout/i.test(tag) ? "timeout" : "error"
  }
  return Cause.isInterruptedOnly(cause) ? "interrupted" : "error"
}

/** Counts one tool call and its latency. */
export const recordToolCall = (tool: string, status: CallStatus, seconds: number): void => {
  const tags = labels("tool", tool, "status", status)
  toolCalls.unsafeUpdate(1, tags)
  toolCallDuration.unsafeUpdate(seconds, tags)
}

/** Counts one model call, its latency and, when it answered, its tokens. */
export const recordModelCall = (
  provider: string,
  model: string,
  status: CallStatus,
  seconds: number,
  tokens?: { readonly input: number; readonly output: number }
): void => {
  const tags = labels("provider", provider, "model", model, "status", status)
  modelCalls.unsafeUpdate(1, tags)
  modelCallDuration.unsafeUpdate(seconds, tags)
  if (tokens !== undefined) {
    modelTokens.unsafeUpdate(tokens.input, labels("provider", provider, "model", model, "direction", "input"))
    modelTokens.unsafeUpdate(tokens.output, labels("provider", provider, "model", model, "direction", "output"))
  }
}

/** The status of an ended run. */
export const runStatus = (exit: Exit.Exit<{ readonly status: RunStatus }, unknown>): RunStatus => {
  if (exit._tag === "Success") return exit.value.status
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) return tagOf(failure.value) === "RunTimeout" ? "timeout" : "error"
  return Cause.isInterruptedOnly(exit.cause) ? "cancelled" : "error"
}

/** Counts one ended run of `agent`. */
export const recordRun = (agent: string, status: RunStatus): void =>
  runs.unsafeUpdate(1, labels("agent", agent, "status", status))

/** Runs `self` and hands its exit and how long it took (seconds, on `Clock`) to `observe`. */
export const timed = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  observe: (exit: Exit.Exit<A, E>, seconds: number) => void
): Effect.Effect<A, E, R> =>
  Effect.clockWith((clock) => {
    const start = clock.unsafeCurrentTimeNanos()
    return Effect.onExit(self, (exit) =>
      Effect.sync(() => observe(exit, Number(clock.unsafeCurrentTimeNanos() - start) / 1e9)))
  })

