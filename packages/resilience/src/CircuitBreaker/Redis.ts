/**
 * Breakers shared by every replica on one Redis. Each breaker is one hash, `<prefix>:breaker:<name>`, changed only
 * by the Lua scripts below (one atomic step each, timed by Redis's own `TIME`), a line-by-line translation of
 * `internal/record.ts`. Every change is published on `<prefix>:breakers`, so the other replicas' mirrors follow
 * within a round trip; a replica that reconnects reads what it holds again. A record expires once idle for the idle
 * timeout past its last deadline (an isolated breaker never does).
 *
 * This is the only module of `@sg/resilience` that needs Redis: import it by path.
 */
import { type RedisClient, RedisScript } from "@sg/redis"
import type * as ConfigError from "effect/ConfigError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { RedisClient as Client } from "@sg/redis"
import * as BreakerPolicy from "../BreakerPolicy.js"
import {
  type Acquisition,
  BreakerStore,
  BreakerStoreError,
  type Change,
  type Service as Store,
  SharedState,
  type Snapshot
} from "../BreakerStore.js"
import * as CircuitBreaker from "../CircuitBreaker.js"
import type { InvalidBreakerPolicy } from "../CircuitBreakerError.js"

/**
 * KEYS: the breaker's hash. ARGV: channel, name, idle ms, then the policy: trip kind (`c` consecutive, `r` rate),
 * threshold, window, minimum calls, cool-down ms, trial slots, backoff factor (0: none), backoff cap ms; then the
 * operation's own arguments from ARGV[12]. Hash fields: s state, g generation, b born, v version, c consecutive,
 * w window (a string of 0/1), wi next slot, wn count, wf failures in it, f failures, o opened at, u until,
 * ch changed at, r reopenings, ok succeeded trials, t:<token> a trial's expiry.
 */
