-- poll: one process's heartbeat and safety net, at a cost that does not
-- grow with its number of waiters.
-- KEYS: see common.lua. ARGV[3] waiter TTL ms, ARGV[4] process ID.
-- Reaps, promotes, keeps the process alive, and returns
-- {next_expiry, since, token1, fence1, lease1, ...}: since is the process's
-- incarnation (its waiters queued under an older one may have been dropped
-- and must queue again), and the triples are the grants handed to this
-- process's waiters that none of them has taken up yet, and its rejections
-- (fence and lease 0), whose Pub/Sub message may have been lost. A
-- rejection is reported once.
local now = now_ms()
local proc = ARGV[4]
limit_of()
reap(now)
local since = heartbeat(proc, now, tonumber(ARGV[3]))
promote(now)
local out = {next_expiry(now), since}
for _, token in ipairs(redis.call('ZRANGEBYLEX', KEYS[6], '[' .. proc .. '.', '(' .. proc .. '/')) do
  local held = holder_reply(token, now)
  if held then
    out[#out + 1] = token
    out[#out + 1] = held[2]
    out[#out + 1] = held[3]
  else
    redis.call('ZREM', KEYS[6], token)
    local v = redis.call('HGET', KEYS[4], token)
    local fence = v and select(2, parse(v))
    if fence == 0 and not redis.call('ZSCORE', KEYS[2], token) then
      redis.call('HDEL', KEYS[4], token)
      out[#out + 1] = token
      out[#out + 1] = 0
      out[#out + 1] = 0
    end
  end
end
return out
