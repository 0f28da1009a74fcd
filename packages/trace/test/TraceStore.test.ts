import { describe, it } from "@effect/vitest"
import { RedisTestServer } from "@sg/redis/testing"
import * as StoreKit from "./utils/StoreKit.js"
import { conformance } from "./utils/TraceStoreConformance.js"

describe("TraceStore conformance", () => {
  describe("memory", () => {
    conformance(it, StoreKit.memory)
  })

  it.layer(RedisTestServer.layer)("redis", (it) => {
    conformance(it, StoreKit.redis)
  })
})
