/**
 * Model providers: a named `LanguageModel` the runtime calls through the breaker `model:<name>`, and the fallback
 * chain of them agents run on (`ModelProvider`). `SG_MODEL` is that chain, comma-separated, tried in order:
 *
 * - `demo` (the default): offline and deterministic, see `Demo`.
 * - `openai`: the Responses API (@effect/ai-openai), with `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `SG_MODEL_NAME`.
 * - `openai-compat`: the Chat Completions API (`OpenAiCompat`) that Ollama, vLLM, llama.cpp, LM Studio, OpenRouter,
 *   LiteLLM and Portkey speak, with `SG_COMPAT_BASE_URL`, `SG_COMPAT_API_KEY` (optional), `SG_COMPAT_MODEL`.
 * - `anthropic`: the Messages API (@effect/ai-anthropic), with `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`,
 *   `SG_ANTHROPIC_MODEL`.
 */
import type * as AiError from "@effect/ai/AiError"
import type * as IdGenerator from "@effect/ai/IdGenerator"
import type * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Response from "@effect/ai/Response"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Arr from "effect/Array"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Demo from "./Demo.js"
import * as OpenAiCompat from "./OpenAiCompat.js"

/** A model provider: its name (the breaker is `model:<name>`), the model it asks for, and the model itself. */
export interface Provider {
  readonly name: string
  /** Recorded as `gen_ai.request.model` on every model call. */
  readonly model: string
  readonly languageModel: LanguageModel.Service
  /**
   * The model's own stream, under `languageModel` (what was given to `LanguageModel.make`), when the provider has it.
   * The runtime calls it directly: `languageModel.streamText` builds and compiles the response schema of the
   * toolkit on every call, which costs more than the rest of a fast model call.
   */
  readonly stream?: LanguageModel.ConstructorParams["streamText"] | undefined
  /**
   * For a model whose answer is whole before its first part (the demo): that answer as the parts its `stream` would
   * send, in order, at once. The runtime reads them as it reads the stream's, without @effect/ai's Stream machinery
   * (a channel, a scope and a pull per part cost more than the demo model's own work).
   */
  readonly answer?: ((options: LanguageModel.ProviderOptions) => Effect.Effect<
    ReadonlyArray<Response.StreamPartEncoded>,
    AiError.AiError,
    IdGenerator.IdGenerator
  >) | undefined
  /**
   * True when `answer` takes no time at all (no I/O, no sleep: the demo without latency): no timeout could fire
   * before it answers, so its model calls are not raced against the model and first-token timeouts, a race that
   * costs two fibers and a timer each.
   */
  readonly immediate?: boolean | undefined
}

/** Providers in fallback order: a model call goes to the first whose breaker is not open, then to the next. */
export interface Chain {
  readonly providers: Arr.NonEmptyReadonlyArray<Provider>
}

/** The chain agents run on unless they name a provider. */
export class ModelProvider extends Context.Tag("@sg/agent-runtime/ModelProvider")<ModelProvider, Chain>() {}

/** A chain of `providers`, tried in order. */
export const chain = (...providers: Arr.NonEmptyReadonlyArray<Provider>): Chain => ({ providers })

/** A chain as the default one. */
export const layerChain = (...providers: Arr.NonEmptyReadonlyArray<Provider>): Layer.Layer<ModelProvider> =>
  Layer.succeed(ModelProvider, chain(...providers))

/** The provider names `SG_MODEL` may list. */
export const kinds = ["demo", "openai", "openai-compat", "anthropic"] as const

/** A provider name `SG_MODEL` may list. */
export type Kind = typeof kinds[number]

/** The demo provider (`demo`): the offline, deterministic demo model (`Demo.makeModel`). */
export const makeDemo = (options?: Demo.ModelOptions): Effect.Effect<Provider> =>
  Effect.map(Demo.makeModelWithStream(options), ({ answer, immediate, languageModel, stream }) => ({
    name: "demo",
    model: Demo.modelName,
    languageModel,
    stream,
    answer,
    immediate
  }))

