/**
 * Model providers: a named `LanguageModel` the runtime calls through the breaker `model:<name>`. `SG_MODEL` picks
 * one: `demo` (default; offline and deterministic, see `DemoModel`) or `openai` (@effect/ai-openai, with
 * `OPENAI_API_KEY`, `OPENAI_BASE_URL` and `SG_MODEL_NAME`).
 */
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as OpenAiClient from "@effect/ai-openai/OpenAiClient"
import * as OpenAiLanguageModel from "@effect/ai-openai/OpenAiLanguageModel"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as DemoModel from "./DemoModel.js"

/** A model provider: its name (the breaker is `model:<name>`), the model it asks for, and the model itself. */
export interface Provider {
  readonly name: string
  /** Recorded as `gen_ai.request.model` on every model call. */
  readonly model: string
  readonly languageModel: LanguageModel.Service
}

/** The provider agents run on unless they name another. */
export class ModelProvider extends Context.Tag("@sg/agent-runtime/ModelProvider")<ModelProvider, Provider>() {}

/** The demo provider (`demo`): the offline, deterministic `DemoModel`. */
export const makeDemo = (options?: DemoModel.Options): Effect.Effect<Provider> =>
  Effect.map(DemoModel.make(options), (languageModel) => ({ name: "demo", model: DemoModel.modelName, languageModel }))

/** The demo provider as the default one. */
export const layerDemo = (options?: DemoModel.Options): Layer.Layer<ModelProvider> =>
  Layer.effect(ModelProvider, makeDemo(options))

/** The default model of the `openai` provider. */
export const defaultOpenAiModel = "gpt-4o-mini"

/** The default endpoint of the `openai` provider. */
export const defaultOpenAiBaseUrl = "https://api.openai.com/v1"

/** How to reach an OpenAI-compatible endpoint (the Responses API, `POST <baseUrl>/responses`). */
export interface OpenAiOptions {
  readonly apiKey: Redacted.Redacted
  /** Defaults to `https://api.openai.com/v1`. */
  readonly baseUrl?: string | undefined
  /** Defaults to `gpt-4o-mini`. */
  readonly model?: string | undefined
}

/** The `openai` provider over the `HttpClient` in context. */
export const makeOpenAi = (
  options: OpenAiOptions
): Effect.Effect<Provider, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const model = options.model ?? defaultOpenAiModel
    const client = yield* OpenAiClient.make({ apiKey: options.apiKey, apiUrl: options.baseUrl ?? defaultOpenAiBaseUrl })
    const languageModel = yield* OpenAiLanguageModel.make({ model }).pipe(
      Effect.provideService(OpenAiClient.OpenAiClient, client)
    )
    return { name: "openai", model, languageModel }
  })

/** The `openai` provider as the default one, over the `HttpClient` in context. */
export const layerOpenAi = (options: OpenAiOptions): Layer.Layer<ModelProvider, never, HttpClient.HttpClient> =>
  Layer.scoped(ModelProvider, makeOpenAi(options))

/** Which provider the environment asks for. */
export type Settings =
  | { readonly kind: "demo" }
  | { readonly kind: "openai"; readonly apiKey: Redacted.Redacted; readonly baseUrl: string; readonly model: string }

const openAiSettings: Config.Config<Settings> = Config.all({
  // Redacted once read: `Config.redacted` would also mask our validation message, which never shows the value.
  apiKey: Config.string("OPENAI_API_KEY").pipe(
    Config.validate({ message: "OPENAI_API_KEY must not be empty", validation: (s: string) => s.trim() !== "" }),
    Config.map(Redacted.make),
    Config.withDescription("the API key of the openai provider (required with SG_MODEL=openai)")
  ),
  baseUrl: Config.string("OPENAI_BASE_URL").pipe(
    Config.withDefault(defaultOpenAiBaseUrl),
    Config.validate({
      message: "OPENAI_BASE_URL must be an http(s) URL",
      validation: (s: string) => /^https?:\/\/[^\s/]+/i.test(s)
    }),
    Config.withDescription("the OpenAI-compatible endpoint (its /responses route is called)")
  ),
  model: Config.string("SG_MODEL_NAME").pipe(
    Config.withDefault(defaultOpenAiModel),
    Config.validate({ message: "SG_MODEL_NAME must not be empty", validation: (s: string) => s.trim() !== "" }),
    Config.withDescription("the model the openai provider asks for")
  )
}).pipe(Config.map((s): Settings => ({ kind: "openai", ...s, baseUrl: s.baseUrl.replace(/\/+$/, "") })))

/**
 * The provider settings from the environment: `SG_MODEL` (`demo` or `openai`, default `demo`); with `openai`,
 * `OPENAI_API_KEY` (required), `OPENAI_BASE_URL` and `SG_MODEL_NAME`. A bad value is a `ConfigError` naming the
 * variable.
 */
export const config: Effect.Effect<Settings, ConfigError.ConfigError> = Effect.flatMap(
  Config.literal("demo", "openai")("SG_MODEL").pipe(
    Config.withDefault("demo" as const),
    Config.withDescription("the model provider: demo (offline) or openai")
  ),
  (kind): Effect.Effect<Settings, ConfigError.ConfigError> =>
    kind === "demo" ? Effect.succeed({ kind }) : openAiSettings
)

/** The provider of `settings`; `openai` talks HTTP through `fetch` (@effect/platform's `FetchHttpClient`). */
export const layerSettings = (settings: Settings): Layer.Layer<ModelProvider> =>
  settings.kind === "demo"
    ? layerDemo()
    : layerOpenAi({ apiKey: settings.apiKey, baseUrl: settings.baseUrl, model: settings.model }).pipe(
      Layer.provide(FetchHttpClient.layer)
    )

/** The provider the environment names (see `config`). */
export const layerConfig: Layer.Layer<ModelProvider, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config, layerSettings)
)