const prelude = `
local key = KEYS[1]
local channel, name, idle = ARGV[1], ARGV[2], tonumber(ARGV[3])
local kind, threshold, size, minimum = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cooldown, slots, factor, cap = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local clock = redis.call('TIME')
local us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local ms = math.floor(us / 1000)

local function fmt(n) return string.format('%.0f', n) end

local function load()
  local raw = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #raw, 2 do h[raw[i]] = raw[i + 1] end
  local r = {
    exists = #raw > 0, state = h.s or 'closed', gen = tonumber(h.g or '0'), born = tonumber(h.b or '0'),
    ver = tonumber(h.v or '0'), consecutive = tonumber(h.c or '0'), window = {}, wnext = tonumber(h.wi or '0'),
    wcount = tonumber(h.wn or '0'), wfail = tonumber(h.wf or '0'), failures = tonumber(h.f or '0'),
    opened = tonumber(h.o or '0'), deadline = tonumber(h.u or '0'), changed = tonumber(h.ch or '0'),
    reopenings = tonumber(h.r or '0'), succeeded = tonumber(h.ok or '0'), trials = {}
  }
  local w = h.w or ''
  for i = 1, #w do r.window[i] = tonumber(string.sub(w, i, i)) end
  for field, value in pairs(h) do
    if string.sub(field, 1, 2) == 't:' then
      local expiry = tonumber(value)
      if expiry > ms then r.trials[string.sub(field, 3)] = expiry end
    end
  end
  return r
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function create(r)
  if not r.exists then
    r.exists = true
    r.gen = math.max(us, 1)
    r.born = r.gen
  end
end

local function bump(r) r.gen = math.max(r.gen + 1, us) end

local function current(r, gen) return (not r.exists) or gen == r.gen or (r.gen == r.born and gen < r.born) end

local function clear(r)
  r.consecutive = 0
  r.window = {}
  if kind == 'r' then for i = 1, size do r.window[i] = 0 end end
  r.wnext = 0
  r.wcount = 0
  r.wfail = 0
end

local function ensure(r) if kind == 'r' and #r.window ~= size then clear(r) end end

local function push(r, bit, n)
  local len = #r.window
  if n > len then n = len end
  for i = 1, n do
    local at = r.wnext + 1
    if r.wcount == len then r.wfail = r.wfail - r.window[at] else r.wcount = r.wcount + 1 end
    r.window[at] = bit
    r.wfail = r.wfail + bit
    r.wnext = (r.wnext + 1) % len
  end
end

local function failures_of(r)
  if r.state ~= 'closed' then return r.failures end
  if kind == 'r' then return r.wfail end
  return r.consecutive
end

local function duration(reopenings)
  if factor == 0 or reopenings == 0 then return cooldown end
  return math.min(cooldown * math.pow(factor, reopenings), cap)
end

local function open(r, failures, reopenings)
  r.state = 'open'
  bump(r)
  r.opened = ms
  r.deadline = math.max(r.deadline, ms + math.floor(duration(reopenings)))
  r.failures = failures
  r.reopenings = reopenings
  r.changed = ms
  r.succeeded = 0
  r.trials = {}
  clear(r)
end

local function close(r)
  r.state = 'closed'
  bump(r)
  r.failures = 0
  r.reopenings = 0
  r.succeeded = 0
  r.opened = 0
  r.deadline = 0
  r.changed = ms
  r.trials = {}
  clear(r)
end

local function save(r)
  r.ver = math.max(r.ver + 1, us)
  r.exists = true
  local w = {}
  for i = 1, #r.window do w[i] = tostring(r.window[i]) end
  redis.call('DEL', key)
  redis.call('HSET', key, 's', r.state, 'g', fmt(r.gen), 'b', fmt(r.born), 'v', fmt(r.ver), 'c', fmt(r.consecutive),
    'w', table.concat(w), 'wi', fmt(r.wnext), 'wn', fmt(r.wcount), 'wf', fmt(r.wfail), 'f', fmt(r.failures),
    'o', fmt(r.opened), 'u', fmt(r.deadline), 'ch', fmt(r.changed), 'r', fmt(r.reopenings), 'ok', fmt(r.succeeded))
  local last = r.deadline
  for token, expiry in pairs(r.trials) do
    redis.call('HSET', key, 't:' .. token, fmt(expiry))
    if expiry > last then last = expiry end
  end
  if r.state ~= 'isolated' then redis.call('PEXPIRE', key, idle + math.max(0, last - ms)) end
end

local function finish(r, effect, extra)
  if effect ~= 'none' then save(r) end
  local live, last = 0, 0
  for _, expiry in pairs(r.trials) do
    if expiry > ms then
      live = live + 1
      if expiry > last then last = expiry end
    end
  end
  local snapshot = {
    n = name, s = r.state, g = fmt(r.gen), v = fmt(r.ver), f = fmt(failures_of(r)), o = fmt(r.opened),
    u = fmt(r.deadline), ch = fmt(r.changed), r = fmt(r.reopenings), t = fmt(live), tu = fmt(last), now = fmt(ms)
  }
  if effect == 'publish' then redis.call('PUBLISH', channel, cjson.encode(snapshot)) end
  if extra ~= nil then snapshot.x = extra end
  return cjson.encode(snapshot)
end

local r = load()
`

/** A record's snapshot as the scripts encode it (numbers as decimal strings: generations pass 2^53 / 1000). */
const Wire = Schema.Struct({
  n: Schema.String,
  s: SharedState,
  g: Schema.NumberFromString,
  v: Schema.NumberFromString,
  f: Schema.NumberFromString,
  o: Schema.NumberFromString,
  u: Schema.NumberFromString,
  ch: Schema.NumberFromString,
  r: Schema.NumberFromString,
  t: Schema.NumberFromString,
  tu: Schema.NumberFromString,
  now: Schema.NumberFromString,
  x: Schema.optional(Schema.String)
})

type Wire = typeof Wire.Type

const Reply = Schema.parseJson(Wire)

const script = (name: string, body: string) =>
  RedisScript.make({ name, numberOfKeys: 1, lua: prelude + body, reply: Reply })

