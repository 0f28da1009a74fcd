import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Os from "node:os"

/** `<hostname>:<pid>`, the part of a token that says which process holds a lease. */
export const defaultIdentity = (): string => `${Os.hostname() || "localhost"}:${process.pid}`

const hex32 = Effect.map(Random.nextIntBetween(0, 2 ** 32), (n) => n.toString(16).padStart(8, "0"))

/** A fresh token `<identity>:<16 hex digits>`, from Effect's `Random` (so a test can fix it). */
export const makeToken = (identity: string): Effect.Effect<string> =>
  Effect.map(Effect.zip(hex32, hex32), ([a, b]) => `${identity}:${a}${b}`)
