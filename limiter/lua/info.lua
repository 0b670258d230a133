-- info: the whole state in one round trip, without changing it.
-- KEYS and ARGV[1..6]: see common.lua.
-- Returns {limit, used, fence, waiting, tickets, token1, weight1, fence1,
-- lease_ms1, label1, ...} for live holders; expired ones are left out
-- and not counted. waiting counts queued tickets and the queued live
-- waiters of processes that still heartbeat, as a "try" would see them.
local v = redis.call('HMGET', KEYS[1], 'limit', 'fence', 'nt')
local limit = tonumber(v[1] or redis.call('GET', KEYS[8]) or ARGV[2])
local out = {limit, 0, tonumber(v[2] or '0'), 0, tonumber(v[3] or '0')}
if not v[1] then return out end
local now = now_ms()
local live = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. int(now), '+inf')
local waiting = out[5]
if #live > 0 then
  local fields = {}
  for i, p in ipairs(live) do fields[i] = 'c:' .. p end
  for _, c in ipairs(redis.call('HMGET', KEYS[1], unpack(fields))) do
    waiting = waiting + math.max(0, tonumber(c or '0'))
  end
end
out[4] = waiting
local used = 0
local hs = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. int(now), '+inf', 'WITHSCORES')
for i = 1, #hs, 2 do
  local token = hs[i]
  local r = redis.call('HMGET', KEYS[4], token, token .. '#')
  local label = ''
  if r[1] then label = select(5, parse(r[1])) end
  local w = weight_of(token)
  used = used + w
  out[#out + 1] = token
  out[#out + 1] = w
  out[#out + 1] = tonumber(r[2] or '0')
  out[#out + 1] = tonumber(hs[i + 1]) - now
  out[#out + 1] = label
end
out[2] = used
return out
