/** The gateway: the `Api` served over the services in context, inside the ingress middleware. */
export * as Gateway from "./Gateway.js"

/** The HTTP contract as an `HttpApi` declaration (routes, bodies, errors), for servers and derived clients. */
export * as GatewayApi from "./GatewayApi.js"

/** The errors the gateway answers with, and their JSON wire forms. */
export * as ApiError from "./ApiError.js"

/** The ingress/egress middleware for any `HttpApp`: trace ids, spans, lifecycle, trace headers, request metrics. */
export * as Ingress from "./Ingress.js"

/** Effect's metrics registry as Prometheus text. */
export * as Prometheus from "./Prometheus.js"

/** Whether this replica can serve (`/readyz`), from state a background check keeps. */
export * as Readiness from "./Readiness.js"

/** The OpenAI-compatible routes: `POST /v1/chat/completions`, `GET /v1/models`. */
export * as ChatCompletions from "./ChatCompletions.js"

/** The OpenAI wire format of those routes, as schemas. */
export * as OpenAiWire from "./OpenAiWire.js"

/** Streaming a run as server-sent events, holding the response until its first output. */
export * as Sse from "./Sse.js"

/** API keys: who may call the gateway, for which tenant, with which scopes. */
export * as ApiKeys from "./ApiKeys.js"

/** The admission of requests over the configured API keys and rate limit. */
export * as Access from "./Access.js"

/** Per-key rate limits on `@effect/experimental`'s `RateLimiter` (the Redis store: `@sg/gateway/RateLimit/Redis`). */
export * as RateLimit from "./RateLimit.js"
