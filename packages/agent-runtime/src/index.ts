/** The agent runtime: runs agents over @effect/ai with traced, breaker-guarded model and tool calls. */
export * as AgentRuntime from "./AgentRuntime.js"

/** Agents as data: instructions, a toolkit with handlers, a provider, a step limit and a timeout. */
export * as Agent from "./Agent.js"

/** What a tool handler can reach of its run: its identity, the request's metadata, and sub-agents. */
export * as RunContext from "./RunContext.js"

/** Model providers (`demo`, `openai`) and `SG_MODEL` configuration. */
export * as Provider from "./Provider.js"

/** The offline, deterministic demo model. */
export * as DemoModel from "./DemoModel.js"

/** The demo agents and their tools: clock, calculator, fan_out. */
export * as DemoAgents from "./DemoAgents.js"

/** The runtime's metrics: tool and model calls (counts, latency, tokens) and runs, by configured names. */
export * as RuntimeMetrics from "./RuntimeMetrics.js"
