/**
 * `sg serve` as a child process on a port the system picks (`PORT=0`), found from its start-up line.
 */
import { Effect, Option } from "effect"
import { type Child, outputs, spawnSg, waitFor } from "./processes.js"

/** A running `sg serve`, the address it says it is bound to and the port it listens on. */
export interface Served {
  readonly child: Child
  readonly host: string
  readonly port: number
}

const listening = /listening on http:\/\/(\[[^\]]+\]|[^:/\s]+):(\d+)/

/** The address (`127.0.0.1`, `[::]`) and port in a serve process' start-up line, once it has logged it. */
export const addressOf = (stderr: string): Option.Option<{ readonly host: string; readonly port: number }> => {
  const match = listening.exec(stderr)
  return match === null ? Option.none() : Option.some({ host: match[1]!, port: Number(match[2]) })
}

/** The port in a serve process' start-up line, once it has logged it. */
export const portOf = (stderr: string): Option.Option<number> => Option.map(addressOf(stderr), (a) => a.port)

/** Starts `sg serve` with `env` (and `PORT=0`) and waits until it listens; killed when the scope closes. */
export const startServe = (name: string, env: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const child = yield* spawnSg(name, ["serve"], { PORT: "0", ...env })
    const { host, port } = yield* waitFor(`${name} to listen`, Effect.sync(() => addressOf(child.stderr())),
      "60 seconds", outputs(child))
    return { child, host, port } satisfies Served
  })
