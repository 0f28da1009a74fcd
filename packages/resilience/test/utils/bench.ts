/**
 * What bench/breaker.ts imports, resolved from this package: the repo root depends on none of effect, cockatiel
 * or opossum, and the benchmark must use the same copy of effect as the library it measures.
 */
export { Effect, Exit, Logger, LogLevel, Scope } from "effect"
export * as cockatiel from "cockatiel"
export { default as Opossum } from "opossum"
export { CircuitBreaker } from "../../src/index.js"
