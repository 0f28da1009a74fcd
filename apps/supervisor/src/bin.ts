#!/usr/bin/env node
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Effect from "effect/Effect"
import { run } from "./Cli.js"

run(process.argv).pipe(
  // @effect/cli has already printed what was wrong with the command line: exit non-zero without a second report.
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => {
    process.exitCode = 2
  })),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain
)
