export * as AgentRuntime from "./AgentRuntime.js"
