import { describe, expect, it } from "@effect/vitest"
import { RedisClient } from "@sg/redis"
import { RedisTestServer } from "@sg/redis/testing"
import { Effect, Layer, Option } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Http from "./utils/http.js"
import { type Child, ended, outputs, spawnSg, waitFor, waitUntil } from "./utils/processes.js"
import { startServe } from "./utils/serve.js"

/** The keys these tests configure, and one configured nowhere. */
const keys = {
  acme: "sk-proc-acme-5d7f9b1c3e2a4c68",
  globex: "sk-proc-globex-8a0c2e4f6b1d3e57",
  admin: "sk-proc-admin-3f5b7d9a1c2e4b60",
  limited: "sk-proc-limited-6e8a0c2b4d1f3a79",
  late: "sk-proc-late-0b2d4f6a8c1e3a57",
  wrong: "sk-proc-wrong-9c1e3a5b7d2f4c68"
} as const

const list = [
  `${keys.acme}:acme:run,read`,
  `${keys.globex}:globex:run+read`,
  `${keys.admin}:ops:admin`,
  `${keys.limited}:acme:run`
].join(",")

const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

const getWith = (port: number, path: string, key?: string) =>
  Http.request(port, { path, headers: key === undefined ? {} : bearer(key), timeout: "10 seconds" })

const runWith = (port: number, key: string, input: string) =>
  Http.request(port, {
    method: "POST",
    path: "/v1/runs",
    headers: { "content-type": "application/json", ...bearer(key) },
    body: JSON.stringify({ input }),
    timeout: "20 seconds"
  })

/** Fails when any key shows in anything the children printed (their logs, stdout) or in `texts`. */
const noKeyIn = (children: ReadonlyArray<Child>, texts: ReadonlyArray<string> = []) => {
  const all = [...children.flatMap((c) => [c.stderr(), c.stdout()]), ...texts]
  expect(all.join("").length).toBeGreaterThan(0)
  for (const key of Object.values(keys)) {
    for (const text of all) expect(text.includes(key), `a key in: ${text.slice(0, 400)}`).toBe(false)
  }
}

const redis = Layer.provideMerge(RedisTestServer.layerClient(), RedisTestServer.layerSpawned)

describe("sg serve's bind address", () => {
  it.live("no keys: 127.0.0.1 only, said at start-up; SG_HOST=0.0.0.0 without keys exits non-zero naming SG_INSECURE", () =>
    Effect.gen(function*() {
      const [local, refused] = yield* Effect.all([
        startServe("no-keys", { REDIS_URL: "" }),
        spawnSg("open-wide", ["serve"], { PORT: "0", REDIS_URL: "", SG_HOST: "0.0.0.0" })
      ], { concurrency: 2 })
      // The address the server reports it is bound to (Node's own `server.address()`), not a guess.
      expect(local.host).toBe("127.0.0.1")
      expect(local.child.stderr()).toContain("access: open, no API keys (loopback only")
      const health = yield* getWith(local.port, "/healthz")
      expect(health.status).toBe(200)
      // Open: no key needed on loopback.
      expect((yield* getWith(local.port, "/api/traces")).status).toBe(200)

      const exit = yield* ended(refused, "60 seconds")
      expect(exit.code).not.toBe(0)
      expect(exit.code).not.toBeNull()
      expect(refused.stderr()).toContain("SG_INSECURE")
      expect(refused.stderr()).toContain("SG_HOST")
      expect(refused.stderr()).not.toContain("listening on")
    }).pipe(Effect.scoped), { timeout: 90_000 })

  it.live("SG_INSECURE=on serves 0.0.0.0 without keys, with a warning; with keys 0.0.0.0 is the default", () =>
    Effect.gen(function*() {
      const [insecure, keyed, pinned] = yield* Effect.all([
        startServe("insecure", { REDIS_URL: "", SG_HOST: "0.0.0.0", SG_INSECURE: "on" }),
        startServe("keyed", { REDIS_URL: "", SG_API_KEYS: list }),
        startServe("pinned", { REDIS_URL: "", SG_API_KEYS: list, SG_HOST: "127.0.0.1" })
      ], { concurrency: 3 })
      expect(insecure.host).toBe("0.0.0.0")
      expect(insecure.child.stderr()).toMatch(/level=WARN .*SG_INSECURE=on: listening on 0\.0\.0\.0 with no API keys/)
      expect(keyed.host).toBe("0.0.0.0")
      expect(keyed.child.stderr()).toContain("access: 4 API keys (tenants: acme, globex, ops), no rate limit")
      expect(pinned.host).toBe("127.0.0.1")

      // With keys: open probes, 401 without a key, /api/status lists tenants and the key count, never a key.
      expect((yield* getWith(keyed.port, "/healthz")).status).toBe(200)
      expect((yield* getWith(keyed.port, "/readyz")).status).toBe(200)
      const anonymous = yield* getWith(keyed.port, "/api/traces")
      expect(anonymous.status).toBe(401)
      expect(anonymous.headers["www-authenticate"]).toMatch(/^Bearer/)
      const wrong = yield* getWith(keyed.port, "/api/traces", keys.wrong)
      expect(wrong.status).toBe(401)
      expect((yield* getWith(keyed.port, "/metrics", keys.acme)).status).toBe(403)
      expect((yield* getWith(keyed.port, "/metrics", keys.admin)).status).toBe(200)
      const status = yield* getWith(keyed.port, "/api/status", keys.admin)
      expect(status.status).toBe(200)
      expect(status.json.access).toEqual({
        enabled: true,
        keys: 4,
        tenants: ["acme", "globex", "ops"],
        rate_limit: null,
        metrics_public: false
      })
      const own = yield* getWith(keyed.port, "/api/status", keys.acme)
      expect(own.json.access.tenants).toEqual(["acme"])
      noKeyIn([insecure.child, keyed.child, pinned.child], [anonymous.text, wrong.text, status.text, own.text])
    }).pipe(Effect.scoped), { timeout: 90_000 })
})

