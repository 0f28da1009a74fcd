/** The `sg` command, for embedding or testing. */
export * as Cli from "./Cli.js"

/** The layers the verbs compose, chosen from the environment (`REDIS_URL`: Redis, or in-memory twins). */
export * as Environment from "./Environment.js"

/** `sg serve`: the gateway, the runtime, the recorder and the watchdog, as one layer. */
export * as Serve from "./commands/Serve.js"

/** `sg traces list` and `sg traces show`: execution records in the terminal. */
export * as Traces from "./commands/Traces.js"
