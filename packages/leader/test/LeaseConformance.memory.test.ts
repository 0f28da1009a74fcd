import { describe, it } from "@effect/vitest"
import { LeaseStore } from "@sg/leader"
import { Duration, TestClock } from "effect"
import { leaseConformance } from "./utils/conformance.js"

// The same suite runs against Redis in LeaderElection.redis.test.ts.
describe("lease conformance (memory)", () => {
  it.layer(LeaseStore.layerMemory)("under TestClock", (it) => {
    leaseConformance(it, {
      storeTtl: Duration.seconds(15),
      electionTtl: Duration.seconds(15),
      advance: (d) => TestClock.adjust(d)
    })
  })
})
