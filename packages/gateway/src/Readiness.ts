/**
 * Whether this replica can serve, as `/readyz` answers it, from state a background check keeps: a PING of the trace
 * store every `interval` (1 s), the breakers' states, and the `Health` indicators other services report. Tracing is
 * best effort, so a degraded store, an open breaker or a dropping exporter is named, not fatal: the replica is ready
 * unless it is starting (no check has finished yet), draining, or `requiresStore` (`SG_READY_REQUIRES_STORE=on`) is
 * set while the store is unreachable or failing writes, or a `critical` health indicator is degraded. Answering
 * reads memory only, so a probe costs no round trip however the store is. Time comes from `Clock`.
 */
import { CircuitBreaker, Health } from "@sg/resilience"
import { TraceLifecycle, TraceStore } from "@sg/trace"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"

/** How readiness is checked. */
export interface Options {
  /** How often the store is pinged; 1 second by default. */
  readonly interval?: Duration.DurationInput | undefined
  /** How long a PING may take before the store counts as unreachable; 500 millis by default. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Not ready while the store is unreachable or failing writes (`SG_READY_REQUIRES_STORE`); off by default. */
  readonly requiresStore?: boolean | undefined
}

/** The defaults of `Options`. */
export const defaults = {
  interval: Duration.seconds(1),
  timeout: Duration.millis(500),
  requiresStore: false
} as const

/** `SG_READY_REQUIRES_STORE` (`on`/`off`, off by default). */
export const config: Config.Config<Options> = Config.all({
  requiresStore: Config.boolean("SG_READY_REQUIRES_STORE").pipe(
    Config.withDefault(false),
    Config.withDescription("whether /readyz answers 503 while the trace store is unreachable or failing writes")
  )
})

/** Where the replica is in its life: `starting` until the first check has finished, `draining` once stopping. */
export type Phase = "starting" | "serving" | "draining"

/** What `/readyz` answers. */
export interface Report {
  readonly phase: Phase
  readonly ready: boolean
  /** Why it is not ready, for a person; `undefined` when ready. */
  readonly reason: string | undefined
  /** Everything degraded, by name: `store`, `breaker:<name>`, and the `Health` indicators. */
  readonly degraded: ReadonlyArray<Health.Indicator>
}

/** The last background check of the store. */
export interface StoreCheck {
  readonly reachable: boolean
  /** Why it was not, when it was not. */
  readonly error: string | undefined
  /** When the check finished, in milliseconds since the epoch (`Clock`). */
  readonly at: number
}

/** Readiness. */
export interface Service {
  /** The answer now, from memory. */
  readonly report: Effect.Effect<Report>
  /** The last background check of the store; `None` before the first one has finished. */
  readonly store: Effect.Effect<Option.Option<StoreCheck>>
  /** From now on not ready: the replica is stopping. */
  readonly drain: Effect.Effect<void>
}

/** Readiness of this replica. */
export class Readiness extends Context.Tag("@sg/gateway/Readiness")<Readiness, Service>() {}

const breakerMessage = (status: CircuitBreaker.Status): string => {
  switch (status.state) {
    case "open":
      return `open: calls are rejected for ${Math.ceil(Duration.toMillis(status.retryAfter) / 1000)} s more`
    case "half_open":
      return "half open: a trial call is due"
    case "isolated":
      return "isolated: held open until reset"
    case "closed":
      return "closed"
  }
}

const storeName = "store"

