import { LeaseStore, LeaseStoreError } from "@sg/leader"
import { Effect, Ref } from "effect"

/** What a faulty store does to each call: pass it through, fail it, never answer, or run it and lose the reply. */
export type Fault = "none" | "fail" | "hang" | "lose-reply"

/** A lease store wrapped so a test can make its calls fail or hang on demand. */
export interface FaultyStore {
  readonly store: LeaseStore.Service
  readonly set: (fault: Fault) => Effect.Effect<void>
}

/** Wraps `store`; it starts healthy. */
export const faulty = (store: LeaseStore.Service): Effect.Effect<FaultyStore> =>
  Effect.map(Ref.make<Fault>("none"), (mode) => {
    const wrap = <A>(operation: string, call: Effect.Effect<A, LeaseStoreError>) =>
      Effect.flatMap(Ref.get(mode), (fault): Effect.Effect<A, LeaseStoreError> => {
        switch (fault) {
          case "none":
            return call
          case "fail":
            return Effect.fail(new LeaseStoreError({ message: `injected failure of ${operation}` }))
          case "hang":
            return Effect.never
          case "lose-reply":
            return Effect.zipRight(call, Effect.fail(new LeaseStoreError({ message: `lost reply of ${operation}` })))
        }
      })
    return {
      set: (fault) => Ref.set(mode, fault),
      store: {
        tryAcquire: (...args) => wrap("tryAcquire", store.tryAcquire(...args)),
        renew: (...args) => wrap("renew", store.renew(...args)),
        release: (...args) => wrap("release", store.release(...args)),
        read: (...args) => wrap("read", store.read(...args))
      }
    }
  })