const scripts = {
  read: script("sgBreakerRead", `return finish(r, 'none')`),
  failure: script(
    "sgBreakerFailure",
    `
local gen, before = tonumber(ARGV[12]), tonumber(ARGV[13])
if r.state ~= 'closed' or not current(r, gen) then return finish(r, 'none') end
create(r)
if kind == 'c' then
  if before > 0 then r.consecutive = 0 end
  r.consecutive = r.consecutive + 1
  if r.consecutive >= threshold then open(r, r.consecutive, 0) end
else
  ensure(r)
  push(r, 0, before)
  push(r, 1, 1)
  if r.wcount >= minimum and r.wfail >= threshold * r.wcount then open(r, r.wfail, 0) end
end
return finish(r, 'publish')
`
  ),
  successes: script(
    "sgBreakerSuccesses",
    `
local gen, n = tonumber(ARGV[12]), tonumber(ARGV[13])
if r.state ~= 'closed' or n <= 0 or not current(r, gen) then return finish(r, 'none') end
if kind == 'c' then
  if r.consecutive == 0 then return finish(r, 'none') end
  r.consecutive = 0
  return finish(r, 'publish')
end
create(r)
ensure(r)
local before = r.wfail
push(r, 0, n)
if r.wfail == before then return finish(r, 'write') end
return finish(r, 'publish')
`
  ),
  acquire: script(
    "sgBreakerAcquire",
    `
local token, ttl = ARGV[12], tonumber(ARGV[13])
if r.state == 'closed' then return finish(r, 'none', 'closed') end
if r.state == 'isolated' then return finish(r, 'none', 'rejected') end
if r.state == 'open' then
  if ms < r.deadline then return finish(r, 'none', 'rejected') end
  r.state = 'half_open'
  bump(r)
  r.changed = ms
  r.succeeded = 0
  r.trials = {}
  r.trials[token] = ms + ttl
  return finish(r, 'publish', 'granted')
end
if r.trials[token] == nil and count(r.trials) >= slots then return finish(r, 'none', 'rejected') end
r.trials[token] = ms + ttl
return finish(r, 'publish', 'granted')
`
  ),
  renew: script(
    "sgBreakerRenew",
    `
local gen, token, ttl = tonumber(ARGV[12]), ARGV[13], tonumber(ARGV[14])
if r.state ~= 'half_open' or r.gen ~= gen or r.trials[token] == nil then return finish(r, 'none', '0') end
r.trials[token] = ms + ttl
return finish(r, 'write', '1')
`
  ),
  settle: script(
    "sgBreakerSettle",
    `
local gen, token, outcome = tonumber(ARGV[12]), ARGV[13], ARGV[14]
if r.state ~= 'half_open' or r.gen ~= gen or r.trials[token] == nil then return finish(r, 'none') end
r.trials[token] = nil
if outcome == 'failure' then
  open(r, r.failures + 1, r.reopenings + 1)
elseif outcome == 'success' then
  r.succeeded = r.succeeded + 1
  if r.succeeded >= slots then close(r) end
end
return finish(r, 'publish')
`
  ),
  isolate: script(
    "sgBreakerIsolate",
    `
create(r)
r.failures = failures_of(r)
r.state = 'isolated'
bump(r)
r.opened = ms
r.deadline = 0
r.reopenings = 0
r.succeeded = 0
r.changed = ms
r.trials = {}
clear(r)
return finish(r, 'publish')
`
  ),
  openFor: script(
    "sgBreakerOpenFor",
    `
create(r)
local deadline = ms + math.floor(tonumber(ARGV[12]))
if r.state == 'isolated' or (r.state == 'open' and r.deadline >= deadline) then return finish(r, 'none') end
local was_closed = r.state == 'closed'
r.failures = failures_of(r)
r.state = 'open'
bump(r)
if was_closed then r.opened = ms end
r.deadline = deadline
r.changed = ms
r.succeeded = 0
r.trials = {}
clear(r)
return finish(r, 'publish')
`
  ),
  reset: script(
    "sgBreakerReset",
    `
create(r)
close(r)
return finish(r, 'publish')
`
  )
} as const

const snapshotOf = (wire: Wire): Snapshot => ({
  state: wire.s,
  generation: wire.g,
  version: wire.v,
  failures: wire.f,
  openedAt: wire.o,
  until: wire.u,
  changedAt: wire.ch,
  reopenings: wire.r,
  trials: wire.t,
  trialsUntil: wire.tu,
  now: wire.now
})

const policyArgs = (policy: BreakerPolicy.Policy): ReadonlyArray<string | number> => {
  const trip = policy.trip
  return [
    trip._tag === "ConsecutiveFailures" ? "c" : "r",
    trip.threshold,
    trip._tag === "FailureRate" ? trip.window : 0,
    trip._tag === "FailureRate" ? trip.minimumCalls : 0,
    Math.floor(policy.cooldownMs),
    policy.halfOpenTrials,
    policy.backoff?.factor ?? 0,
    Math.floor(policy.backoff?.maxMs ?? 0)
  ]
}