/** The demo provider as the default chain. */
export const layerDemo = (options?: Demo.ModelOptions): Layer.Layer<ModelProvider> =>
  Layer.effect(ModelProvider, Effect.map(makeDemo(options), (provider) => chain(provider)))

/** The default model of the `openai` provider. */
export const defaultOpenAiModel = "gpt-4o-mini"

/** The default endpoint of the `openai` provider. */
export const defaultOpenAiBaseUrl = "https://api.openai.com/v1"

/** How to reach the OpenAI Responses API (`POST <baseUrl>/responses`). */
export interface OpenAiOptions {
  readonly apiKey: Redacted.Redacted
  /** Defaults to `https://api.openai.com/v1`. */
  readonly baseUrl?: string | undefined
  /** Defaults to `gpt-4o-mini`. */
  readonly model?: string | undefined
}

/**
 * Loads a provider's modules when it is built, not when this module is: they are large (@effect/ai-openai's and
 * @effect/ai-anthropic's generated clients, undici), and every `sg` verb, most of which call no model, imports this.
 */
const load = <A>(modules: () => Promise<A>): Effect.Effect<A> => Effect.promise(modules)

/** The `openai` provider over the `HttpClient` in context. */
export const makeOpenAi = (
  options: OpenAiOptions
): Effect.Effect<Provider, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const [OpenAiClient, OpenAiLanguageModel] = yield* load(
      () => Promise.all([import("@effect/ai-openai/OpenAiClient"), import("@effect/ai-openai/OpenAiLanguageModel")])
    )
    const model = options.model ?? defaultOpenAiModel
    const client = yield* OpenAiClient.make({ apiKey: options.apiKey, apiUrl: options.baseUrl ?? defaultOpenAiBaseUrl })
    const languageModel = yield* OpenAiLanguageModel.make({ model }).pipe(
      Effect.provideService(OpenAiClient.OpenAiClient, client)
    )
    return { name: "openai", model, languageModel }
  })

/** The `openai-compat` provider (Chat Completions at `options.baseUrl`) over the `HttpClient` in context. */
export const makeOpenAiCompat = (
  options: OpenAiCompat.Options
): Effect.Effect<Provider, never, HttpClient.HttpClient> =>
  Effect.map(OpenAiCompat.makeWithStream(options), ({ languageModel, stream }) => ({
    name: "openai-compat",
    model: options.model,
    languageModel,
    stream
  }))

/** The default model of the `anthropic` provider. */
export const defaultAnthropicModel = "claude-haiku-4-5"

/** The default endpoint of the `anthropic` provider (`/v1/messages` is appended). */
export const defaultAnthropicBaseUrl = "https://api.anthropic.com"

/** How to reach the Anthropic Messages API. */
export interface AnthropicOptions {
  readonly apiKey: Redacted.Redacted
  /** Defaults to `https://api.anthropic.com`. */
  readonly baseUrl?: string | undefined
  /** Defaults to `claude-haiku-4-5`. */
  readonly model?: string | undefined
}

/** The `anthropic` provider over the `HttpClient` in context. */
export const makeAnthropic = (
  options: AnthropicOptions
): Effect.Effect<Provider, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const [AnthropicClient, AnthropicLanguageModel] = yield* load(() =>
      Promise.all([
        import("@effect/ai-anthropic/AnthropicClient"),
        import("@effect/ai-anthropic/AnthropicLanguageModel")
      ])
    )
    const model = options.model ?? defaultAnthropicModel
    const client = yield* AnthropicClient.make({
      apiKey: options.apiKey,
      apiUrl: options.baseUrl ?? defaultAnthropicBaseUrl
    })
    const languageModel = yield* AnthropicLanguageModel.make({ model }).pipe(
      Effect.provideService(AnthropicClient.AnthropicClient, client)
    )
    return { name: "anthropic", model, languageModel }
  })

/** One provider of the chain, as the environment configures it. */
export type ProviderSettings =
  | { readonly kind: "demo" }
  | { readonly kind: "openai"; readonly apiKey: Redacted.Redacted; readonly baseUrl: string; readonly model: string }
  | {
    readonly kind: "openai-compat"
    readonly apiKey: Redacted.Redacted | undefined
    readonly baseUrl: string
    readonly model: string
  }
  | { readonly kind: "anthropic"; readonly apiKey: Redacted.Redacted; readonly baseUrl: string; readonly model: string }

