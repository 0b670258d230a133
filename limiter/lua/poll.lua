-- poll: the safety net and heartbeat for one process's waiters.
-- KEYS: see common.lua. ARGV[3] waiter TTL ms, ARGV[4..] waiting tokens.
-- Reaps, promotes, refreshes each waiter's expiry, and returns
-- {next_expiry, s1, f1, l1, s2, f2, l2, ...} with one triple per token:
-- s = 1 granted (fence f, lease l ms), 0 still waiting, -1 unknown (expired
-- from the queue; the caller queues it again).
local now = now_ms()
limit_of()
reap(now)
promote(now)
local ttl = tonumber(ARGV[3])
local out = {next_expiry(now)}
for i = 4, #ARGV do
  local token = ARGV[i]
  local held = holder_reply(token, now)
  if held then
    out[#out + 1] = 1
    out[#out + 1] = held[2]
    out[#out + 1] = held[3]
  elseif redis.call('ZSCORE', KEYS[2], token) then
    redis.call('ZADD', KEYS[3], 'XX', int(now + ttl), token)
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
  else
    out[#out + 1] = -1
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
