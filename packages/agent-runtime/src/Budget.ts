/**
 * Budgets of a run tree (a root run and all its sub-agents, together): model calls, tokens, wall time and
 * sub-agents. A tree that hits one ends with `BudgetExceeded` naming it (the gateway answers 422 `budget_exceeded`);
 * what ran before is recorded, the runs cut short as interrupted.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/** What a run tree may spend. */
export interface Budgets {
  /** Model calls in the whole tree (a fallback to another provider is part of the same call); 16. */
  readonly maxSteps: number
  /** Input plus output tokens in the whole tree; unlimited when undefined (the default). */
  readonly maxTokens: number | undefined
  /** Wall time from the root run's start, on `Clock`; 60 seconds. */
  readonly runTimeout: Duration.Duration
  /** Sub-agents started in the whole tree; 16. */
  readonly maxSubagents: number
}

/** The defaults of `Budgets`. */
export const defaults: Budgets = {
  maxSteps: 16,
  maxTokens: undefined,
  runTimeout: Duration.seconds(60),
  maxSubagents: 16
}

/** Budgets as options take them: any left out is its default; `runTimeout` as any duration input. */
export interface Input {
  readonly maxSteps?: number | undefined
  readonly maxTokens?: number | undefined
  readonly runTimeout?: Duration.DurationInput | undefined
  readonly maxSubagents?: number | undefined
}

/** The budgets `input` asks for, defaults filling the rest. */
export const fromInput = (input?: Input): Budgets => ({
  maxSteps: input?.maxSteps ?? defaults.maxSteps,
  maxTokens: input?.maxTokens ?? defaults.maxTokens,
  runTimeout: input?.runTimeout === undefined ? defaults.runTimeout : Duration.decode(input.runTimeout),
  maxSubagents: input?.maxSubagents ?? defaults.maxSubagents
})

/** The budgets, by the names errors and the wire use. */
export const Name = Schema.Literal("max_steps", "max_tokens", "run_timeout", "max_subagents")

/** A budget's name. */
export type Name = typeof Name.Type

/** The variable that sets each budget. */
export const variables: Record<Name, string> = {
  max_steps: "SG_MAX_STEPS",
  max_tokens: "SG_MAX_TOKENS",
  run_timeout: "SG_RUN_TIMEOUT",
  max_subagents: "SG_MAX_SUBAGENTS"
}

/** The run tree hit `budget`; `limit` is its value (milliseconds for `run_timeout`). */
export class BudgetExceeded extends Schema.TaggedError<BudgetExceeded>("@sg/agent-runtime/BudgetExceeded")(
  "BudgetExceeded",
  { budget: Name, limit: Schema.Number, message: Schema.String }
) {}

/** A `BudgetExceeded` for `budget`, saying what was spent. */
export const exceeded = (budget: Name, limit: number, spent: string): BudgetExceeded =>
  new BudgetExceeded({
    budget,
    limit,
    message: `run budget exceeded: ${budget} (${variables[budget]}=${
      budget === "run_timeout" ? Duration.format(Duration.millis(limit)) : limit
    }): ${spent}`
  })

/** Why budgets make no sense, or `undefined`. */
export const validate = (budgets: Budgets): string | undefined => {
  const whole = (n: number) => Number.isInteger(n) && n >= 1
  if (!whole(budgets.maxSteps)) return "maxSteps must be an integer >= 1"
  if (budgets.maxTokens !== undefined && !whole(budgets.maxTokens)) return "maxTokens must be an integer >= 1"
  if (!Duration.isFinite(budgets.runTimeout) || Duration.toMillis(budgets.runTimeout) <= 0) {
    return "runTimeout must be finite and positive"
  }
  if (!Number.isInteger(budgets.maxSubagents) || budgets.maxSubagents < 0) return "maxSubagents must be an integer >= 0"
  return undefined
}

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a whole number of at least 1`, validation: (n) => n >= 1 })
  )

/**
 * `SG_MAX_STEPS` (16), `SG_MAX_TOKENS` (unset: unlimited), `SG_RUN_TIMEOUT` (60 seconds), `SG_MAX_SUBAGENTS` (16).
 */
export const config: Config.Config<Budgets> = Config.all({
  maxSteps: positive("SG_MAX_STEPS", defaults.maxSteps).pipe(
    Config.withDescription("model calls a run tree (a run and its sub-agents) may make")
  ),
  maxTokens: Config.option(Config.integer("SG_MAX_TOKENS")).pipe(
    Config.validate({
      message: "SG_MAX_TOKENS must be a whole number of at least 1",
      validation: (n) => Option.isNone(n) || n.value >= 1
    }),
    Config.map(Option.getOrUndefined),
    Config.withDescription("tokens (input plus output) a run tree may use; unset: no limit")
  ),
  runTimeout: Config.mapOrFail(
    Config.duration("SG_RUN_TIMEOUT").pipe(Config.withDefault(defaults.runTimeout)),
    (timeout) =>
      Duration.isFinite(timeout) && Duration.greaterThan(timeout, Duration.zero)
        ? Either.right(timeout)
        : Either.left(ConfigError.InvalidData(["SG_RUN_TIMEOUT"], "must be a finite duration greater than zero"))
  ).pipe(Config.withDescription("how long a run tree may take")),
  maxSubagents: Config.integer("SG_MAX_SUBAGENTS").pipe(
    Config.withDefault(defaults.maxSubagents),
    Config.validate({ message: "SG_MAX_SUBAGENTS must be a whole number (0: none)", validation: (n) => n >= 0 }),
    Config.withDescription("sub-agents a run tree may start")
  )
})