/** Builds the service and forks its background check, which stops when the scope closes. */
export const make = (
  options?: Options
): Effect.Effect<Service, never, TraceStore.TraceStore | CircuitBreaker.CircuitBreaker | Scope.Scope> =>
  Effect.gen(function*() {
    const store = yield* TraceStore.TraceStore
    const breakers = yield* CircuitBreaker.CircuitBreaker
    const health = yield* Effect.serviceOption(Health.Health)
    const interval = Duration.decode(options?.interval ?? defaults.interval)
    const timeout = Duration.decode(options?.timeout ?? defaults.timeout)
    const requiresStore = options?.requiresStore ?? defaults.requiresStore
    // Written by the check fiber and `drain`, read by `report`: each in one synchronous step.
    let phase: Phase = "starting"
    let last: StoreCheck | undefined

    const ping = store.ping.pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => ({ message: `no answer to a PING within ${Duration.format(timeout)}` })
      }),
      Effect.either
    )
    const check = Effect.gen(function*() {
      const answer = yield* ping
      const at = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const previous = last
      last = answer._tag === "Right"
        ? { reachable: true, error: undefined, at }
        : { reachable: false, error: answer.left.message, at }
      if (phase === "starting") phase = "serving"
      if (previous?.reachable !== false && !last.reachable) {
        yield* Effect.logWarning(`readiness: the trace store is unreachable: ${last.error}`)
      } else if (previous?.reachable === false && last.reachable) {
        yield* Effect.logInfo("readiness: the trace store answers again")
      }
    })
    yield* check.pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("readiness check failed", cause)),
      Effect.repeat(Schedule.spaced(interval)),
      Effect.annotateLogs({ package: "@sg/gateway", fiber: "Readiness" }),
      Effect.forkScoped,
      Effect.interruptible
    )

    // Writes are failing while the store's breaker is open: they failed within its cool-down. Once it is half-open
    // that is no longer known (a replica out of its load balancer writes nothing to find out), so the store is not
    // named failing any more, only the breaker; a failed trial reopens it.
    const storeIndicator = (statuses: ReadonlyArray<CircuitBreaker.Status>): Health.Indicator | undefined => {
      if (last !== undefined && !last.reachable) return { name: storeName, message: `unreachable: ${last.error}` }
      const writes = statuses.find((status) => status.name === TraceLifecycle.breakerName)
      if (writes !== undefined && (writes.state === "open" || writes.state === "isolated")) {
        return { name: storeName, message: `failing writes: the ${writes.name} breaker is ${breakerMessage(writes)}` }
      }
      return undefined
    }

    const report = Effect.gen(function*() {
      const statuses = yield* breakers.snapshot
      const reported = Option.isSome(health) ? yield* health.value.current : []
      const storeDegraded = storeIndicator(statuses)
      const degraded: Array<Health.Indicator> = []
      if (storeDegraded !== undefined) degraded.push(storeDegraded)
      for (const status of statuses) {
        if (status.state === "closed") continue
        degraded.push({ name: `breaker:${status.name}`, message: breakerMessage(status) })
      }
      for (const indicator of reported) degraded.push({ name: indicator.name, message: indicator.message })
      const critical = reported.find((indicator) => indicator.critical)
      const reason = phase === "starting"
        ? "starting: the first check of the trace store has not finished"
        : phase === "draining"
        ? "draining: this replica is stopping"
        : requiresStore && storeDegraded !== undefined
        ? `the trace store is ${storeDegraded.message}, and SG_READY_REQUIRES_STORE is on`
        : critical !== undefined
        ? `${critical.name} is degraded: ${critical.message}`
        : undefined
      return { phase, ready: reason === undefined, reason, degraded } satisfies Report
    })

    return Readiness.of({
      report,
      store: Effect.sync(() => Option.fromNullable(last)),
      drain: Effect.sync(() => {
        phase = "draining"
      })
    })
  })

/** Readiness with the given options, over the store and breakers in context (and `Health`, when present). */
export const layer = (
  options?: Options
): Layer.Layer<Readiness, never, TraceStore.TraceStore | CircuitBreaker.CircuitBreaker> =>
  Layer.scoped(Readiness, make(options))

/** Readiness configured from the environment (`SG_READY_REQUIRES_STORE`). */
export const layerConfig: Layer.Layer<
  Readiness,
  ConfigError.ConfigError,
  TraceStore.TraceStore | CircuitBreaker.CircuitBreaker
> = Layer.scoped(Readiness, Effect.flatMap(config, make))
