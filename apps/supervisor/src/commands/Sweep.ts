/**
 * `sg sweep --once [--json]`: one orphan sweep now, and its report on stdout (logs on stderr).
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import { TraceStore } from "@sg/trace"
import { Console, Effect, Schema } from "effect"
import * as Environment from "../Environment.js"

const once = Options.boolean("once").pipe(
  Options.withDescription("Run one pass now (required: the continuous loop under the lease is `sg watchdog`)")
)

const json = Options.boolean("json").pipe(
  Options.withDescription("Print the report as one JSON object (scanned, removed_missing, removed_terminal, orphaned, " +
    "skipped_unreadable, duration_ms) instead of a sentence")
)

/** Why `sg sweep` without `--once` does nothing. */
export const needsOnce =
  "sg sweep needs --once: it runs a single pass now. The continuous, leader-elected sweep is `sg watchdog`."

/** The report as one readable line. */
export const describeReport = (report: TraceStore.SweepReport): string =>
  `swept ${report.scanned} active ids in ${report.duration_ms} ms: ${report.orphaned} orphaned (now ERRORED), ` +
  `${report.removed_missing} with no hash and ${report.removed_terminal} already terminal removed from the active ` +
  `set, ${report.skipped_unreadable} unreadable left alone`

const encodeReport = Schema.encode(Schema.parseJson(TraceStore.SweepReport))

const sweepOnce = (asJson: boolean) =>
  Effect.gen(function*() {
    const store = yield* TraceStore.TraceStore
    const report = yield* store.sweepOrphans()
    yield* Console.log(asJson ? yield* encodeReport(report) : describeReport(report))
  }).pipe(Effect.provide(Environment.storeLayer))

/** `sg sweep`. */
export const sweep = Command.make("sweep", { once, json }, ({ json, once }) =>
  Effect.gen(function*() {
    yield* Environment.logToStderr
    if (!once) {
      yield* Console.error(needsOnce)
      return yield* Effect.fail(ValidationError.invalidValue(HelpDoc.p(needsOnce)))
    }
    yield* sweepOnce(json)
  })).pipe(
    Command.withDescription(
      "Sweep orphaned traces once, now, and print what was done (--json: as JSON). This sweep does not take the " +
        "trace-watchdog lease: it is an operator's explicit sweep and runs even while a watchdog leads elsewhere " +
        "(each trace is decided atomically, so the two never retire one trace twice). Logs go to stderr."
    )
  )