/** The hash of the breaker `name`: `<prefix>:breaker:<name>`. */
export const keyOf = (redis: RedisClient.Service, name: string): string => redis.key("breaker", name)

/** The channel every change is published on: `<prefix>:breakers` (a JSON snapshot, its breaker's name in `n`). */
export const channelOf = (redis: RedisClient.Service): string => redis.key("breakers")

/** Options of the Redis store. */
export interface StoreOptions {
  /** How long a record outlives its last deadline with nothing written to it; defaults to 1 hour. */
  readonly idleTimeout?: Duration.DurationInput | undefined
}

const decodeMessage = Schema.decodeUnknownOption(Reply)

const connecting: ReadonlySet<string> = new Set(["wait", "connecting", "connect"])

interface Connection {
  readonly status: string
  on(event: "ready" | "close" | "end", listener: () => void): unknown
  off(event: "ready" | "close" | "end", listener: () => void): unknown
}

/**
 * Whether a connection can take commands, kept by its events (so asking costs one read): ready, or still making its
 * first connection (commands wait for it then). One that was ready and lost its connection is not: calls fail at
 * once and breakers fall back to local state.
 */
const track = (client: Connection, changed: () => void) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      let up = client.status === "ready" || connecting.has(client.status)
      const ready = () => {
        up = true
        changed()
      }
      const down = () => {
        up = false
        changed()
      }
      client.on("ready", ready)
      client.on("close", down)
      client.on("end", down)
      const release = () => {
        client.off("ready", ready)
        client.off("close", down)
        client.off("end", down)
      }
      return { up: () => up, release }
    }),
    (tracked) => Effect.sync(tracked.release)
  ).pipe(Effect.map((tracked) => tracked.up))

/**
 * A breaker store over the `RedisClient` in context, with a connection of its own for the change feed (a
 * subscribed connection can send nothing else). Operations fail at once, without queueing, while the command
 * connection is down.
 */
