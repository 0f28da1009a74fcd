/** Named circuit breakers: `protect`, `isolate`, `reset`, state changes, metrics and status; local or shared. */
export * as CircuitBreaker from "./CircuitBreaker.js"

/** Where shared breakers keep their state: the store's operations and an in-memory store. */
export * as BreakerStore from "./BreakerStore.js"

/** When breakers open and for how long: options, defaults and `SG_BREAKER_*` configuration. */
export * as BreakerPolicy from "./BreakerPolicy.js"

/** Why a guarded call failed on the breaker's account. */
export * from "./CircuitBreakerError.js"

/** Exponential, jittered retries that never retry an open circuit. */
export * as Retry from "./Retry.js"

/** Named health indicators: what a replica knows to be degraded, for readiness probes. */
export * as Health from "./Health.js"
