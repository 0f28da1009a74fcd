export * as TraceId from "./TraceId.js"
