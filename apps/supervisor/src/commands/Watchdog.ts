/**
 * `sg watchdog`: runs only the orphan watchdog, under the `trace-watchdog` lease, until SIGTERM or SIGINT; then the
 * lease is released (another replica takes over at once) and the process exits 0.
 */
import * as Command from "@effect/cli/Command"
import { Effect, Layer } from "effect"
import * as Environment from "../Environment.js"

/** `sg watchdog`. */
export const watchdog = Command.make("watchdog", {}, () =>
  Effect.zipRight(Environment.logToStderr, Layer.launch(Environment.watchdogLayer))).pipe(
    Command.withDescription(
      "Run only the orphan watchdog: while this process holds the trace-watchdog lease, sweep at once and then every " +
        "SG_SWEEP_INTERVAL (5 minutes); replicas that do not hold it wait their turn. SIGTERM or SIGINT releases the " +
        "lease and exits 0. Logs go to stderr."
    )
  )
