-- setlimit: store a new limit for every process and wake waiters that now fit.
-- KEYS: see common.lua. ARGV[3] new limit.
-- Held permits are never revoked: after lowering, new grants wait until usage
-- falls below the new limit. Returns the previous limit.
local now = now_ms()
local old = limit_of()
redis.call('HSET', KEYS[5], 'limit', ARGV[3])
reap(now)
promote(now)
return old
