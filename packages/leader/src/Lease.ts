/**
 * The lease a leader holds while its effect runs: who holds it, and the fencing epoch that proves it is the newest
 * holder.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"

/** A held lease, as `LeaderElection.runWhileLeader` hands it to its effect. */
export interface Service {
  /** The lease's name (`sg:lease:<name>` in Redis). */
  readonly name: string
  /** This holder's token, `<hostname>:<pid>:<random>`. */
  readonly token: string
  /** The fencing epoch: grows with every new holder, so a write can be refused to an older one. */
  readonly epoch: number
  /** Whether the lease is still held by this token at this epoch, as the lease store sees it now. */
  readonly stillHeld: Effect.Effect<boolean>
}

/** The lease held by the current leader's effect. */
export class Lease extends Context.Tag("@sg/leader/Lease")<Lease, Service>() {}
