import { expect, layer } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Recorder } from "@sg/trace"
import * as ExecutionStoreRedis from "@sg/trace/ExecutionStore/Redis"
import * as TraceStoreRedis from "@sg/trace/TraceStore/Redis"
import { Effect, Layer } from "effect"
import * as Access from "./utils/AccessGateway.js"
import { keys, send } from "./utils/AccessGateway.js"
import { mintedIdOf } from "./utils/headers.js"
import * as T from "./utils/TestGateway.js"

const redis = <A>(f: (client: RedisClient.Service) => Promise<A>) =>
  Effect.flatMap(RedisClient.RedisClient, (client) => Effect.promise(() => f(client)))

const gateway = Access.make({ store: Layer.merge(TraceStoreRedis.layer(), ExecutionStoreRedis.layer()) }).pipe(
  Layer.provideMerge(RedisTestServer.layerWithClient)
)

const idsOf = (answer: T.Answer): Array<string> =>
  (answer.json.items as Array<{ readonly trace_id: string }>).map((item) => item.trace_id)

layer(gateway, { excludeTestServices: true, timeout: "60 seconds" })("tenants, end to end on Redis", (it) => {
  it.effect("two tenants' runs: each key lists and opens only its own, the other's ids are 404s, admin sees both", () =>
    Effect.gen(function*() {
      const acme = [
        mintedIdOf(yield* send("POST", "/v1/runs", keys.acme, { input: "acme one" })),
        mintedIdOf(yield* send("POST", "/v1/runs", keys.acme, { input: "acme two", stream: true }))
      ]
      const globex = [
        mintedIdOf(
          yield* send("POST", "/v1/chat/completions", keys.globex, {
            model: "assistant",
            messages: [{ role: "user", content: "globex one" }]
          })
        ),
        mintedIdOf(yield* send("POST", "/v1/runs", keys.globex, { input: "globex two" }))
      ]
      yield* Effect.flatMap(Recorder.Recorder, (recorder) => recorder.flush)
      const all = [...acme, ...globex].reverse()
      yield* T.eventually(Effect.flatMap(send("GET", "/api/traces", keys.admin), (answer) =>
        idsOf(answer).length === 4 ? Effect.void : Effect.fail(answer)))

      expect(idsOf(yield* send("GET", "/api/traces", keys.acme))).toEqual([...acme].reverse())
      expect(idsOf(yield* send("GET", "/api/traces", keys.globex))).toEqual([...globex].reverse())
      expect(idsOf(yield* send("GET", "/api/traces", keys.admin))).toEqual(all)
      expect(idsOf(yield* send("GET", "/api/traces?tenant=globex", keys.admin))).toEqual([...globex].reverse())
      expect(idsOf(yield* send("GET", "/api/traces?tenant=acme&limit=1", keys.acme))).toEqual([acme[1]])

      for (const id of acme) {
        const own = yield* send("GET", `/api/traces/${id}`, keys.acme)
        expect(own.status).toBe(200)
        expect(own.json.record.tenant).toBe("acme")
        expect(own.json.lifecycle.fields.tenant).toBe("acme")
        const theirs = yield* send("GET", `/api/traces/${id}`, keys.globex)
        expect(theirs.status).toBe(404)
        expect(theirs.json.error).toBe("not_found")
        expect((yield* send("GET", `/api/traces/${id}`, keys.admin)).status).toBe(200)
      }
      for (const id of globex) {
        expect((yield* send("GET", `/api/traces/${id}`, keys.acme)).status).toBe(404)
        expect((yield* send("GET", `/api/traces/${id}`, keys.globex)).json.record.tenant).toBe("globex")
      }

      // In Redis: the lifecycle hash's `tenant`, the record's, and the tenant's index.
      const client = yield* RedisClient.RedisClient
      expect(yield* redis((c) => c.client.hget(c.key("trace", acme[0]!), "tenant"))).toBe("acme")
      expect(yield* redis((c) => c.client.hget(c.key("exec", globex[0]!), "tenant"))).toBe("globex")
      const indexed = yield* redis((c) => c.client.zrevrange(c.key("exec", "index", "tenant", "acme"), 0, -1))
      expect(indexed).toEqual([...acme].reverse())
      expect(client.prefix.length).toBeGreaterThan(0)

      // Nothing in Redis holds a key.
      const dump: Array<string> = []
      const names = yield* redis((c) => c.client.keys(`${c.prefix}:*`))
      for (const name of names) {
        const type = yield* redis((c) => c.client.type(name))
        if (type === "hash") dump.push(JSON.stringify(yield* redis((c) => c.client.hgetall(name))))
        if (type === "zset") dump.push(JSON.stringify(yield* redis((c) => c.client.zrange(name, 0, -1))))
        if (type === "string") dump.push(String(yield* redis((c) => c.client.get(name))))
        dump.push(name)
      }
      expect(dump.length).toBeGreaterThan(8)
      yield* Access.noKeyIn("Redis", dump)
    }))
})
