-- release: give back a held slot, or leave the queue.
-- KEYS: see common.lua. ARGV[3] token.
-- Returns 1 when token held a slot, 0 when it was waiting, -1 when it was
-- neither (its lease expired, or it was released already).
local now = now_ms()
local token = ARGV[3]
reap(now)
local result = -1
if redis.call('ZSCORE', KEYS[1], token) then
  local used = used_of() - drop_holder(token)
  if used < 0 then used = 0 end
  redis.call('HSET', KEYS[5], 'used', int(used))
  result = 1
elseif redis.call('ZSCORE', KEYS[2], token) then
  drop_waiter(token)
  result = 0
else
  -- a rejection's record, if any
  redis.call('ZREM', KEYS[6], token)
  redis.call('HDEL', KEYS[4], token)
end
promote(now)
return result
