/**
 * `sg trace-id [--count N]`: mints N trace ids (UUIDv7) and prints them one a line, in increasing order.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { TraceIdGenerator } from "@sg/trace"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** How many ids go into one write: one console call per id would dominate the run. */
const linesPerWrite = 10_000

const count = Options.integer("count").pipe(
  Options.filterMap(
    (n) => n >= 1 ? Option.some(n) : Option.none(),
    "--count must be a whole number of at least 1"
  ),
  Options.withDefault(1),
  Options.withDescription("How many ids to print (at least 1; default 1)")
)

const printIds = (count: number) =>
  Effect.gen(function*() {
    const generator = yield* TraceIdGenerator.TraceIdGenerator
    let left = count
    while (left > 0) {
      const lines: Array<string> = new Array(Math.min(left, linesPerWrite))
      for (let i = 0; i < lines.length; i++) lines[i] = yield* generator.next
      yield* Console.log(lines.join("\n"))
      left -= lines.length
    }
  })

/** `sg trace-id`. */
export const traceId = Command.make("trace-id", { count }, ({ count }) =>
  printIds(count).pipe(Effect.provide(TraceIdGenerator.layer))).pipe(
    Command.withDescription("Print new trace ids (UUIDv7, strictly increasing), one a line")
  )
