import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type { Acquisition, LeaseRecord, Service } from "../LeaseStore.js"

interface Entry {
  readonly holder: { readonly token: string; readonly expiresAt: number } | undefined
  readonly epoch: number
}

const empty: Entry = { holder: undefined, epoch: 0 }

/** The holder, unless its lease has expired by `now`. */
const liveHolder = (entry: Entry, now: number) =>
  entry.holder !== undefined && entry.holder.expiresAt > now ? entry.holder : undefined

/** A lease store over a `Ref`: each operation is one `Ref.modify`, so it is atomic among fibers. */
export const makeMemory: Effect.Effect<Service> = Effect.map(
  Ref.make(HashMap.empty<string, Entry>()),
  (ref) => {
    const modify = <A>(name: string, f: (entry: Entry, now: number) => readonly [A, Entry]) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(ref, (leases) => {
          const [result, entry] = f(Option.getOrElse(HashMap.get(leases, name), () => empty), now)
          return [result, HashMap.set(leases, name, entry)] as const
        }))

    return {
      tryAcquire: (name, token, ttlMillis, floor) =>
        modify<Acquisition>(name, (entry, now) => {
          const holder = liveHolder(entry, now)
          if (holder === undefined) {
            const epoch = Math.max(entry.epoch + 1, floor + 1)
            return [{ acquired: true, epoch, holder: token }, { holder: { token, expiresAt: now + ttlMillis }, epoch }]
          }
          if (holder.token === token) {
            return [
              { acquired: true, epoch: entry.epoch, holder: token },
              { ...entry, holder: { token, expiresAt: now + ttlMillis } }
            ]
          }
          return [{ acquired: false, epoch: entry.epoch, holder: holder.token }, entry]
        }),
      renew: (name, token, epoch, ttlMillis) =>
        modify(name, (entry, now) =>
          liveHolder(entry, now)?.token === token && entry.epoch === epoch
            ? [true, { ...entry, holder: { token, expiresAt: now + ttlMillis } }]
            : [false, entry]),
      release: (name, token) =>
        modify(name, (entry, now) =>
          liveHolder(entry, now)?.token === token ? [true, { ...entry, holder: undefined }] : [false, entry]),
      read: (name) =>
        modify<LeaseRecord>(name, (entry, now) => [
          { holder: liveHolder(entry, now)?.token, epoch: entry.epoch },
          entry
        ])
    }
  }
)