describe("access across two sg serve processes on one Redis", () => {
  it.live("SG_RATE_LIMIT holds for the sum of both replicas; each 429 carries Retry-After; tenants stay apart", () =>
    Effect.gen(function*() {
      const server = yield* RedisTestServer.RedisTestServer
      const env = { REDIS_URL: server.url, SG_API_KEYS: list, SG_RATE_LIMIT: "5/minute", SG_SAMPLE_SUCCESS: "1" }
      const [a, b] = yield* Effect.all([startServe("replica-a", env), startServe("replica-b", env)], {
        concurrency: 2
      })
      expect(a.child.stderr()).toContain("rate limit 5/minute per key")

      // One key's 12 runs, alternating between the replicas: 5 go through in all, 7 are refused.
      const answers = yield* Effect.forEach(
        Array.from({ length: 12 }, (_, i) => i),
        (i) => runWith(i % 2 === 0 ? a.port : b.port, keys.limited, `what is ${i}+1?`),
        { concurrency: 4 }
      )
      const statuses = answers.map((answer) => answer.status)
      expect(statuses.filter((s) => s === 200)).toHaveLength(5)
      expect(statuses.filter((s) => s === 429)).toHaveLength(7)
      for (const answer of answers) {
        expect(answer.headers["x-ratelimit-limit-requests"]).toBe("5")
        if (answer.status !== 429) continue
        expect(answer.json.error).toBe("rate_limited")
        const retry = Number(answer.headers["retry-after"])
        expect(retry).toBeGreaterThan(0)
        expect(retry).toBeLessThanOrEqual(60)
        expect(answer.headers["x-ratelimit-remaining-requests"]).toBe("0")
      }
      // Both replicas refused some: the budget is one, in Redis.
      expect(new Set(answers.flatMap((x, i) => (x.status === 429 ? [i % 2] : []))).size).toBe(2)

      // Tenants: acme runs on a, globex on b; each lists and opens only its own, on either replica.
      const acme = yield* runWith(a.port, keys.acme, "acme's question")
      const globex = yield* runWith(b.port, keys.globex, "globex's question")
      expect([acme.status, globex.status]).toEqual([200, 200])
      const acmeId = String(acme.headers["x-trace-id"])
      const globexId = String(globex.headers["x-trace-id"])
      const client = yield* RedisClient.RedisClient
      yield* waitUntil(
        "both tenants' records",
        Effect.map(
          Effect.orDie(client.use("ZRANGE", (c) => c.zrange(client.key("exec", "index", "tenant", "globex"), 0, -1))),
          (ids) => ids.includes(globexId)
        ),
        "15 seconds",
        outputs(a.child, b.child)
      )
      yield* waitUntil(
        "acme's record",
        Effect.map(
          Effect.orDie(client.use("ZRANGE", (c) => c.zrange(client.key("exec", "index", "tenant", "acme"), 0, -1))),
          (ids) => ids.includes(acmeId)
        ),
        "15 seconds",
        outputs(a.child, b.child)
      )
      const acmeList = yield* getWith(b.port, "/api/traces", keys.acme)
      const idsOf = (answer: Http.Answer) =>
        (answer.json.items as Array<{ readonly trace_id: string }>).map((item) => item.trace_id)
      expect(idsOf(acmeList)).toContain(acmeId)
      expect(idsOf(acmeList)).not.toContain(globexId)
      expect((yield* getWith(a.port, `/api/traces/${globexId}`, keys.acme)).status).toBe(404)
      expect((yield* getWith(a.port, `/api/traces/${acmeId}`, keys.acme)).json.record.tenant).toBe("acme")
      expect(idsOf(yield* getWith(a.port, "/api/traces", keys.admin))).toEqual(
        expect.arrayContaining([acmeId, globexId])
      )

      // The CLI filters by tenant too, on the same store.
      const cli = yield* spawnSg("traces-list", ["traces", "list", "--tenant", "globex", "--json"], {
        REDIS_URL: server.url
      })
      expect((yield* ended(cli, "60 seconds")).code).toBe(0)
      const page = JSON.parse(cli.stdout())
      expect(page.items.map((item: { trace_id: string }) => item.trace_id)).toEqual([globexId])
      expect(page.items[0].tenant).toBe("globex")

      // No key in any log line, answer body, or anything stored in Redis.
      const names = yield* Effect.orDie(client.use("KEYS", (c) => c.keys("sg:*")))
      const stored: Array<string> = [...names]
      for (const name of names) {
        const type = yield* Effect.orDie(client.use("TYPE", (c) => c.type(name)))
        if (type === "hash") stored.push(JSON.stringify(yield* Effect.orDie(client.use("HGETALL", (c) => c.hgetall(name)))))
        if (type === "string") stored.push(String(yield* Effect.orDie(client.use("GET", (c) => c.get(name)))))
      }
      noKeyIn([a.child, b.child, cli], [...answers.map((x) => x.text), acmeList.text, ...stored])
    }).pipe(Effect.provide(redis), Effect.scoped), { timeout: 120_000 })
})

