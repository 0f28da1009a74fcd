/**
 * The agents `pnpm start` serves: `assistant` (the default) with three real tools, and `researcher`, the sub-agent
 * `fan_out` spawns. They run on whichever provider `SG_MODEL` picks; the demo model knows how to use these tools.
 *
 * - `clock`: the current time, from `Clock`.
 * - `calculator`: evaluates `+ - * / % ^` and parentheses with a small parser (never `eval`); a bad expression or a
 *   division by zero is returned to the model as the tool's failure (`failureMode: "return"`: an answer, not an
 *   outage, so it does not count against the tool's breaker).
 * - `fan_out`: spawns `count` researchers (1 to 8) concurrently on a topic and gathers their answers.
 */
import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import { ExecutionRecord } from "@sg/trace"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Agent from "./Agent.js"
import * as Arithmetic from "./internal/arithmetic.js"
import { RunContext } from "./RunContext.js"

/** The current time. */
export const ClockTool = Tool.make("clock", {
  description: "Returns the current date and time (UTC, ISO-8601) and the Unix time in milliseconds.",
  success: Schema.Struct({ iso: Schema.String, epoch_ms: Schema.Number })
})

/** Arithmetic, evaluated safely. */
export const CalculatorTool = Tool.make("calculator", {
  description: "Evaluates an arithmetic expression: numbers, + - * / % ^ and parentheses.",
  parameters: {
    expression: Schema.String.annotations({ description: "the expression, e.g. (2 + 3) * 4" })
  },
  success: Schema.Struct({ expression: Schema.String, value: Schema.Number }),
  failure: Schema.Struct({ error: Schema.String }),
  failureMode: "return"
})

/** The most researchers one `fan_out` call spawns. */
export const maxResearchers = 8

/** Sub-agents, concurrently. */
export const FanOutTool = Tool.make("fan_out", {
  description: "Asks several researcher sub-agents, concurrently, to look into a topic from different angles, and " +
    "returns their answers.",
  parameters: {
    topic: Schema.String.annotations({ description: "what to research" }),
    count: Schema.Int.pipe(Schema.between(1, maxResearchers)).annotations({ description: "how many researchers" })
  },
  success: Schema.Struct({
    topic: Schema.String,
    answers: Schema.Array(Schema.Struct({
      run_id: Schema.NullOr(Schema.String),
      agent: Schema.String,
      status: ExecutionRecord.Status,
      output: Schema.String
    }))
  }),
  dependencies: [RunContext]
})

/** The demo tools. */
export const toolkit = Toolkit.make(ClockTool, CalculatorTool, FanOutTool)

const angles = ["background", "current state", "open questions", "risks", "alternatives", "costs", "sources", "outlook"]

/** What the k-th of n researchers (1-based) is asked. */
export const researchInput = (topic: string, k: number, n: number): string =>
  `Research "${topic}" from angle ${k} of ${n}: ${angles[(k - 1) % angles.length]}`

/** The demo tools' handlers. */
export const handlers = toolkit.of({
  clock: () =>
    Effect.map(Clock.currentTimeMillis, (ms) => ({ iso: DateTime.formatIso(DateTime.unsafeMake(ms)), epoch_ms: ms })),
  calculator: ({ expression }) => {
    const value = Arithmetic.evaluate(expression)
    return Either.isRight(value)
      ? Effect.succeed({ expression, value: value.right })
      : Effect.fail({ error: value.left })
  },
  fan_out: ({ count, topic }) =>
    Effect.gen(function*() {
      const run = yield* RunContext
      const requests = Array.from({ length: count }, (_, i) => ({
        agent: researcher.name,
        input: researchInput(topic, i + 1, count)
      }))
      const outcomes = yield* run.spawnAll(requests)
      const answers = outcomes.map((outcome) =>
        Either.isRight(outcome)
          ? {
            run_id: outcome.right.run_id,
            agent: researcher.name,
            status: outcome.right.status,
            output: outcome.right.output
          }
          : {
            run_id: null,
            agent: researcher.name,
            status: outcome.left._tag === "RunTimeout" ? "timeout" as const : "error" as const,
            output: outcome.left.message
          }
      )
      return { topic, answers }
    })
})

/** The sub-agent `fan_out` spawns: it answers from its instructions, without tools. */
export const researcher: Agent.Agent = Agent.withoutTools({
  name: "researcher",
  description: "Looks into one angle of a topic and reports briefly.",
  instructions: "You are a researcher. Look into the topic from the angle you are given and answer in two sentences."
})

/** The default agent: tells the time, calculates, and fans research out to researchers. */
export const assistant: Agent.Agent = Agent.make({
  name: "assistant",
  description: "Answers with the help of a clock, a calculator and researcher sub-agents.",
  instructions: "You are a helpful assistant. Use the clock for the time, the calculator for arithmetic, and " +
    "fan_out to have researchers look into a topic. When a tool fails, say so and answer as well as you can.",
  toolkit,
  handlers
})

/** The demo agents; `assistant` first, so it is the default. */
export const agents: ReadonlyArray<Agent.Agent> = [assistant, researcher]
