-- renew: extend a held lease; the first renewal of a handed-over grant also
-- takes it up.
-- KEYS: see common.lua. ARGV[3] token, ARGV[4] lease ms.
-- Returns {lease_ms, fence}: the new lease and the fencing token of the
-- grant it renewed, or {0, 0} when the lease had already expired or the
-- token holds no slot (the holder has lost it and must stop).
local now = now_ms()
local token, lease = ARGV[3], tonumber(ARGV[4])
local exp = redis.call('ZSCORE', KEYS[1], token)
if not exp then return {0, 0} end
if tonumber(exp) <= now then
  limit_of()
  reap(now)
  promote(now)
  return {0, 0}
end
redis.call('ZADD', KEYS[1], 'XX', int(now + lease), token)
redis.call('ZREM', KEYS[6], token)
local _, fence = parse(redis.call('HGET', KEYS[4], token) or '1:0:')
return {lease, fence}
