/**
 * Agents as data: a name, instructions (the system prompt), a toolkit with its handlers, the model provider it runs
 * on, a step limit and optionally a timeout of its own. `AgentRuntime.layer({ agents })` runs them.
 */
import type * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { RunContext } from "./RunContext.js"

/** Model calls a run may make unless its agent says otherwise. */
export const defaultMaxSteps = 8

/** Tool calls of one step run at once, at most. */
export const defaultToolConcurrency = 8

/** What a tool call answered, as @effect/ai's `Toolkit.handle` gives it. */
export interface HandlerResult {
  readonly isFailure: boolean
  readonly result: unknown
  readonly encodedResult: unknown
}

/**
 * A toolkit with its handlers, its tool types erased so that agents with different tools fit in one list. Handlers
 * may require `RunContext`, which the runtime provides to each call.
 */
export interface ToolSet {
  readonly toolkit: Toolkit.WithHandler<Record<string, Tool.Any>>
  readonly handle: (name: string, params: unknown) => Effect.Effect<HandlerResult, unknown, RunContext>
}

/** An agent the runtime can run. */
export interface Agent {
  readonly name: string
  /** The system prompt. */
  readonly instructions: string
  /** What the agent is for, for listings. */
  readonly description: string
  /** Builds the toolkit with its handlers (once, when the runtime is built). */
  readonly tools: Effect.Effect<ToolSet>
  /** The tools' names. */
  readonly toolNames: ReadonlyArray<string>
  /** The model provider it runs on; the runtime's default provider when undefined. */
  readonly provider: string | undefined
  /** Model calls a run may make; a run whose last allowed call still asks for tools ends with status `error`. */
  readonly maxSteps: number
  /**
   * How long one run of this agent may take in all (sub-agents included) before it fails with `RunTimeout`; none
   * when undefined (the default): the run tree's `run_timeout` budget still bounds it.
   */
  readonly timeout: Duration.Duration | undefined
  /** Tool calls of one step run at once, at most. */
  readonly toolConcurrency: number
}

/** Requirements a tool handler may have: only what the runtime provides. */
type Supported<Tools extends Record<string, Tool.Any>> =
  [Exclude<Tool.Requirements<Tools[keyof Tools]>, RunContext>] extends [never] ? unknown
    : { readonly "tool handlers may require only RunContext": never }

/** What an agent is made of; everything but the name, instructions, toolkit and handlers has a default. */
export interface Options<Tools extends Record<string, Tool.Any>> {
  readonly name: string
  readonly instructions: string
  readonly description?: string | undefined
  readonly toolkit: Toolkit.Toolkit<Tools>
  readonly handlers: Toolkit.HandlersFrom<Tools>
  readonly provider?: string | undefined
  readonly maxSteps?: number | undefined
  readonly timeout?: Duration.DurationInput | undefined
  readonly toolConcurrency?: number | undefined
}

/** An agent from its parts. The runtime checks the values (names, limits) when it is built. */
export const make = <Tools extends Record<string, Tool.Any>>(options: Options<Tools> & Supported<Tools>): Agent => {
  const built = Effect.provide(options.toolkit, options.toolkit.toLayer(options.handlers))
  return {
    name: options.name,
    instructions: options.instructions,
    description: options.description ?? "",
    // The erasure is sound: `handle` is only ever called with a tool name the model's decoded answer named, and the
    // handlers' requirements were checked above to be at most `RunContext`.
    tools: Effect.map(built, (toolkit) => ({
      toolkit: toolkit as unknown as Toolkit.WithHandler<Record<string, Tool.Any>>,
      handle: toolkit.handle as unknown as ToolSet["handle"]
    })),
    toolNames: Object.keys(options.toolkit.tools),
    provider: options.provider,
    maxSteps: options.maxSteps ?? defaultMaxSteps,
    timeout: options.timeout === undefined ? undefined : Duration.decode(options.timeout),
    toolConcurrency: options.toolConcurrency ?? defaultToolConcurrency
  }
}

/** An agent without tools (it only answers). */
export const withoutTools = (
  options: Omit<Options<{}>, "toolkit" | "handlers">
): Agent => make({ ...options, toolkit: Toolkit.empty, handlers: {} })
