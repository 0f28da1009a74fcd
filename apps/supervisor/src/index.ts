/** The `sg` command, for embedding or testing. */
export * as Cli from "./Cli.js"
