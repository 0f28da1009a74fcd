import { RedisCommandError, type RedisError, RedisUnavailable } from "../RedisError.js"

// Replies that mean "the server cannot serve you right now", not "your command is wrong".
const unavailableReplies = /^(LOADING|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|BUSY)\b/

// ioredis' own refusal of a cluster pipeline or transaction whose keys span slots: a bug, not an outage.
const sameSlot = /should belong to the same slot|CROSSSLOT/

const messageOf = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "string" ? error : String(error)

/** Sorts an ioredis rejection into unreachable versus command failure, with a message a human can act on. */
export const classify = (command: string, error: unknown, target: string): RedisError => {
  const message = messageOf(error)
  const name = error instanceof Error ? error.name : ""
  if ((name === "ReplyError" && !unavailableReplies.test(message)) || sameSlot.test(message)) {
    return new RedisCommandError({ command, message: `Redis rejected ${command}: ${message}`, cause: error })
  }
  return new RedisUnavailable({
    command,
    message: `Redis at ${target} is unavailable (${command}: ${message}); check that it is running and reachable`,
    cause: error
  })
}

const redactOne = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return "<unparseable REDIS_URL>"
  }
}

/** The URL (or comma-separated URLs of a cluster's seed nodes) with any password replaced, fit for logs. */
export const redactUrl = (url: string): string =>
  url.includes(",") ? url.split(",").map((part) => redactOne(part.trim())).join(",") : redactOne(url)
