/**
 * A gateway with API keys for the access tests: the real runtime (`RunGateway`), `ApiKeys` from a fixed list, a rate
 * limit when asked, and every log line the gateway writes captured, so a test can check that no key ever shows.
 */
import { NodeFileSystem } from "@effect/platform-node"
import type { ExecutionStore, TraceStore } from "@sg/trace"
import { Context, Effect, Layer, Logger } from "effect"
import * as ApiKeys from "../../src/ApiKeys.js"
import * as RateLimit from "../../src/RateLimit.js"
import * as RunGateway from "./RunGateway.js"
import * as T from "./TestGateway.js"

/** The keys the tests use, and one that is configured nowhere. */
export const keys = {
  /** `run` only, tenant `acme`. */
  runAcme: "sk-test-run-acme-7f3a9c1e5b2d4f60",
  /** `read` only, tenant `globex`. */
  readGlobex: "sk-test-read-globex-2c8e4a6b0d1f3e57",
  /** `run` and `read`, tenant `acme`. */
  acme: "sk-test-acme-rw-9b1d3f5a7c2e4b68",
  /** `run` and `read`, tenant `globex`. */
  globex: "sk-test-globex-rw-4e6a8c0b2d3f5a71",
  /** `admin`, tenant `ops`. */
  admin: "sk-test-admin-ops-1a3c5e7b9d2f4a86",
  /** Not configured. */
  wrong: "sk-test-wrong-0d2f4b6a8c1e3a5f"
} as const

/** `SG_API_KEYS` for `keys` (scopes written both ways: `,` continued, and `+`). */
export const list = [
  `${keys.runAcme}:acme:run`,
  `${keys.readGlobex}:globex:read`,
  `${keys.acme}:acme:run,read`,
  `${keys.globex}:globex:run+read`,
  `${keys.admin}:ops:admin`
].join(",")

/** Every log line the gateway wrote, as text. */
export class Logs extends Context.Tag("test/gateway/Logs")<Logs, Array<string>>() {}

const captured: Array<string> = []
const capture = Logger.make(({ annotations, cause, message }) => {
  captured.push(`${String(message)} ${JSON.stringify(Object.fromEntries(annotations))} ${String(cause)}`)
})

/** Every log line of the gateways of this test file, captured beside the default logger. */
export const layerLogs = Layer.merge(Logger.add(capture), Layer.succeed(Logs, captured))

/** Authorization headers for a key. */
export const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

/** The gateway with `keys`, over `store` (the trace and execution stores, memory by default), with `limit` when given. */
export const make = <E = never, R = never>(options?: {
  readonly store?: Layer.Layer<TraceStore.TraceStore | ExecutionStore.ExecutionStore, E, R>
  readonly limit?: RateLimit.Limit
  readonly metricsPublic?: boolean
}) => {
  const access = Layer.mergeAll(
    ApiKeys.layer({ keys: list }).pipe(Layer.provide(NodeFileSystem.layer), Layer.orDie),
    options?.limit === undefined ? Layer.empty : RateLimit.layerMemory(options.limit)
  )
  return RunGateway.make<E, R>(undefined, {
    ...(options?.store !== undefined ? { store: options.store } : {}),
    gateway: { metricsPublic: options?.metricsPublic === true }
  }).pipe(Layer.provideMerge(access), Layer.provideMerge(layerLogs))
}

/** A JSON request with a key (or none). */
export const send = (
  method: string,
  path: string,
  key: string | undefined,
  body?: unknown,
  headers?: Readonly<Record<string, string>>
) =>
  T.raw({
    method,
    path,
    headers: {
      ...(key === undefined ? {} : bearer(key)),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })

/** Fails the test when any of `texts` holds any configured key (or the unconfigured one). */
export const noKeyIn = (what: string, texts: ReadonlyArray<string>) =>
  Effect.sync(() => {
    for (const key of Object.values(keys)) {
      for (const text of texts) {
        if (text.includes(key)) throw new Error(`${what} holds the key ${key.slice(0, 12)}…: ${text.slice(0, 300)}`)
      }
    }
  })
