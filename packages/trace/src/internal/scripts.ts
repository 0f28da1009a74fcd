/**
 * The TraceStore's Lua scripts: each is one atomic read-decide-write step, so nothing can slip in between the check
 * and the write. Terminal states are spelled out here (`terminal`) as in `TraceRecord.isTerminal`.
 */
import { RedisScript } from "@sg/redis"
import * as Schema from "effect/Schema"
import { TerminalState } from "../TraceRecord.js"

/**
 * The lifecycle of a trace that several requests share. Bookkeeping fields in the hash: `requests` (requests seen),
 * `in_flight` (requests of the current opening not yet finished), `opening` (1, then one more each time a request
 * arrives after the trace went terminal), `errors` (failed requests of the current opening), and `req:<token>` for
 * each request of the current opening that named itself (its opening while in flight, `done` once finished), so that
 * a write sent twice (a reply lost to a timeout, then replayed, or resent after a reconnect) counts once, even when
 * the late copy of a `create` lands after its request finished. A hash another writer made without them counts as one request of opening 1 in flight.
 */
const terminal = `local function terminal(s) return s == 'COMPLETED' or s == 'ERRORED' end
local function forget(key)
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, 1, 4) == 'req:' then redis.call('HDEL', key, field) end
  end
end
`

/**
 * KEYS: trace hash, active set. ARGV: id, state, now, failsafe TTL in seconds, the request's token ("" none), then
 * metadata field/value pairs. A token already in the hash (in flight, or `done` in this opening): the same request again,
 * nothing written (`duplicate`).
 * No hash (or one without a state): a new trace, opening 1. Terminal: reopened, opening + 1, a fresh `created_at`,
 * `error`, the error count and any token left cleared. In flight: joined, one more in flight. In every case the
 * state, `updated_at` and the metadata are written, `requests` counts one more, the failsafe TTL is set again and the
 * id is in the active set. Replies the opening, what happened, and how many requests are now in flight.
 */
export const create = RedisScript.make({
  name: "sgTraceCreate",
  numberOfKeys: 2,
  lua: terminal + `
local f = redis.call('HMGET', KEYS[1], 'state', 'opening', 'in_flight')
local opening, kind, inflight = tonumber(f[2]) or 0, 'joined', 1
local token = ARGV[5] ~= '' and ('req:' .. ARGV[5]) or nil
local seen = token and redis.call('HGET', KEYS[1], token)
if seen and (seen == 'done' or not terminal(f[1])) then
  return {math.max(opening, 1), 'duplicate', tonumber(f[3]) or 1}
end
if not f[1] then
  opening, kind = opening + 1, 'new'
  redis.call('HSET', KEYS[1], 'created_at', ARGV[3], 'errors', 0)
elseif terminal(f[1]) then
  opening, kind = math.max(opening, 1) + 1, 'reopened'
  forget(KEYS[1])
  redis.call('HDEL', KEYS[1], 'error')
  redis.call('HSET', KEYS[1], 'created_at', ARGV[3], 'errors', 0)
else
  opening, inflight = math.max(opening, 1), (tonumber(f[3]) or 1) + 1
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updated_at', ARGV[3], 'opening', opening, 'in_flight', inflight)
redis.call('HINCRBY', KEYS[1], 'requests', 1)
if token then redis.call('HSET', KEYS[1], token, opening) end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return {opening, kind, inflight}
`,
  reply: Schema.Tuple(Schema.Number, Schema.Literal("new", "joined", "reopened", "duplicate"), Schema.Number)
})

/** The refusals every write after `create` shares: gone, from an earlier opening, already terminal. */
const refusals = terminal + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'state', 'opening', 'in_flight', 'errors')
local opening = f[2] or '1'
if ARGV[4] ~= '' and ARGV[4] ~= opening then return {'stale', opening} end
if terminal(f[1]) then return {'terminal', f[1]} end
`

const refused = [
  Schema.Tuple(Schema.Literal("missing")),
  Schema.Tuple(Schema.Literal("stale"), Schema.String),
  Schema.Tuple(Schema.Literal("terminal"), Schema.String)
] as const

/**
 * KEYS: trace hash, active set. ARGV: id, state (not terminal), now, the writer's opening ("" when unchecked).
 * Refuses a gone trace, a write of an earlier opening, and a terminal trace; else sets state and updated_at.
 */
export const transition = RedisScript.make({
  name: "sgTraceTransition",
  numberOfKeys: 2,
  lua: refusals + `
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updated_at', ARGV[3])
return {'ok'}
`,
  reply: Schema.Union(Schema.Tuple(Schema.Literal("ok")), ...refused)
})

/**
 * KEYS: trace hash, active set. ARGV: id, the request's outcome (COMPLETED or ERRORED), now, the writer's opening
 * ("" when unchecked), terminal TTL in seconds, the request's token ("" none), then field/value pairs. With the
 * refusals of `transition`; a token not in the hash (its `create` never landed) or `done` (finished already) writes
 * nothing (`duplicate`); else the token becomes `done`. Else one request of the trace has ended: its fields are written and, ERRORED, counted. While others
 * are in flight the trace stays as it is (`pending`, how many are left); the last one ends it: ERRORED if any
 * request of this opening errored, else COMPLETED, the terminal TTL, out of the active set (`ended`, the state).
 */
export const finish = RedisScript.make({
  name: "sgTraceFinish",
  numberOfKeys: 2,
  lua: refusals + `