export const makeStore = (options?: StoreOptions): Effect.Effect<Store, never, RedisClient.RedisClient | Scope.Scope> =>
  Effect.gen(function*() {
    const redis = yield* Client.RedisClient
    const idleMs = Math.max(1, Math.floor(Duration.toMillis(Duration.decode(options?.idleTimeout ?? "1 hour"))))
    const channel = channelOf(redis)
    const hub = yield* Effect.acquireRelease(PubSub.unbounded<Change>(), PubSub.shutdown)
    const commands = redis.client

    // Settles once the feed first listens, or its first connection attempt fails.
    const firstAttempt = yield* Deferred.make<void>()
    const attempted = () => Deferred.unsafeDone(firstAttempt, Effect.void)
    const subscriber = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const subscriber = redis.duplicate()
        let subscribed = false
        const subscribe = () =>
          subscriber.subscribe(channel).then(() => {
            if (subscribed) hub.unsafeOffer({ _tag: "Reconnected" })
            subscribed = true
            attempted()
          }, attempted)
        subscriber.on("error", attempted)
        subscriber.on("close", attempted)
        subscriber.on("message", (from: string, message: string) => {
          if (from !== channel) return
          const wire = decodeMessage(message)
          if (Option.isNone(wire)) return
          hub.unsafeOffer({ _tag: "Changed", name: wire.value.n, snapshot: snapshotOf(wire.value) })
        })
        // Subscribes again on every reconnection (a no-op when ioredis did already), then says the feed is back.
        subscriber.on("ready", () => void subscribe())
        subscriber.connect().catch(() => undefined)
        return subscriber
      }),
      (subscriber) =>
        Effect.tryPromise(() => subscriber.quit()).pipe(
          Effect.timeout("1 second"),
          Effect.ignore,
          Effect.ensuring(Effect.sync(() => {
            subscriber.disconnect()
            subscriber.removeAllListeners()
          }))
        )
    )

    // The command connection coming back also means what this process holds may be stale.
    let commandsDown = false
    const onClose = () => {
      commandsDown = true
    }
    const onReady = () => {
      if (!commandsDown) return
      commandsDown = false
      hub.unsafeOffer({ _tag: "Reconnected" })
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        commands.on("close", onClose)
        commands.on("ready", onReady)
      }),
      () =>
        Effect.sync(() => {
          commands.off("close", onClose)
          commands.off("ready", onReady)
        })
    )

    // Kept up to date by the connections' events, so the hot path reads one variable.
    let available = false
    let commandsUp = () => false
    let feedUp = () => false
    const update = () => {
      available = commandsUp() && feedUp()
    }
    commandsUp = yield* track(commands, update)
    feedUp = yield* track(subscriber, update)
    update()
    // A replica that serves is already listening for trips (unless Redis is out of reach: then it goes on at once).
    yield* Deferred.await(firstAttempt).pipe(Effect.timeout("2 seconds"), Effect.ignore)
    const isAvailable = () => available

    const call = (
      operation: keyof typeof scripts,
      name: string,
      policy: BreakerPolicy.Policy,
      args: ReadonlyArray<string | number>
    ): Effect.Effect<Wire, BreakerStoreError> =>
      Effect.suspend(() => {
        if (!commandsUp()) {
          return Effect.fail(
            new BreakerStoreError({ message: `Redis at ${redis.target} is not connected (${commands.status})` })
          )
        }
        return redis.eval(scripts[operation], [keyOf(redis, name)], [
          channel,
          name,
          idleMs,
          ...policyArgs(policy),
          ...args
        ]).pipe(
          Effect.mapError((error) => new BreakerStoreError({ message: error.message, cause: error }))
        )
      })

    const snapshot = (
      operation: keyof typeof scripts,
      name: string,
      policy: BreakerPolicy.Policy,
      args: ReadonlyArray<string | number>
    ) => Effect.map(call(operation, name, policy, args), snapshotOf)

    const verdict = (wire: Wire): Acquisition["verdict"] =>
      wire.x === "granted" ? "granted" : wire.x === "closed" ? "closed" : "rejected"

    return {
      read: (name, policy) => snapshot("read", name, policy, []),
      failure: (name, policy, generation, before) => snapshot("failure", name, policy, [generation, before]),
      successes: (name, policy, generation, n) => snapshot("successes", name, policy, [generation, n]),
      acquire: (name, policy, token, ttlMs) =>
        Effect.map(
          call("acquire", name, policy, [token, Math.floor(ttlMs)]),
          (wire) => ({ verdict: verdict(wire), snapshot: snapshotOf(wire) })
        ),
      renew: (name, generation, token, ttlMs) =>
        Effect.map(
          call("renew", name, BreakerPolicy.defaultPolicy, [generation, token, Math.floor(ttlMs)]),
          (wire) => wire.x === "1"
        ),
      settle: (name, policy, generation, token, outcome) =>
        snapshot("settle", name, policy, [generation, token, outcome]),
      isolate: (name, policy) => snapshot("isolate", name, policy, []),
      openFor: (name, policy, millis) => snapshot("openFor", name, policy, [Math.floor(millis)]),
      reset: (name, policy) => snapshot("reset", name, policy, []),
      subscribe: PubSub.subscribe(hub),
      isAvailable
    }
  })

/** The Redis breaker store (see `makeStore`). */
export const layerStore = (options?: StoreOptions): Layer.Layer<BreakerStore, never, RedisClient.RedisClient> =>
  Layer.scoped(BreakerStore, makeStore(options))

/** Breakers shared through the `RedisClient` in context, with these policies (see `CircuitBreaker.makeShared`). */
export const layer = (
  options?: CircuitBreaker.SharedOptions
): Layer.Layer<CircuitBreaker.CircuitBreaker, InvalidBreakerPolicy, RedisClient.RedisClient> =>
  CircuitBreaker.layerShared(options).pipe(Layer.provide(layerStore({ idleTimeout: options?.idleTimeout })))

/**
 * Shared breakers whose defaults come from `SG_BREAKER_THRESHOLD`, `SG_BREAKER_COOLDOWN` and
 * `SG_BREAKER_COOLDOWN_MAX`, with `options` for the rest (`local` names, named policies, timings).
 */
export const layerConfig = (
  options?: Omit<CircuitBreaker.SharedOptions, "threshold" | "cooldown" | "backoff">
): Layer.Layer<
  CircuitBreaker.CircuitBreaker,
  ConfigError.ConfigError | InvalidBreakerPolicy,
  RedisClient.RedisClient
> => Layer.unwrapEffect(Effect.map(BreakerPolicy.config, (env) => layer({ ...options, ...env })))
