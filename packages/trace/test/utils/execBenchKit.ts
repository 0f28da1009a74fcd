/**
 * What bench/recorder.ts needs, re-exported from where pnpm can resolve it (the bench lives outside any package).
 */
export { ConfigProvider, Effect, Layer, ManagedRuntime } from "effect"
export * as ExecutionSpan from "../../src/ExecutionSpan.js"
export * as Recorder from "../../src/Recorder.js"
