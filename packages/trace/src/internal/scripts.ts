/**
 * The TraceStore's Lua scripts: each is one atomic read-decide-write step, so nothing can slip in between the check
 * and the write. Terminal states are spelled out here as in `TraceRecord.isTerminal`.
 */
import { RedisScript } from "@sg/redis"
import * as Schema from "effect/Schema"

/**
 * KEYS: trace hash, active set. ARGV: id, state, now, terminal TTL in seconds ("" when the state is not terminal),
 * then field/value pairs. Refuses a gone or terminal trace; else sets state, updated_at and the fields, and for a
 * terminal state applies the TTL and leaves the active set.
 */
export const setState = RedisScript.make({
  name: "sgTraceSetState",
  numberOfKeys: 2,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local current = redis.call('HGET', KEYS[1], 'state')
if current == 'COMPLETED' or current == 'ERRORED' then return {'terminal', current} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'updated_at', ARGV[3])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[4] ~= '' then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('SREM', KEYS[2], ARGV[1])
end
return {'ok'}
`,
  reply: Schema.Union(
    Schema.Tuple(Schema.Literal("ok")),
    Schema.Tuple(Schema.Literal("missing")),
    Schema.Tuple(Schema.Literal("terminal"), Schema.String)
  )
})

/**
 * KEYS: active set. ARGV: SSCAN cursor, COUNT, the prefix of trace keys (`sg:trace:`). One SSCAN step, then each id's
 * `state` and `created_at`: returns the next cursor, then per id its id, state and created_at (nil when absent).
 * Reads only; a batch of 500 runs in about a millisecond.
 */
export const sweepRead = RedisScript.make({
  name: "sgTraceSweepRead",
  numberOfKeys: 1,
  lua: `
local scan = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local rows = {scan[1]}
for _, id in ipairs(scan[2]) do
  local fields = redis.call('HMGET', ARGV[3] .. id, 'state', 'created_at')
  rows[#rows + 1] = id
  rows[#rows + 1] = fields[1]
  rows[#rows + 1] = fields[2]
end
return rows
`,
  reply: Schema.Array(Schema.NullOr(Schema.String))
})

/**
 * KEYS: active set, lease key, lease epoch key. ARGV: "1" when fenced, lease token, lease epoch, now, terminal TTL,
 * then per candidate its hash key, its id and the `created_at` the batch read saw ("" when the hash looked gone).
 * Fenced and the lease is not ours at that epoch: writes nothing. Else per candidate, re-read and decide:
 * hash gone → SREM (1); gone at read but back now without created_at → unreadable (3); still in flight with the
 * same created_at → ERRORED, error orphaned, updated_at, EXPIRE, SREM (2); anything else → left alone (0).
 */
export const sweepDecide = RedisScript.make({
  name: "sgTraceSweepDecide",
  numberOfKeys: 3,
  lua: `
if ARGV[1] == '1' then
  local holder = redis.call('GET', KEYS[2])
  local epoch = redis.call('GET', KEYS[3])
  if holder ~= ARGV[2] or epoch ~= ARGV[3] then return {'lease_lost', holder, epoch} end
end
local decisions = {'ok'}
for i = 6, #ARGV, 3 do
  local key, id, seen = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local decision = 0
  if redis.call('EXISTS', key) == 0 then
    redis.call('SREM', KEYS[1], id)
    decision = 1
  elseif seen == '' then
    if not redis.call('HGET', key, 'created_at') then decision = 3 end
  else
    local state = redis.call('HGET', key, 'state')
    if state ~= 'COMPLETED' and state ~= 'ERRORED' and redis.call('HGET', key, 'created_at') == seen then
      redis.call('HSET', key, 'state', 'ERRORED', 'error', 'orphaned', 'updated_at', ARGV[4])
      redis.call('EXPIRE', key, ARGV[5])
      redis.call('SREM', KEYS[1], id)
      decision = 2
    end
  end
  decisions[#decisions + 1] = decision
end
return decisions
`,
  reply: Schema.Union(
    Schema.Tuple([Schema.Literal("ok")], Schema.Number),
    Schema.Tuple(Schema.Literal("lease_lost"), Schema.NullOr(Schema.String), Schema.NullOr(Schema.String))
  )
})

/**
 * KEYS: trace hash. ARGV: how many reserved names follow (n), the n names, then field/value pairs. Caller fields on
 * an existing trace: refuses a gone trace (returns 0, and creates no hash); else HSETs every pair whose name is not
 * reserved (returns 1), so the store's own fields are never overwritten, whatever the caller sends.
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
  if not reserved[ARGV[i]] then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
`,
  reply: Schema.Literal(0, 1)
})
