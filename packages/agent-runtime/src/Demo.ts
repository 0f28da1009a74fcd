/**
 * The demo: an offline, deterministic model and the agents `sg serve` runs by default, so `pnpm start` shows tool
 * calls, sub-agents, tokens and errors with no network and no key.
 *
 * The agents: `assistant` (the default) with three real tools, and `researcher`, the sub-agent `fan_out` spawns. They
 * run on whichever provider `SG_MODEL` picks; the demo model knows how to use these tools.
 * - `clock`: the current time, from `Clock`.
 * - `calculator`: evaluates `+ - * / % ^` and parentheses with a small parser (never `eval`); a bad expression or a
 *   division by zero is returned to the model as the tool's failure (`failureMode: "return"`: an answer, not an
 *   outage, so it does not count against the tool's breaker).
 * - `fan_out`: spawns `count` researchers (1 to 8) concurrently on a topic and gathers their answers.
 *
 * The model (`makeModel`, a `LanguageModel` built with @effect/ai's `LanguageModel.make`) reads the conversation and
 * decides as a tool-using model would:
 * - Input about the time (`time`, `clock`, `date`, `now`) calls `clock`; an arithmetic expression (`what is 6 * 7?`)
 *   calls `calculator`; both may be called in one step. `research` or `fan out` calls `fan_out` (`N researchers`
 *   sets how many sub-agents, 3 by default). Only tools the agent has are called.
 * - Once tool results follow the input, it answers with a summary of them (failures included).
 * - An input starting with `fail:` (or one `failWhen` accepts) fails the call with an `AiError`, as a provider outage
 *   would: the run fails with `UpstreamError`, and after enough of them the provider's breaker opens.
 * - Token usage is estimated at one token per four characters read and written; the response names the model
 *   (`response-metadata`, model `demo`).
 */
import * as AiError from "@effect/ai/AiError"
import * as IdGenerator from "@effect/ai/IdGenerator"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import { ExecutionRecord } from "@sg/trace"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
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

/** The prefix of an input that makes the demo model fail. */
export const failPrefix = "fail:"

/** The model name the demo reports. */
export const modelName = "demo"

/** How the demo model behaves. */
export interface ModelOptions {
  /** Makes a call fail as an outage would when it returns true for the run's input (besides the `fail:` prefix). */
  readonly failWhen?: ((input: string) => boolean) | undefined
  /** How long each call takes (default none), slept on `Clock`. */
  readonly latency?: Duration.DurationInput | undefined
}

const params = (options?: ModelOptions): Pick<LanguageModel.ConstructorParams, "generateText"> => {
  const latency = Duration.decode(options?.latency ?? Duration.zero)
  const generate = (provider: LanguageModel.ProviderOptions) =>
    Effect.gen(function*() {
      if (Duration.greaterThan(latency, Duration.zero)) yield* Effect.sleep(latency)
      const conversation = read(provider.prompt)
      const input = conversation.input
      if (input.trimStart().toLowerCase().startsWith(failPrefix) || options?.failWhen?.(input)) {
        return yield* new AiError.UnknownError({
          module: "DemoModel",
          method: "generateText",
          description: "the demo provider is unavailable (the input asked it to fail)"
        })
      }
      const idGenerator = yield* IdGenerator.IdGenerator
      const tools = new Set(provider.tools.map((tool) => tool.name))
      const calls = conversation.results.length > 0 ? [] : chooseTools(conversation.input, tools)
      const parts: Array<Response.PartEncoded> = [{ type: "response-metadata", modelId: modelName }]
      let written: string
      if (calls.length > 0) {
        for (const call of calls) {
          parts.push({ type: "tool-call", id: yield* idGenerator.generateId(), name: call.name, params: call.params })
        }
        written = JSON.stringify(calls)
      } else {
        written = conversation.results.length > 0 ? summarize(conversation.results) : answer(conversation.input)
        parts.push({ type: "text", text: written })
      }
      const inputTokens = estimateTokens(conversation.read)
      const outputTokens = estimateTokens(written)
      parts.push({
        type: "finish",
        reason: calls.length > 0 ? "tool-calls" : "stop",
        usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens }
      })
      return parts
    })
  return { generateText: generate }
}

/** The demo model as a `LanguageModel` service. */
export const makeModel = (options?: ModelOptions): Effect.Effect<LanguageModel.Service> =>
  Effect.map(makeModelWithStream(options), ({ languageModel }) => languageModel)

/**
 * The demo model, its own stream under the `LanguageModel` (see `Provider.stream`), that stream's parts as one
 * answer (see `Provider.answer`), and whether that answer takes no time (no `latency`; see `Provider.immediate`).
 */
export const makeModelWithStream = (options?: ModelOptions): Effect.Effect<{
  readonly languageModel: LanguageModel.Service
  readonly stream: LanguageModel.ConstructorParams["streamText"]
  readonly answer: (
    provider: LanguageModel.ProviderOptions
  ) => Effect.Effect<ReadonlyArray<Response.StreamPartEncoded>, AiError.AiError, IdGenerator.IdGenerator>
  readonly immediate: boolean
}> => {
  const { generateText } = params(options)
  const answer = (provider: LanguageModel.ProviderOptions) => Effect.map(generateText(provider), toStream)
  const stream: LanguageModel.ConstructorParams["streamText"] = (provider) =>
    Stream.flatMap(answer(provider), Stream.fromIterable)
  const immediate = Duration.isZero(Duration.decode(options?.latency ?? Duration.zero))
  return Effect.map(LanguageModel.make({ generateText, streamText: stream }), (languageModel) => ({
    languageModel,
    stream,
    answer,
    immediate
  }))
}