if ARGV[6] ~= '' then
  local seen = redis.call('HGET', KEYS[1], 'req:' .. ARGV[6])
  if not seen or seen == 'done' then return {'duplicate'} end
  redis.call('HSET', KEYS[1], 'req:' .. ARGV[6], 'done')
end
local inflight = math.max((tonumber(f[3]) or 1) - 1, 0)
local errors = tonumber(f[4]) or 0
if ARGV[2] == 'ERRORED' then errors = errors + 1 end
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if inflight > 0 then
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[3], 'in_flight', inflight, 'errors', errors)
  return {'pending', inflight}
end
local final = errors > 0 and 'ERRORED' or 'COMPLETED'
redis.call('HSET', KEYS[1], 'state', final, 'updated_at', ARGV[3], 'in_flight', 0, 'errors', errors)
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SREM', KEYS[2], ARGV[1])
return {'ended', final}
`,
  reply: Schema.Union(
    Schema.Tuple(Schema.Literal("ended"), TerminalState),
    Schema.Tuple(Schema.Literal("pending"), Schema.Number),
    Schema.Tuple(Schema.Literal("duplicate")),
    ...refused
  )
})

/**
 * KEYS: active set. ARGV: SSCAN cursor, COUNT, the prefix of trace keys (`sg:trace:`). One SSCAN step, then each id's
 * `state`, `created_at` and `updated_at`: returns the next cursor, then per id its id and those three (nil when
 * absent). Reads only; a batch of 500 runs in about a millisecond.
 */
export const sweepRead = RedisScript.make({
  name: "sgTraceSweepRead",
  numberOfKeys: 1,
  lua: `