describe("SG_API_KEYS_FILE", () => {
  it.live("is read at start-up and again on SIGHUP: a key added to the file works without a restart", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sg-keys-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
      const file = Path.join(dir, "keys")
      Fs.writeFileSync(file, `# sg keys\n${keys.acme}:acme:run,read\n`)
      const served = yield* startServe("keys-file", { REDIS_URL: "", SG_API_KEYS_FILE: file })
      expect(served.host).toBe("0.0.0.0")
      expect((yield* getWith(served.port, "/api/traces", keys.acme)).status).toBe(200)
      expect((yield* getWith(served.port, "/api/traces", keys.late)).status).toBe(401)

      Fs.writeFileSync(file, `${keys.acme}:acme:run,read\n${keys.late}:late:read\n`)
      yield* served.child.signal("SIGHUP")
      yield* waitFor(
        "the reloaded key to work",
        Effect.map(getWith(served.port, "/api/traces", keys.late), (answer) =>
          answer.status === 200 ? Option.some(answer) : Option.none()),
        "15 seconds",
        outputs(served.child)
      )
      expect(served.child.stderr()).toContain("SIGHUP: API keys reloaded from")
      expect(served.child.stderr()).toContain("2 API keys (tenants: acme, late)")

      // A bad file keeps the keys in force, and says which line is wrong (never the key).
      Fs.writeFileSync(file, `${keys.acme}:acme:everything\n`)
      yield* served.child.signal("SIGHUP")
      yield* waitUntil(
        "the refusal to reload",
        Effect.sync(() => served.child.stderr().includes("SIGHUP: API keys not reloaded")),
        "15 seconds",
        outputs(served.child)
      )
      expect(served.child.stderr()).toContain(`${file} line 1`)
      expect((yield* getWith(served.port, "/api/traces", keys.late)).status).toBe(200)
      noKeyIn([served.child])
    }).pipe(Effect.scoped), { timeout: 90_000 })
})