/** One token per four characters, at least one. */
export const estimateTokens = (text: string): number => Math.max(1, Math.ceil(text.length / 4))

interface Conversation {
  /** The last user message's text. */
  readonly input: string
  /** Tool results given after it. */
  readonly results: ReadonlyArray<Prompt.ToolResultPart>
  /** Everything the model reads, as text (for token counts). */
  readonly read: string
}

const read = (prompt: Prompt.Prompt): Conversation => {
  let lastUser = -1
  const texts: Array<string> = []
  prompt.content.forEach((message, index) => {
    if (message.role === "user") lastUser = index
    if (message.role === "system") texts.push(message.content)
    else {
      for (const part of message.content) {
        if (part.type === "text") texts.push(part.text)
        else if (part.type === "tool-call") texts.push(`${part.name}(${JSON.stringify(part.params)})`)
        else if (part.type === "tool-result") texts.push(JSON.stringify(part.result) ?? "")
      }
    }
  })
  const user = prompt.content[lastUser]
  const input = user?.role === "user"
    ? user.content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join("\n")
    : ""
  const results = prompt.content.slice(lastUser + 1).flatMap((message) =>
    message.role === "tool" ? message.content : []
  )
  return { input, results, read: texts.join("\n") }
}

interface Call {
  readonly name: string
  readonly params: Record<string, unknown>
}

const chooseTools = (input: string, tools: ReadonlySet<string>): Array<Call> => {
  if (tools.has("fan_out") && /\b(research|fan[- ]?out)\b/i.test(input)) {
    const count = /\b(\d+)\s+(?:researchers?|sub-?agents?|agents?)\b/i.exec(input)
    return [{
      name: "fan_out",
      params: { topic: topicOf(input), count: count === null ? 3 : Math.min(8, Math.max(1, Number(count[1]))) }
    }]
  }
  const calls: Array<Call> = []
  if (tools.has("clock") && /\b(time|clock|date|today|now)\b/i.test(input)) calls.push({ name: "clock", params: {} })
  const expression = Arithmetic.find(input)
  if (tools.has("calculator") && expression !== undefined) calls.push({ name: "calculator", params: { expression } })
  return calls
}

const topicOf = (input: string): string => {
  const topic = input
    .replace(/\b(please|can you|could you|research|fan[- ]?out|on|about|with|using)\b/gi, " ")
    .replace(/\b\d+\s+(researchers?|sub-?agents?|agents?)\b/gi, " ")
    .replace(/[?!.]+\s*$/, "")
    .replace(/\s+/g, " ")
    .trim()
  return topic === "" ? "the question" : topic.slice(0, 80)
}

const findings = [
  "the basics are well documented and widely used",
  "most teams adopt it incrementally, starting with the riskiest calls",
  "measurements beat intuition: record timings before tuning",
  "failure modes cluster around timeouts and retries",
  "simpler designs tend to win once load grows"
]

const answer = (input: string): string => {
  const research = /^research "(.+)" from angle (\d+) of (\d+): (.+)$/i.exec(input.trim())
  if (research !== null) {
    const [, topic, k, , angle] = research
    const finding = findings[(topic!.length + Number(k)) % findings.length]
    return `Notes on ${topic} (${angle}): ${finding}.`
  }
  const shown = input.length > 120 ? `${input.slice(0, 120)}…` : input
  return `I am the demo model. I can tell the time, do arithmetic ("what is 6 * 7?") and fan research out to ` +
    `sub-agents ("research circuit breakers with 3 researchers"). You said: "${shown}"`
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

const summarize = (results: ReadonlyArray<Prompt.ToolResultPart>): string =>
  results.map((part) => {
    const result = part.result
    if (part.isFailure) {
      const reason = isRecord(result) && typeof result.message === "string"
        ? result.message
        : isRecord(result) && typeof result.error === "string"
        ? result.error
        : JSON.stringify(result)
      return `The ${part.name} tool failed: ${reason}.`
    }
    if (part.name === "clock" && isRecord(result) && typeof result.iso === "string") return `It is ${result.iso}.`
    if (part.name === "calculator" && isRecord(result) && typeof result.value === "number") {
      return `${String(result.expression)} = ${result.value}.`
    }
    if (part.name === "fan_out" && isRecord(result) && Array.isArray(result.answers)) {
      const answers: ReadonlyArray<unknown> = result.answers
      const lines = answers.map((a, i) =>
        isRecord(a) && a.status === "success" ? `(${i + 1}) ${String(a.output)}` : `(${i + 1}) failed: ${
          isRecord(a) ? String(a.output) : "no answer"
        }`
      )
      return `I asked ${answers.length} researchers about ${String(result.topic)}. ${lines.join(" ")}`
    }
    return `${part.name} returned ${JSON.stringify(result)}.`
  }).join(" ")

const toStream = (parts: ReadonlyArray<Response.PartEncoded>): Array<Response.StreamPartEncoded> =>
  parts.flatMap((part, index): Array<Response.StreamPartEncoded> => {
    if (part.type === "text") {
      const id = `text_${index}`
      return [{ type: "text-start", id }, { type: "text-delta", id, delta: part.text }, { type: "text-end", id }]
    }
    return part.type === "tool-call" || part.type === "finish" || part.type === "response-metadata" ? [part] : []
  })
