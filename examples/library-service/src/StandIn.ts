/**
 * A stand-in for the forecast API the weather service calls, answering in process (no network): `GET /forecast?city=`
 * gives a made-up but stable forecast per city. The city `atlantis` is down (503), and so is every city while
 * `down` holds true. `main.ts` uses it when `FORECAST_URL` is unset; the tests use it as the upstream.
 */
import { HttpClient, HttpClientResponse } from "@effect/platform"
import { Effect, Layer, Ref } from "effect"

const skies = ["sunny", "cloudy", "rain", "fog", "snow", "wind"] as const

/** The stand-in's forecast for a city: the same city always gets the same one. */
export const forecastOf = (city: string) => {
  let hash = 0
  for (const char of city) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  return { city, temperature_c: (hash % 40) - 5, conditions: skies[hash % skies.length]! }
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } })

/** The stand-in as an `HttpClient`; while `down` holds true every call answers 503. */
export const make = (options?: { readonly down?: Ref.Ref<boolean> | undefined }): HttpClient.HttpClient =>
  HttpClient.make((request, url) =>
    Effect.map(options?.down === undefined ? Effect.succeed(false) : Ref.get(options.down), (down) => {
      const city = url.searchParams.get("city") ?? ""
      const answer = url.pathname !== "/forecast"
        ? json(404, { error: "not_found" })
        : down || city === "atlantis"
        ? json(503, { error: "unavailable" })
        : json(200, forecastOf(city))
      return HttpClientResponse.fromWeb(request, answer)
    })
  )

/** The stand-in as the `HttpClient` of whatever it is provided to. */
export const layer: Layer.Layer<HttpClient.HttpClient> = Layer.sync(HttpClient.HttpClient, () => make())
