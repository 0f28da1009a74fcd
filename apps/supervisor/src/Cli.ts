/**
 * The `sg` command and its verbs.
 */
import * as Command from "@effect/cli/Command"
import { serve } from "./commands/Serve.js"
import { sweep } from "./commands/Sweep.js"
import { traceId } from "./commands/TraceIdCommand.js"
import { traces } from "./commands/Traces.js"
import { watchdog } from "./commands/Watchdog.js"

/** `sg`, with every verb. */
export const sg = Command.make("sg").pipe(
  Command.withDescription("Traced, resilient services for AI agent gateways"),
  Command.withSubcommands([serve, watchdog, sweep, traces, traceId])
)

/** Parses `argv` (as `process.argv`) and runs the verb it names. */
export const run = Command.run(sg, { name: "sg", version: "0.1.0" })
