/**
 * Who may make a request: the ingress's admission (`Ingress.Admit`) over the configured `ApiKeys` and, when there is
 * one, the `RateLimit.RequestLimit` in context (DESIGN.md, "Access").
 *
 * - With no key configured, every request is admitted (and `sg serve` listens on loopback only).
 * - Each route's needs come from the `ApiKeys.Rule` annotations of the `Api` declaration, found with the router the
 *   gateway itself routes with (`find-my-way-ts`, the same configuration), so a path that reaches a route is judged
 *   as that route (case, duplicate slashes, a trailing slash and percent-encoding change nothing). A route with no
 *   rule needs `read`; a path no route matches needs a valid key of any scope.
 * - The key comes as `Authorization: Bearer <key>` or `x-api-key: <key>`. None, or one not configured: 401
 *   `unauthorized` with `WWW-Authenticate: Bearer`. A valid key without the route's scope: 403 `forbidden` naming the
 *   scope. Over `SG_RATE_LIMIT`: 429 `rate_limited` with `Retry-After`. Each in the route's error shape: sg's JSON, or
 *   OpenAI's error object on the OpenAI-compatible routes. Every admitted request under a limit carries the
 *   `x-ratelimit-limit-requests`, `-remaining-requests` and `-reset-requests` headers.
 * - An admitted request runs with its key as `ApiKeys.CurrentPrincipal` and for the key's tenant.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as FindMyWay from "find-my-way-ts"
import * as ApiError from "./ApiError.js"
import * as ApiKeys from "./ApiKeys.js"
import type * as Ingress from "./Ingress.js"
import * as OpenAiWire from "./OpenAiWire.js"
import * as RateLimit from "./RateLimit.js"

/** How access is checked. */
export interface Options {
  /** Endpoints (`<group>.<endpoint>`, e.g. `ops.metrics`) that need no key whatever their rule says. */
  readonly open?: ReadonlyArray<string> | undefined
}

/** A route as the admission knows it. */
interface Route {
  readonly path: string
  readonly rule: ApiKeys.Rule["Type"]
}

const defaultRule: ApiKeys.Rule["Type"] = { scope: "read", shape: "sg" }

/** The routes of `api` with their rules, in a router configured as the gateway's own. */
const routerOf = (api: HttpApi.HttpApi.Any, open: ReadonlySet<string>) => {
  const router = FindMyWay.make<Route>()
  HttpApi.reflect(api as HttpApi.HttpApi.AnyWithProps, {
    onGroup: () => {},
    onEndpoint: ({ endpoint, group, mergedAnnotations }) => {
      const rule = Option.getOrElse(Context.getOption(mergedAnnotations, ApiKeys.Rule), () => defaultRule)
      const name = `${group.identifier}.${endpoint.name}`
      router.on(endpoint.method, endpoint.path, {
        path: endpoint.path,
        rule: open.has(name) ? { ...rule, scope: "open" } : rule
      })
    }
  })
  return (method: string, url: string): Route | undefined =>
    (router.find(method, url) ?? (method === "HEAD" ? router.find("GET", url) : undefined))?.handler
}

const bearer = /^\s*bearer\s+(\S+)\s*$/i

/** The key a request presents: its bearer token, else its `x-api-key`. */
export const presentedKey = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const authorization: unknown = request.headers["authorization"]
  if (typeof authorization === "string") {
    const match = bearer.exec(authorization)
    if (match !== null) return match[1]!
  }
  const apiKey: unknown = request.headers["x-api-key"]
  return typeof apiKey === "string" && apiKey.trim() !== "" ? apiKey.trim() : undefined
}

type Refusal = ApiError.Unauthorized | ApiError.Forbidden | ApiError.RateLimited

/** A refusal in the route's shape, with its headers. */
const refusal = (
  error: Refusal,
  shape: ApiKeys.Rule["Type"]["shape"],
  headers: Record<string, string>
): HttpServerResponse.HttpServerResponse => {
  const status = ApiError.statuses[error._tag]
  const code = ApiError.codes[error._tag]
  const { _tag: _, ...fields } = error as unknown as { readonly _tag: string } & Record<string, unknown>
  const body = shape === "openai"
    ? OpenAiWire.errorBody(status, {
      message: error.message,
      code,
      param: error._tag === "Forbidden" ? "scope" : undefined
    })
    : { error: code, ...fields, message: error.message }
  return HttpServerResponse.unsafeJson(body, { status, headers })
}

const challenge = { "www-authenticate": "Bearer realm=\"sg\"" }

/** The admission for `api`'s routes over the `ApiKeys` (and any `RateLimit.RequestLimit`) in context. */
export const make = (
  api: HttpApi.HttpApi.Any,
  options?: Options
): Effect.Effect<Ingress.Admit, never, ApiKeys.ApiKeys> =>
  Effect.gen(function*() {
    const keys = yield* ApiKeys.ApiKeys
    const limiter = yield* Effect.serviceOption(RateLimit.RequestLimit)
    const find = routerOf(api, new Set(options?.open ?? []))

    return (request) =>
      Effect.flatMap(keys.current, (set): Effect.Effect<Ingress.Admission> => {
        if (set.entries.length === 0) return Effect.succeed({ _tag: "Admitted" })
        const route = find(request.method, request.url)
        const rule = route?.rule ?? { scope: undefined, shape: "sg" as const }
        if (rule.scope === "open") return Effect.succeed({ _tag: "Admitted" })
        const refuse = (error: Refusal, headers: Record<string, string> = {}) =>
          Effect.succeed<Ingress.Admission>({
            _tag: "Refused",
            response: refusal(error, rule.shape, headers),
            route: route?.path
          })
        const presented = presentedKey(request)
        if (presented === undefined) {
          return refuse(
            new ApiError.Unauthorized({
              message: "this route needs an API key: send it as Authorization: Bearer <key>, or as x-api-key"
            }),
            challenge
          )
        }
        const principal = ApiKeys.lookup(set, presented)
        if (Option.isNone(principal)) {
          return refuse(new ApiError.Unauthorized({ message: "the API key is not valid" }), challenge)
        }
        const caller = principal.value
        if (rule.scope !== undefined && !ApiKeys.allows(caller, rule.scope)) {
          return refuse(
            new ApiError.Forbidden({
              scope: rule.scope,
              message: `this API key lacks the ${rule.scope} scope this route needs`
            })
          )
        }
        const admitted = (headers?: Record<string, string>): Ingress.Admission => ({
          _tag: "Admitted",
          tenant: caller.tenant,
          headers,
          context: Context.make(ApiKeys.CurrentPrincipal, caller)
        })
        if (Option.isNone(limiter)) return Effect.succeed(admitted())
        return Effect.flatMap(limiter.value.check(caller.id), (decision) => {
          const headers = RateLimit.headersOf(decision)
          if (decision.allowed) return Effect.succeed(admitted(headers))
          const seconds = RateLimit.retryAfterSeconds(decision)
          return refuse(
            new ApiError.RateLimited({
              limit: limiter.value.limit.text,
              retry_after: seconds,
              message: `this API key is over its rate limit of ${limiter.value.limit.text}: retry in ${
                Duration.format(Duration.seconds(seconds))
              }`
            }),
            headers
          )
        })
      })
  })
