-- renew: extend a held lease; the first renewal of a handed-over grant
-- also takes it up (clears its notice or claim).
-- KEYS and ARGV[1..6]: see common.lua. ARGV[7] token, ARGV[8] lease ms.
-- Returns {lease_ms, fence}: the new lease and the fencing token of the
-- grant it renewed, or {0, 0} when the lease had expired or the token
-- holds no slot (the holder has lost it and must stop).
local token, lease = ARGV[7], tonumber(ARGV[8])
local now = now_ms()
local exp = redis.call('ZSCORE', KEYS[2], token)
if not exp or tonumber(exp) <= now then return {0, 0} end
redis.call('ZADD', KEYS[2], 'XX', int(now + lease), token)
if is_ticket(token) then
  redis.call('ZREM', KEYS[7], token)
else
  redis.call('ZREM', KEYS[6], token)
end
return {lease, fence_of(token)}
