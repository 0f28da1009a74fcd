/**
 * The execution store's Lua scripts over the layout of `execLayout.ts`: a save merges one request's record into the
 * trace's hash and moves its index entries in one atomic step, so two replicas saving runs of one trace at once lose
 * nothing; a read tells the hash from a record an earlier version stored as one JSON string.
 */
import { RedisScript } from "@sg/redis"
import * as Schema from "effect/Schema"

/**
 * KEYS: the record, the main index, the status indexes (success, timeout, error), the tenant's index when the save
 * has a tenant, then one index per agent of this save. ARGV: 1 trace id, 2 TTL ms, 3 retention cutoff ("(<ms>"), 4 max runs, 5 max bytes, 6 status, 7 rank,
 * 8 error ("" with 9 = "0": none), 9 has error, 10 conversation id ("" none), 11 started_at, 12 started ms,
 * 13 ended_at, 14 ended ms, 15 duration ms, 16 dropped runs, 17 dropped events, 18 dropped spans, 19 dropped payloads
 * ("1"/"0"), 20 the legacy JSON this save replaces ("" none), 21 the tenant ("" none), then run field / run JSON
 * pairs.
 * A record stored as a JSON string by an earlier version is not touched unless ARGV[20] is exactly it: the reply
 * `legacy` hands it back to be merged first. A record of another tenant than the save's (none counts as one) is left
 * as it is: the reply `tenant` names the record's ("" none). Replies `ok`, runs now, runs left out.
 */
export const save = RedisScript.make({
  name: "sgExecSave",
  numberOfKeys: "variable",
  lua: `
local key = KEYS[1]
local kind = redis.call('TYPE', key).ok
if kind == 'string' then
  local legacy = redis.call('GET', key)
  if ARGV[20] ~= legacy then return {'legacy', legacy} end
  redis.call('DEL', key)
elseif kind ~= 'hash' and kind ~= 'none' then
  return {'wrongtype', kind}
end
local h = redis.call('HMGET', key, 'v', 'rank', 'error', 'conversation_id', 'started_ms', 'ended_ms', 'runs', 'bytes', 'seq', 'tenant')
local first = not h[1]
if not first and (h[10] or '') ~= ARGV[21] then return {'tenant', h[10] or ''} end
if first and ARGV[21] ~= '' then redis.call('HSET', key, 'tenant', ARGV[21]) end
local rank, newRank = tonumber(h[2]) or -1, tonumber(ARGV[7])
if newRank > rank then
  redis.call('HSET', key, 'status', ARGV[6], 'rank', newRank)
  if ARGV[9] == '1' then redis.call('HSET', key, 'error', ARGV[8]) else redis.call('HDEL', key, 'error') end
elseif newRank == rank and not h[3] and ARGV[9] == '1' then
  redis.call('HSET', key, 'error', ARGV[8])
end
if not h[4] and ARGV[10] ~= '' then redis.call('HSET', key, 'conversation_id', ARGV[10]) end
local started, ended = tonumber(h[5]), tonumber(h[6])
local moved = false
if not started or tonumber(ARGV[12]) < started then
  started, moved = tonumber(ARGV[12]), true
  redis.call('HSET', key, 'started_ms', ARGV[12], 'started_at', ARGV[11])
end
if not ended or tonumber(ARGV[14]) > ended then
  ended, moved = tonumber(ARGV[14]), true
  redis.call('HSET', key, 'ended_ms', ARGV[14], 'ended_at', ARGV[13])
end
if first then
  redis.call('HSET', key, 'duration_ms', ARGV[15])
elseif moved then
  redis.call('HSET', key, 'duration_ms', ended - started)
end
local runs, bytes, seq = tonumber(h[7]) or 0, tonumber(h[8]) or 0, tonumber(h[9]) or 0
local maxRuns, maxBytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local dropped = 0
for i = 22, #ARGV, 2 do
  local field, json = ARGV[i], ARGV[i + 1]
  local old = redis.call('HGET', key, field)
  local oldSize, position = 0, seq
  if old then
    oldSize = #old
    position = tonumber(string.match(old, '^(%d+):'))
  end
  local value = position .. ':' .. json
  if (not old and runs >= maxRuns) or bytes - oldSize + #value > maxBytes then
    dropped = dropped + 1
  else
    redis.call('HSET', key, field, value)
    bytes = bytes - oldSize + #value
    if not old then runs, seq = runs + 1, seq + 1 end
  end
end
redis.call('HSET', key, 'runs', runs, 'bytes', bytes, 'seq', seq, 'v', 2)
redis.call('HINCRBY', key, 'dropped_runs', tonumber(ARGV[16]) + dropped)
redis.call('HINCRBY', key, 'dropped_events', ARGV[17])
redis.call('HINCRBY', key, 'dropped_spans', ARGV[18])
if ARGV[19] == '1' then redis.call('HSET', key, 'dropped_payloads', 1) end
redis.call('PEXPIRE', key, ARGV[2])
local final = tonumber(redis.call('HGET', key, 'rank'))
redis.call('ZADD', KEYS[2], started, ARGV[1])
for s = 0, 2 do
  if s == final then redis.call('ZADD', KEYS[3 + s], started, ARGV[1]) else redis.call('ZREM', KEYS[3 + s], ARGV[1]) end
end
for k = 6, #KEYS do redis.call('ZADD', KEYS[k], started, ARGV[1]) end
for k = 2, #KEYS do redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', ARGV[3]) end
return {'ok', runs, dropped}
`,
  reply: Schema.Union(
    Schema.Tuple(Schema.Literal("ok"), Schema.Number, Schema.Number),
    Schema.Tuple(Schema.Literal("legacy"), Schema.String),
    Schema.Tuple(Schema.Literal("tenant"), Schema.String),
    Schema.Tuple(Schema.Literal("wrongtype"), Schema.String)
  )
})

/**
 * KEYS: the record. Replies `{'hash', field, value, ...}`, `{'json', text}` for a record an earlier version stored as
 * one JSON string, or `{'none'}`.
 */
export const read = RedisScript.make({
  name: "sgExecRead",
  numberOfKeys: 1,
  lua: `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'hash' then
  local reply = redis.call('HGETALL', KEYS[1])
  table.insert(reply, 1, 'hash')
  return reply
elseif kind == 'string' then
  return {'json', redis.call('GET', KEYS[1])}
elseif kind == 'none' then
  return {'none'}
end
return {'wrongtype', kind}
`,
  reply: Schema.Array(Schema.String)
})
