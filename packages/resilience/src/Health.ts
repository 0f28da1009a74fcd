/**
 * Named health indicators: what a replica knows to be degraded, for readiness probes and status pages. A service that
 * notices trouble (an exporter dropping spans, a queue overflowing) says so with `degrade`, and `recover` once it is
 * over; with a `ttl` an indicator lapses by itself unless it is said again, for trouble seen as events (a drop).
 * A `critical` indicator makes the replica not ready; the others are named, not fatal. Every service that reports
 * takes `Health` with `Effect.serviceOption`, so it works where none is installed. Time comes from `Clock`.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"

/** One degraded thing, as `/readyz` names it. */
export const Indicator = Schema.Struct({
  /** What is degraded: `store`, `breaker:<name>`, `otlp`... */
  name: Schema.String,
  /** What is wrong with it, for a person. */
  message: Schema.String
})

/** One degraded thing. */
export interface Indicator extends Schema.Schema.Type<typeof Indicator> {}

/** A degraded indicator as `current` gives it. */
export interface Degraded extends Indicator {
  /** Whether it makes the replica not ready. */
  readonly critical: boolean
}

/** How an indicator is degraded. */
export interface DegradeOptions {
  /** It lapses this long after it was last said; by default it holds until `recover`. */
  readonly ttl?: Duration.DurationInput | undefined
  /** It makes the replica not ready (503 on `/readyz`); by default it is only named. */
  readonly critical?: boolean | undefined
}

/** The indicators of this process. */
export interface Service {
  /** Marks `name` degraded (again), with what is wrong. */
  readonly degrade: (name: string, message: string, options?: DegradeOptions) => Effect.Effect<void>
  /** Marks `name` healthy. */
  readonly recover: (name: string) => Effect.Effect<void>
  /** Every indicator degraded now, by name. */
  readonly current: Effect.Effect<ReadonlyArray<Degraded>>
}

/** The health indicators of this process. */
export class Health extends Context.Tag("@sg/resilience/Health")<Health, Service>() {}

/** How many indicators may be degraded at once; a new name past it is dropped and counted. */
export const maxIndicators = 256

/** Indicators not kept because `maxIndicators` were degraded already. */
export const dropped = Metric.counter("sg_health_indicators_dropped_total", {
  description: "health indicators not kept because too many were degraded at once",
  incremental: true
})

interface Entry {
  readonly message: string
  readonly critical: boolean
  /** Milliseconds since the epoch; `Infinity` until `recover`. */
  readonly until: number
}

/** Builds the service. */
export const make: Effect.Effect<Service> = Effect.sync(() => {
  const entries = new Map<string, Entry>()
  const purge = (now: number) => {
    for (const [name, entry] of entries) if (entry.until <= now) entries.delete(name)
  }
  return Health.of({
    degrade: (name, message, options) =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const now = clock.unsafeCurrentTimeMillis()
          const ttl = options?.ttl === undefined ? undefined : Duration.toMillis(Duration.decode(options.ttl))
          const until = ttl === undefined ? Infinity : now + ttl
          const entry = { message, critical: options?.critical === true, until }
          if (!entries.has(name) && entries.size >= maxIndicators) {
            purge(now)
            if (entries.size >= maxIndicators) return Metric.increment(dropped)
          }
          entries.set(name, entry)
          return Effect.void
        })
      ),
    recover: (name) => Effect.sync(() => void entries.delete(name)),
    current: Effect.clockWith((clock) =>
      Effect.sync(() => {
        purge(clock.unsafeCurrentTimeMillis())
        return Array.from(entries, ([name, entry]) => ({ name, message: entry.message, critical: entry.critical }))
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      })
    )
  })
})

/** The indicators of this process, empty to begin with. */
export const layer: Layer.Layer<Health> = Layer.effect(Health, make)
