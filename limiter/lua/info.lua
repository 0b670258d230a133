-- info: the whole state in one round trip, without changing it.
-- KEYS: see common.lua.
-- Returns {limit, used, fence, waiting, token1, data1, lease_ms1, ...} for
-- live holders; expired ones are left out and not counted. waiting counts
-- the queue, including waiters of a process that died since the last
-- change (they are dropped by the next one).
local now = now_ms()
local limit = tonumber(redis.call('HGET', KEYS[5], 'limit') or ARGV[2])
local fence = tonumber(redis.call('HGET', KEYS[5], 'fence') or '0')
local waiting = redis.call('ZCARD', KEYS[2])
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(now), '+inf', 'WITHSCORES')
local out = {limit, 0, fence, waiting}
local used = 0
for i = 1, #live, 2 do
  local v = redis.call('HGET', KEYS[4], live[i]) or '1:0:'
  used = used + tonumber(string.match(v, '^(%d+):'))
  out[#out + 1] = live[i]
  out[#out + 1] = v
  out[#out + 1] = tonumber(live[i + 1]) - now
end
out[2] = used
return out
