import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, Layer, Option } from "effect"
import * as Http from "./utils/http.js"
import { outputs, waitFor } from "./utils/processes.js"
import { startServe } from "./utils/serve.js"

const redis = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

const command = <A>(name: string, f: (client: RedisClient.Service["client"]) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.orDie(client.use(name, f)))

describe("one trace id on two replicas", () => {
  it.live("requests of one trace spread over two sg serve processes on one Redis: every run kept, counted once", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const env = { REDIS_URL: server.url, SG_SAMPLE_SUCCESS: "1" }
      const [a, b] = yield* Effect.all([startServe("replica-a", env), startServe("replica-b", env)], {
        concurrency: 2
      })
      const id = "0190a1b2-c3d4-7e5f-8a6b-0000000d0001"
      const answers = yield* Effect.forEach(
        Array.from({ length: 12 }, (_, i) => i),
        (i) => Http.postRun(i % 2 === 0 ? a.port : b.port, { input: `what is ${i}+1?` }, { "x-trace-id": id }),
        { concurrency: "unbounded" }
      )
      expect(answers.map((answer) => answer.status)).toEqual(Array(12).fill(200))
      const runIds = new Set(answers.map((answer) => answer.json.run_id))
      expect(runIds.size).toBe(12)

      const detail = yield* waitFor(
        "the record of all 12 runs",
        Effect.map(Http.get(b.port, `/api/traces/${id}`), (answer) =>
          answer.status === 200 && answer.json.record?.runs?.length === 12 ? Option.some(answer.json) : Option.none()),
        "15 seconds",
        outputs(a.child, b.child)
      )
      expect(new Set(detail.record.runs.map((run: { run_id: string }) => run.run_id))).toEqual(runIds)
      expect(detail.lifecycle).toMatchObject({ state: "COMPLETED", requests: 12, in_flight: 0 })
      expect(yield* command("SISMEMBER", (c) => c.sismember("sg:traces:active", id))).toBe(0)
    }).pipe(Effect.provide(redis), Effect.scoped), { timeout: 90_000 })
})
