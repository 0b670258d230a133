-- poll: one process's heartbeat and safety net, at a cost that does not
-- grow with its number of waiters.
-- KEYS and ARGV[1..6]: see common.lua. ARGV[7] the waiter TTL ms, ARGV[8]
-- "1" when the caller has live waiters to keep queued (a heartbeat).
-- Reaps expired leases, prunes processes that stopped heartbeating a
-- waiter TTL ago or more (with their notices), hands free slots on, and
-- takes on grants to tickets whose owner did not act on them in time
-- (when the caller handles tickets). Returns
-- {fence, born, expiry, claim, nt, n, token1, fence1, lease1, kind1, ...}
-- followed by the grants this call made or took on (see finish): expiry
-- and claim are the ms until the earliest lease expires and until the
-- earliest ticket grant may be taken on (-1: none), nt the queued
-- tickets, and the n quadruples this process's notices, none of which is
-- forgotten before its waiter has seen it: kind G (a grant not taken up
-- yet), R (a rejection) or D (its waiter was dropped while this process
-- was gone; it must queue again).
local proc, ttl = ARGV[6], tonumber(ARGV[7])
local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
local extra = {}
if head and not is_ticket(head) then extra[1] = 'c:' .. proc_of(head) end
load_state(extra)
local now = now_ms()
if ARGV[8] == '1' then heartbeat(proc, ttl) end
reap(now)

-- Processes gone for a waiter TTL: their notices and counts go.
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', int(now - ttl), 'LIMIT', 0, 16)) do
  redis.call('ZREM', KEYS[5], gone)
  redis.call('HDEL', KEYS[1], 'c:' .. gone)
  if st['c:' .. gone] ~= nil then st['c:' .. gone] = false end
  for _, token in ipairs(redis.call('ZRANGEBYLEX', KEYS[6], '[' .. gone .. '.', '(' .. gone .. '/')) do
    drop_holder(token, false)
    redis.call('ZREM', KEYS[6], token)
    redis.call('HDEL', KEYS[4], token, token .. '#')
  end
end

if head and redis.call('ZSCORE', KEYS[3], head) then promote(head) else promote() end

local out = {st.fence, st.born, -1, -1, st.nt, 0}
local first = earliest(KEYS[2])
if first then out[3] = first - now end
local n = 0
for _, token in ipairs(redis.call('ZRANGEBYLEX', KEYS[6], '[' .. proc .. '.', '(' .. proc .. '/')) do
  local exp = redis.call('ZSCORE', KEYS[2], token)
  if exp then
    out[#out + 1] = token
    out[#out + 1] = fence_of(token)
    out[#out + 1] = tonumber(exp) - now
    out[#out + 1] = 'G'
    n = n + 1
  else
    local v = redis.call('HGET', KEYS[4], token)
    local k = v and parse(v)
    if k == 'R' or k == 'D' then
      out[#out + 1] = token
      out[#out + 1] = 0
      out[#out + 1] = 0
      out[#out + 1] = k
      n = n + 1
    else
      redis.call('ZREM', KEYS[6], token)
    end
  end
end
out[6] = n

if ARGV[5] ~= '0' then
  for _, token in ipairs(redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', int(now), 'LIMIT', 0, 32)) do
    local v = redis.call('HGET', KEYS[4], token)
    local exp = redis.call('ZSCORE', KEYS[2], token)
    if not v then
      redis.call('ZREM', KEYS[7], token)
    else
      local _, _, _, _, _, payload = parse(v)
      redis.call('ZADD', KEYS[7], int(now + tonumber(ARGV[5])), token)
      if exp then
        notify(token, fence_of(token), tonumber(exp) - now, proc, payload)
      else
        notify(token, 0, 0, proc, payload)
      end
    end
  end
end
local claim = redis.call('ZRANGE', KEYS[7], 0, 0, 'WITHSCORES')
if #claim > 0 then out[4] = math.max(0, tonumber(claim[2]) - now) end
return finish(out)
