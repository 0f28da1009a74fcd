/**
 * Collects log lines (message, level, annotations) for assertions.
 */
import { Effect, HashMap, Layer, Logger, type LogLevel } from "effect"

/** One collected log line. */
export interface LogLine {
  readonly message: string
  readonly level: LogLevel.LogLevel["label"]
  readonly annotations: Readonly<Record<string, unknown>>
}

/** A logger layer that records every line into `lines`, in place of the default logger. */
export const collectLogs = (lines: Array<LogLine>): Layer.Layer<never> =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ annotations, logLevel, message }) => {
      lines.push({
        message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
        level: logLevel.label,
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    })
  )

/** Runs an effect with its log lines collected; returns its result and the lines. */
export const withLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const lines: Array<LogLine> = []
    return Effect.map(Effect.provide(effect, collectLogs(lines)), (a) => [a, lines] as const)
  })