/** The chain the environment configures, in fallback order. */
export type Settings = Arr.NonEmptyReadonlyArray<ProviderSettings>

const nonEmpty = (name: string) => Config.validate({
  message: `${name} must not be empty`,
  validation: (s: string) => s.trim() !== ""
})

const httpUrl = (name: string) => Config.validate({
  message: `${name} must be an http(s) URL`,
  validation: (s: string) => /^https?:\/\/[^\s/]+/i.test(s)
})

const withoutTrailingSlash = (url: string): string => url.replace(/\/+$/, "")

// Keys are redacted once read: `Config.redacted` would also mask our validation message, which never shows the value.
const key = (name: string, required: string) =>
  Config.string(name).pipe(nonEmpty(name), Config.map(Redacted.make), Config.withDescription(required))

const openAiSettings: Config.Config<ProviderSettings> = Config.all({
  apiKey: key("OPENAI_API_KEY", "the API key of the openai provider (required with SG_MODEL=openai)"),
  baseUrl: Config.string("OPENAI_BASE_URL").pipe(
    Config.withDefault(defaultOpenAiBaseUrl),
    httpUrl("OPENAI_BASE_URL"),
    Config.withDescription("the OpenAI endpoint (its /responses route is called)")
  ),
  model: Config.string("SG_MODEL_NAME").pipe(
    Config.withDefault(defaultOpenAiModel),
    nonEmpty("SG_MODEL_NAME"),
    Config.withDescription("the model the openai provider asks for")
  )
}).pipe(Config.map((s): ProviderSettings => ({ kind: "openai", ...s, baseUrl: withoutTrailingSlash(s.baseUrl) })))

const compatSettings: Config.Config<ProviderSettings> = Config.all({
  baseUrl: Config.string("SG_COMPAT_BASE_URL").pipe(
    httpUrl("SG_COMPAT_BASE_URL"),
    Config.withDescription(
      "the Chat Completions endpoint of the openai-compat provider, e.g. http://localhost:11434/v1 (Ollama)"
    )
  ),
  apiKey: Config.option(Config.string("SG_COMPAT_API_KEY")).pipe(
    Config.map(Option.filter((s) => s.trim() !== "")),
    Config.map((key) => Option.getOrUndefined(Option.map(key, Redacted.make))),
    Config.withDescription("the openai-compat provider's API key (optional: local servers need none)")
  ),
  model: Config.string("SG_COMPAT_MODEL").pipe(
    nonEmpty("SG_COMPAT_MODEL"),
    Config.withDescription("the model the openai-compat provider asks for, e.g. llama3.2")
  )
}).pipe(
  Config.map((s): ProviderSettings => ({ kind: "openai-compat", ...s, baseUrl: withoutTrailingSlash(s.baseUrl) }))
)

const anthropicSettings: Config.Config<ProviderSettings> = Config.all({
  apiKey: key("ANTHROPIC_API_KEY", "the API key of the anthropic provider (required with SG_MODEL=anthropic)"),
  baseUrl: Config.string("ANTHROPIC_BASE_URL").pipe(
    Config.withDefault(defaultAnthropicBaseUrl),
    httpUrl("ANTHROPIC_BASE_URL"),
    Config.withDescription("the Anthropic endpoint (its /v1/messages route is called)")
  ),
  model: Config.string("SG_ANTHROPIC_MODEL").pipe(
    Config.withDefault(defaultAnthropicModel),
    nonEmpty("SG_ANTHROPIC_MODEL"),
    Config.withDescription("the model the anthropic provider asks for")
  )
}).pipe(
  Config.map((s): ProviderSettings => ({ kind: "anthropic", ...s, baseUrl: withoutTrailingSlash(s.baseUrl) }))
)

const settingsOf = (kind: Kind): Config.Config<ProviderSettings> =>
  kind === "demo"
    ? Config.succeed({ kind })
    : kind === "openai"
    ? openAiSettings
    : kind === "openai-compat"
    ? compatSettings
    : anthropicSettings

