/**
 * Someone else's service: a small weather API. `GET /weather/:city` asks an upstream forecast API over `HttpClient`
 * and answers its forecast. The lines marked `// sg` are what adding sg changed here; the rest of sg is `Sg.ts`.
 */
import { HttpClient, HttpClientRequest, HttpClientResponse, HttpMiddleware, HttpRouter } from "@effect/platform"
import { HttpServer, HttpServerResponse } from "@effect/platform"
import { Ingress } from "@sg/gateway" // sg
import { CircuitBreaker, type CircuitOpenError } from "@sg/resilience" // sg
import { ExecutionSpan } from "@sg/trace" // sg
import { Context, Duration, Effect, Layer, Schema } from "effect"

/** What the forecast API answers. */
export const Forecast = Schema.Struct({ city: Schema.String, temperature_c: Schema.Number, conditions: Schema.String })

/** What the forecast API answers. */
export type Forecast = typeof Forecast.Type

/** The forecast API failed, answered something else than a forecast, or took longer than 2 seconds. */
export class UpstreamError extends Schema.TaggedError<UpstreamError>()("UpstreamError", { message: Schema.String }) {}

/** The forecast API, as the service sees it. */
export class ForecastApi extends Context.Tag("example/ForecastApi")<ForecastApi, {
  readonly get: (city: string) => Effect.Effect<Forecast, UpstreamError | CircuitOpenError> // sg: | CircuitOpenError
}>() {}

/** The forecast API at `baseUrl`, over the `HttpClient` in context. */
export const layerForecastApi = (baseUrl: string) =>
  Layer.effect(
    ForecastApi,
    Effect.gen(function*() {
      const client = (yield* HttpClient.HttpClient).pipe(
        HttpClient.mapRequest(HttpClientRequest.prependUrl(baseUrl)),
        HttpClient.filterStatusOk
      )
      const breakers = yield* CircuitBreaker.CircuitBreaker // sg
      return {
        get: (city) =>
          client.get("/forecast", { urlParams: { city } }).pipe(
            Effect.flatMap(HttpClientResponse.schemaBodyJson(Forecast)),
            Effect.timeout("2 seconds"),
            Effect.mapError((error) => new UpstreamError({ message: `forecast API: ${error.message}` })),
            breakers.protect("forecast-api"), // sg
            ExecutionSpan.tool("forecast", { input: city }) // sg
          )
      }
    })
  )

/** What the service answers while the forecast API's breaker is open: no forecast, and when to ask again. */
const fallback = (city: string, error: CircuitOpenError) => ({ // sg
  city, temperature_c: null, conditions: "unknown", source: "fallback", // sg
  retry_after_seconds: Math.ceil(Duration.toSeconds(error.retryAfter)) // sg
}) // sg

const weather = Effect.gen(function*() {
  const { city } = yield* HttpRouter.schemaPathParams(Schema.Struct({ city: Schema.String }))
  const forecast = yield* (yield* ForecastApi).get(city).pipe(
    Effect.map((forecast) => ({ ...forecast, source: "upstream" })),
    Effect.catchTag("CircuitOpenError", (error) => Effect.succeed(fallback(city, error))) // sg
  )
  return yield* HttpServerResponse.json(forecast)
}).pipe(
  Effect.catchTags({
    UpstreamError: (error) =>
      HttpServerResponse.json({ error: "upstream_error", message: error.message }, { status: 502 }),
    ParseError: () => HttpServerResponse.json({ error: "bad_request", message: "city is missing" }, { status: 400 })
  })
)

/** The service's routes. */
export const app = HttpRouter.empty.pipe(
  HttpRouter.get("/weather/:city", weather),
  HttpRouter.get("/healthz", HttpServerResponse.text("ok"))
)

/** The service on the `HttpServer` in context. Without sg this was `HttpServer.serve(app)`. */
export const layer = Layer.unwrapEffect( // sg
  Effect.map(Ingress.make({ lifecycle: (request) => request.url.startsWith("/weather/") }), (ingress) => // sg
    HttpServer.serve(ingress(app))) // sg
).pipe(HttpMiddleware.withTracerDisabledWhen(() => true)) // sg
