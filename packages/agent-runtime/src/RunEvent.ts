/**
 * What a run tells its caller while it runs (`AgentRuntime.Service.run(request, { onEvent })`): the events the
 * gateway streams as server-sent events, plus the model calls' attempts (for `x-sg-provider` / `x-sg-attempts`).
 * Only the root run (the one the request started) reports; its sub-agents show in its tool calls and its record.
 * Field names are the wire's (snake_case).
 */
import type * as Effect from "effect/Effect"
import type { RunResult } from "./Run.js"

/** The run began: its trace and run ids. */
export interface RunStarted {
  readonly type: "run.started"
  readonly trace_id: string
  readonly run_id: string
  readonly agent: string
}

/** A piece of the model's text, as it streams in (only with `textDeltas: true`). */
export interface TextDelta {
  readonly type: "text.delta"
  readonly run_id: string
  readonly delta: string
}

/** A tool call the model asked for is starting. */
export interface ToolStarted {
  readonly type: "tool.started"
  readonly run_id: string
  readonly call_id: string
  readonly tool: string
  readonly input: unknown
}

/** A tool call ended: its result, or the error the model is told. */
export interface ToolFinished {
  readonly type: "tool.finished"
  readonly run_id: string
  readonly call_id: string
  readonly tool: string
  readonly status: "success" | "error"
  readonly output: unknown
}

/**
 * One try of a model call on one provider of the chain: `answering` when its first output arrives, then how it
 * ended (`success`, `error`, or `skipped` when its breaker was open and it was not asked).
 */
export interface ModelAttempt {
  readonly type: "model.attempt"
  readonly run_id: string
  readonly provider: string
  readonly model: string
  /** 1 for the chain's first provider of this model call. */
  readonly attempt: number
  readonly status: "answering" | "success" | "error" | "skipped"
  /** What went wrong, for `error` and `skipped`. */
  readonly message?: string | undefined
}

/** The run ended: the answer `POST /v1/runs` returns, and the tokens its whole tree used. */
export interface RunFinished {
  readonly type: "run.finished"
  readonly result: RunResult
  readonly usage: { readonly input: number; readonly output: number }
}

/** What a run reports. A failure is the run's error, not an event. */
export type RunEvent = RunStarted | TextDelta | ToolStarted | ToolFinished | ModelAttempt | RunFinished

/** Receives a run's events in order; the run waits for it (a slow reader slows the run, never loses events). */
export type Listener = (event: RunEvent) => Effect.Effect<void>
