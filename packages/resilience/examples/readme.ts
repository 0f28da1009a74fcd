import { CircuitBreaker, Retry } from "@sg/resilience"
import { Data, Effect } from "effect"

class SearchDown extends Data.TaggedError("SearchDown")<{ readonly status: number }> {}
const search = (query: string) => Effect.fail(new SearchDown({ status: 503 })) // a search service that is down

const program = Effect.gen(function*() {
  const breakers = yield* CircuitBreaker.CircuitBreaker
  const guarded = (query: string) =>
    breakers.protect("search", { timeout: "2 seconds", isFailure: (e: SearchDown) => e.status >= 500 })(search(query))
      .pipe(Retry.retry({ maxAttempts: 2, base: "10 millis" }))
  for (let i = 0; i < 3; i++) console.log((yield* Effect.flip(guarded("effect")))._tag)
  // SearchDown (2 attempts), CircuitOpenError (the 3rd failure opened it; not retried), CircuitOpenError
  console.log(yield* breakers.snapshot)
})

Effect.runPromise(program.pipe(Effect.provide(CircuitBreaker.layerConfig)))
