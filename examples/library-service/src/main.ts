/**
 * Runs the weather service: `PORT` (8080), `FORECAST_URL` (unset: the offline stand-in forecast API), and sg's
 * settings (`REDIS_URL`, unset: traces in memory; `SG_*`). `pnpm --filter @sg/example-library-service start`.
 */
import { FetchHttpClient, HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option } from "effect"
import { createServer } from "node:http"
import * as Sg from "./Sg.js"
import * as StandIn from "./StandIn.js"
import * as Weather from "./Weather.js"

const Upstream = Layer.unwrapEffect(
  Effect.map(Config.option(Config.string("FORECAST_URL")), (url) =>
    Option.isSome(url)
      ? Weather.layerForecastApi(url.value).pipe(Layer.provide(FetchHttpClient.layer))
      : Weather.layerForecastApi("http://stand-in").pipe(Layer.provide(StandIn.layer)))
)

const Server = Layer.unwrapEffect(
  Effect.map(Config.port("PORT").pipe(Config.withDefault(8080)), (port) => NodeHttpServer.layer(createServer, { port }))
)

const Banner = Layer.effectDiscard(
  Effect.gen(function*() {
    const redis = yield* Config.option(Config.string("REDIS_URL"))
    const forecast = yield* Config.option(Config.string("FORECAST_URL"))
    yield* Effect.logInfo(
      `weather service: traces in ${Option.isSome(redis) ? "Redis" : "memory (REDIS_URL is unset)"}, forecasts from ` +
        `${Option.getOrElse(forecast, () => "the offline stand-in (FORECAST_URL is unset)")}`
    )
  })
)

Weather.layer.pipe(
  HttpServer.withLogAddress,
  Layer.provide(Upstream),
  Layer.provide(Server),
  Layer.provide(Banner),
  Layer.provide(Sg.layerConfig), // sg
  Layer.launch,
  NodeRuntime.runMain
)
