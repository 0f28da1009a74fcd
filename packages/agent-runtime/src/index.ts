/** The agent runtime: runs agents over @effect/ai with traced, breaker-guarded model and tool calls. */
export * as AgentRuntime from "./AgentRuntime.js"

/** What a run is asked, what it answers, and why it fails (also re-exported by `AgentRuntime`). */
export * as Run from "./Run.js"

/** Agents as data: instructions, a toolkit with handlers, a provider, a step limit and a timeout. */
export * as Agent from "./Agent.js"

/** What a tool handler can reach of its run: its identity, the request's metadata, and sub-agents. */
export * as RunContext from "./RunContext.js"

/** Model providers (`demo`, `openai`, `openai-compat`, `anthropic`), fallback chains and `SG_MODEL`. */
export * as Provider from "./Provider.js"

/** A `LanguageModel` over the OpenAI Chat Completions wire format (Ollama, vLLM, llama.cpp, LM Studio, ...). */
export * as OpenAiCompat from "./OpenAiCompat.js"

/** Budgets of a run tree (`SG_MAX_STEPS`, `SG_MAX_TOKENS`, `SG_RUN_TIMEOUT`, `SG_MAX_SUBAGENTS`). */
export * as Budget from "./Budget.js"

/** What a run reports while it runs: the events the gateway streams. */
export * as RunEvent from "./RunEvent.js"

/** The demo: the offline, deterministic model, and the agents `sg serve` runs (tools: clock, calculator, fan_out). */
export * as Demo from "./Demo.js"

/** The runtime's metrics: tool and model calls (counts, latency, tokens) and runs, by configured names. */
export * as RuntimeMetrics from "./RuntimeMetrics.js"