const isKind = (name: string): name is Kind => (kinds as ReadonlyArray<string>).includes(name)

/** Parses `SG_MODEL`: provider names, comma-separated, each known and listed once. */
export const parseChain = (value: string): Either.Either<Arr.NonEmptyReadonlyArray<Kind>, string> => {
  const names = value.split(",").map((name) => name.trim())
  const chain: Array<Kind> = []
  for (const name of names) {
    if (name === "") return Either.left(`expected provider names separated by commas, got "${value}"`)
    if (!isKind(name)) return Either.left(`unknown provider "${name}"; known providers: ${kinds.join(", ")}`)
    if (chain.includes(name)) return Either.left(`provider "${name}" is listed twice`)
    chain.push(name)
  }
  return Arr.isNonEmptyReadonlyArray(chain) ? Either.right(chain) : Either.left("expected at least one provider")
}

/** `SG_MODEL`: the chain's provider names (default `demo`). */
export const chainConfig: Config.Config<Arr.NonEmptyReadonlyArray<Kind>> = Config.mapOrFail(
  Config.string("SG_MODEL").pipe(Config.withDefault("demo")),
  (value) => Either.mapLeft(parseChain(value), (message) => ConfigError.InvalidData(["SG_MODEL"], message))
).pipe(Config.withDescription(`the model providers, in fallback order, comma-separated: ${kinds.join(", ")}`))

/**
 * The chain from the environment: `SG_MODEL` (default `demo`), then each listed provider's variables. A bad value is
 * a `ConfigError` naming the variable.
 */
export const config: Effect.Effect<Settings, ConfigError.ConfigError> = Effect.flatMap(
  chainConfig,
  (names) => Effect.forEach(names, (name) => settingsOf(name)) as Effect.Effect<Settings, ConfigError.ConfigError>
)

/** A provider from its settings, over the `HttpClient` in context. */
export const makeSettings = (
  settings: ProviderSettings
): Effect.Effect<Provider, never, HttpClient.HttpClient | Scope.Scope> => {
  switch (settings.kind) {
    case "demo":
      return makeDemo()
    case "openai":
      return makeOpenAi(settings)
    case "openai-compat":
      return makeOpenAiCompat({ baseUrl: settings.baseUrl, apiKey: settings.apiKey, model: settings.model })
    case "anthropic":
      return makeAnthropic(settings)
  }
}

/**
 * undici's dispatcher API (`NodeHttpClient.layerUndici`), loaded when first built: it costs a model call about a
 * third less CPU than `fetch` does (measured with a local upstream: `fetch` builds web streams and abort signals
 * around every body).
 */
export const layerUndici: Layer.Layer<HttpClient.HttpClient> = Layer.unwrapEffect(
  Effect.map(load(() => import("@effect/platform-node/NodeHttpClient")), (module) => module.layerUndici)
)

/**
 * The chain of `settings`; providers that talk HTTP do so through `client`, by default `layerUndici` (a chain of
 * `demo` alone gets `fetch`, which it never uses and which loads nothing more).
 */
export const layerSettings = (
  settings: Settings,
  client: Layer.Layer<HttpClient.HttpClient> = settings.every((provider) => provider.kind === "demo")
    ? FetchHttpClient.layer
    : layerUndici
): Layer.Layer<ModelProvider> =>
  Layer.scoped(
    ModelProvider,
    Effect.map(
      Effect.forEach(settings, makeSettings),
      (providers) => ({ providers: providers as unknown as Arr.NonEmptyReadonlyArray<Provider> })
    )
  ).pipe(Layer.provide(client))

/** The chain the environment names (see `config`). */
export const layerConfig: Layer.Layer<ModelProvider, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config, layerSettings)
)

/** One line saying what a provider runs on, for start-up logs: `openai-compat llama3.2 at http://...`. */
export const describe = (settings: ProviderSettings): string =>
  settings.kind === "demo" ? "demo (offline)" : `${settings.kind} ${settings.model} at ${settings.baseUrl}`