local scan = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local rows = {scan[1]}
for _, id in ipairs(scan[2]) do
  local fields = redis.call('HMGET', ARGV[3] .. id, 'state', 'created_at', 'updated_at')
  rows[#rows + 1] = id
  rows[#rows + 1] = fields[1]
  rows[#rows + 1] = fields[2]
  rows[#rows + 1] = fields[3]
end
return rows
`,
  reply: Schema.Array(Schema.NullOr(Schema.String))
})

// One candidate of a sweep, re-read and decided (see `sweepDecide`): returns the decision and writes what it says.
const decideOne = terminal + `
local function decide(key, active, id, kind, seen, now, ttl)
  if redis.call('EXISTS', key) == 0 then
    redis.call('SREM', active, id)
    return 1
  elseif kind == 'g' then
    if not redis.call('HGET', key, 'created_at') then return 3 end
  elseif kind == 't' then
    if terminal(redis.call('HGET', key, 'state')) then
      redis.call('SREM', active, id)
      return 4
    end
  else
    local f = redis.call('HMGET', key, 'state', 'updated_at', 'created_at')
    if not terminal(f[1]) and (f[2] or f[3]) == seen then
      forget(key)
      redis.call('HSET', key, 'state', 'ERRORED', 'error', 'orphaned', 'updated_at', now, 'in_flight', 0)
      redis.call('EXPIRE', key, ttl)
      redis.call('SREM', active, id)
      return 2
    end
  end
  return 0
end
`

const decideReply = Schema.Union(
  Schema.Tuple([Schema.Literal("ok")], Schema.Number),
  Schema.Tuple(Schema.Literal("lease_lost"), Schema.NullOr(Schema.String), Schema.NullOr(Schema.String))
)

/**
 * KEYS: active set, lease key, lease epoch key. ARGV: "1" when fenced, lease token, lease epoch, now, terminal TTL,
 * then per candidate its hash key, its id, what the batch read saw (`g` gone, `t` terminal, `o` idle past the
 * threshold) and, for `o`, the activity timestamp it saw (`updated_at`, else `created_at`).
 * Fenced and the lease is not ours at that epoch: writes nothing. Else per candidate, re-read and decide:
 * hash gone → SREM (1); gone at read but back now without created_at → unreadable (3); still terminal → SREM,
 * the hash left alone (4); still in flight with the same activity timestamp → ERRORED, error orphaned, updated_at,
 * in_flight 0, tokens of requests in flight cleared, EXPIRE, SREM (2); anything else → left alone (0).
 * The standalone keyspace's script (a Python writer's keys need no hash tags).
 */
export const sweepDecide = RedisScript.make({
  name: "sgTraceSweepDecide",
  numberOfKeys: 3,
  lua: decideOne + `
if ARGV[1] == '1' then
  local holder = redis.call('GET', KEYS[2])
  local epoch = redis.call('GET', KEYS[3])
  if holder ~= ARGV[2] or epoch ~= ARGV[3] then return {'lease_lost', holder, epoch} end
end
local decisions = {'ok'}
for i = 6, #ARGV, 4 do
  decisions[#decisions + 1] = decide(ARGV[i], KEYS[1], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[4], ARGV[5])
end
return decisions
`,
  reply: decideReply
})

/**
 * The cluster keyspace's `sweepDecide`, every key declared: KEYS: the shard's active set, its fence, then each
 * candidate's hash key (all in the shard's slot). ARGV: "1" when fenced, the lease epoch, now, terminal TTL, then per
 * candidate its id, what the read saw and the activity timestamp seen (as `sweepDecide`). Fenced, a fence above the
 * epoch (a newer leader swept this shard) writes nothing (`lease_lost`, nil, the fence); one below it is raised
 * first. Then each candidate is decided as `sweepDecide` does.
 */
export const sweepDecideSharded = RedisScript.make({
  name: "sgTraceSweepDecideSharded",
  numberOfKeys: "variable",
  lua: decideOne + `
if ARGV[1] == '1' then
  local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
  local epoch = tonumber(ARGV[2])
  if fence > epoch then return {'lease_lost', false, string.format('%d', fence)} end
  if fence < epoch then redis.call('SET', KEYS[2], ARGV[2]) end
end
local decisions = {'ok'}
for i = 3, #KEYS do
  local a = 5 + (i - 3) * 3
  decisions[#decisions + 1] = decide(KEYS[i], KEYS[1], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[3], ARGV[4])
end
return decisions
`,
  reply: decideReply
})

/**
 * KEYS: a shard's fence. ARGV: the leader's epoch. Raises the fence to the epoch (`ok`), or, when it is above it
 * already (a newer leader has swept), leaves it (`lease_lost`, the fence). A leader raises every shard's fence
 * before its sweep writes anything, so from then on no older leader's sweep writes anywhere.
 */
export const raiseFence = RedisScript.make({
  name: "sgTraceRaiseFence",
  numberOfKeys: 1,
  lua: `
local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
local epoch = tonumber(ARGV[1])
if fence > epoch then return {'lease_lost', string.format('%d', fence)} end
if fence < epoch then redis.call('SET', KEYS[1], ARGV[1]) end
return {'ok', ARGV[1]}
`,
  reply: Schema.Tuple(Schema.Literal("ok", "lease_lost"), Schema.String)
})

/**
 * KEYS: trace hashes (of one shard, on a cluster). Each one's `state`, `created_at` and `updated_at` (nil when
 * absent), three per key, in order: the batch read of a cluster sweep after its SSCAN step.
 */
export const sweepRows = RedisScript.make({
  name: "sgTraceSweepRows",
  numberOfKeys: "variable",
  lua: `
local rows = {}
for _, key in ipairs(KEYS) do
  local fields = redis.call('HMGET', key, 'state', 'created_at', 'updated_at')
  rows[#rows + 1] = fields[1]
  rows[#rows + 1] = fields[2]
  rows[#rows + 1] = fields[3]
end
return rows
`,
  reply: Schema.Array(Schema.NullOr(Schema.String))
})

/**
 * KEYS: trace hash. ARGV: how many reserved names follow (n), the n names, then field/value pairs. Caller fields on
 * an existing trace: refuses a gone trace (returns 0, and creates no hash); else HSETs every pair whose name is not
 * reserved nor a request token (`req:...`) (returns 1), so the store's own fields are never overwritten, whatever
 * the caller sends.
 */
export const annotate = RedisScript.make({
  name: "sgTraceAnnotate",
  numberOfKeys: 1,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[1])
local reserved = {}
for i = 2, n + 1 do reserved[ARGV[i]] = true end
for i = n + 2, #ARGV - 1, 2 do
  if not reserved[ARGV[i]] and string.sub(ARGV[i], 1, 4) ~= 'req:' then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
`,
  reply: Schema.Literal(0, 1)
})
