/**
 * Collects log lines in recorder tests.
 */
import { HashMap, type Layer, Logger } from "effect"

/** One collected log line. */
export interface ExecLogLine {
  readonly message: string
  readonly level: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/** A logger layer recording every line into `lines` in place of the default logger. */
export const collectExecLogs = (lines: Array<ExecLogLine>): Layer.Layer<never> =>
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
