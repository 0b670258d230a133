-- setlimit: store a new limit for every process and grant to waiters that
-- now fit. The limit is also kept in KEYS[8], which outlives idleness.
-- KEYS and ARGV[1..6]: see common.lua. ARGV[7] the new limit.
-- Held permits are never revoked: after lowering, new grants wait until
-- usage falls below the new limit. Returns {previous limit, 0, 0, 0}
-- followed by the grants this call made (see finish).
load_state()
local old = st.limit
redis.call('SET', KEYS[8], ARGV[7])
set('limit', tonumber(ARGV[7]))
reap(now_ms())
promote()
return finish({old, 0, 0, 0})
