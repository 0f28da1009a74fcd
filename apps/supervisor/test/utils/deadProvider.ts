/**
 * A model provider that is down: an OpenAI-compatible endpoint on a free loopback port answering every request with a
 * 500 (at once, after a delay, or never), counting the requests it was sent.
 */
import { Effect, type Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/** How the provider answers: a 500 at once, a 500 after `ms`, or nothing at all (the request hangs). */
export type Mode =
  | { readonly _tag: "fail" }
  | { readonly _tag: "slow"; readonly ms: number }
  | { readonly _tag: "hang" }

/** A running dead provider. */
export interface DeadProvider {
  /** `OPENAI_BASE_URL` for it. */
  readonly baseUrl: string
  /** Requests received so far. */
  readonly hits: () => number
  readonly setMode: (mode: Mode) => void
}

/** Starts the provider for the scope. */
export const deadProvider: Effect.Effect<DeadProvider, never, Scope.Scope> = Effect.acquireRelease(
  Effect.async<{ readonly provider: DeadProvider; readonly server: Http.Server }>((resume) => {
    let hits = 0
    let mode: Mode = { _tag: "fail" }
    const fail = (res: Http.ServerResponse) => {
      res.writeHead(500, { "content-type": "application/json" })
      res.end(JSON.stringify({ error: { message: "the provider is down", type: "server_error" } }))
    }
    const server = Http.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        hits++
        if (mode._tag === "fail") fail(res)
        else if (mode._tag === "slow") setTimeout(() => fail(res), mode.ms)
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({
        server,
        provider: { baseUrl: `http://127.0.0.1:${port}/v1/`, hits: () => hits, setMode: (next) => void (mode = next) }
      }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map(({ provider }) => provider))
