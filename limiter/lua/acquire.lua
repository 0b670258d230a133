-- acquire: grant a slot now, or (mode "wait") join the FIFO queue.
-- KEYS: see common.lua.
-- ARGV[3] token, ARGV[4] weight, ARGV[5] lease ms, ARGV[6] mode ("try" or
-- "wait"), ARGV[7] waiter TTL ms, ARGV[8] holder label.
-- Returns {1, fence, lease_ms} when granted (also when token already held a
-- slot, so a retried call after a lost reply is harmless), {0, next_expiry,
-- fence, since} when not granted (queued in "wait" mode, or left in the
-- queue; fence is the last fencing token issued, so any later grant has a
-- greater one; since is the incarnation of the token's process that it is
-- queued under, 0 when not queued), or {-1, limit} when the weight exceeds
-- the limit.
local now = now_ms()
local token, weight, lease = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local st = redis.call('HMGET', KEYS[5], 'limit', 'used')
local limit = tonumber(st[1] or ARGV[2])
if weight > limit and not redis.call('ZSCORE', KEYS[1], token) then
  return {-1, limit}
end
if not st[1] then redis.call('HSET', KEYS[5], 'limit', ARGV[2]) end
local used = tonumber(st[2] or '0')
if reap(now) then used = used_of() end
local held = holder_reply(token, now)
if held then return held end
local queued = redis.call('ZCARD', KEYS[2])
if queued > 0 then
  promote(now)
  held = holder_reply(token, now)
  if held then return held end
  if redis.call('ZSCORE', KEYS[2], token) then
    local since = heartbeat(proc_of(token), now, tonumber(ARGV[7]))
    return {0, next_expiry(now), tonumber(redis.call('HGET', KEYS[5], 'fence') or '0'), since}
  end
  queued = redis.call('ZCARD', KEYS[2])
  used = used_of()
end
if queued == 0 and used + weight <= limit then
  local fence = redis.call('HINCRBY', KEYS[5], 'fence', 1)
  redis.call('HSET', KEYS[5], 'used', int(used + weight))
  redis.call('ZADD', KEYS[1], int(now + lease), token)
  redis.call('HSET', KEYS[4], token, int(weight) .. ':' .. int(fence) .. ':' .. ARGV[8])
  return {1, fence, lease}
end
local since = 0
if ARGV[6] == 'wait' then
  local seq = redis.call('HINCRBY', KEYS[5], 'seq', 1)
  since = heartbeat(proc_of(token), now, tonumber(ARGV[7]))
  redis.call('ZADD', KEYS[2], seq, token)
  redis.call('HSET', KEYS[4], token, int(weight) .. ':0:' .. ARGV[8])
end
return {0, next_expiry(now), tonumber(redis.call('HGET', KEYS[5], 'fence') or '0'), since}
