/**
 * What a tool handler can reach of the agent run it serves: which run it is, the request's metadata, and sub-agents.
 * The runtime provides it to every tool call; a tool that needs it declares it (`Tool.make(name, { dependencies:
 * [RunContext] })`).
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type { RunError, RunResult } from "./Run.js"

/** A sub-agent to run: which agent, on what input. */
export interface SpawnRequest {
  readonly agent: string
  readonly input: string
}

/** A sub-agent was not started: the run is already `maxDepth` sub-agents deep. */
export class SpawnRefused extends Schema.TaggedError<SpawnRefused>("@sg/agent-runtime/SpawnRefused")(
  "SpawnRefused",
  { agent: Schema.String, depth: Schema.Int, message: Schema.String }
) {}

/** Why a sub-agent run failed. */
export type SpawnError = RunError | SpawnRefused

/** The run a tool call belongs to. */
export interface Service {
  /** The agent of the run. */
  readonly agent: string
  /** The run's id (a UUIDv7), as recorded. */
  readonly runId: string
  readonly conversationId: string | undefined
  /** The request's metadata (a sub-agent sees its root run's). */
  readonly metadata: Readonly<Record<string, string>>
  /** How many sub-agents deep this run is (0 for the run a request started). */
  readonly depth: number
  /**
   * Runs a sub-agent: its own agent run with a fresh run id, in the same trace and conversation, naming this run as
   * its parent. Its result is recorded on this run when it ends.
   */
  readonly spawn: (request: SpawnRequest) => Effect.Effect<RunResult, SpawnError>
  /** Runs sub-agents concurrently (unbounded unless told) and gathers every outcome, in the order asked. */
  readonly spawnAll: (
    requests: ReadonlyArray<SpawnRequest>,
    options?: { readonly concurrency?: number | "unbounded" | undefined }
  ) => Effect.Effect<Array<Either.Either<RunResult, SpawnError>>>
}

/** The run a tool call belongs to. */
export class RunContext extends Context.Tag("@sg/agent-runtime/RunContext")<RunContext, Service>() {}
