-- acquire: take a slot now, or join the queue.
-- KEYS and ARGV[1..6]: see common.lua.
-- ARGV[7] token, ARGV[8] mode, ARGV[9] lease ms, ARGV[10] label,
-- ARGV[11] waiter TTL ms when the caller's process needs a heartbeat,
-- else 0, ARGV[12] ticket: catch ms, ARGV[13] ticket: payload,
-- ARGV[14] "hint" to be told when the earliest lease expires.
-- Modes: "try" takes a slot only if one is free and nobody is queued;
-- "check" says whether "try" would, changing nothing but dropping dead
-- waiters; "wait" queues a live waiter, "ticket" a ticket (caught by the
-- caller for catch ms).
--
-- Returns {status, a, b, c} followed by the grants this call made (see
-- finish):
--   {1, fence, lease_ms, t}  granted; also when token already held a slot
--                            (a retried call), and a ticket's grant is
--                            then redeemed: taken up for a full lease; t
--                            is 1 when no notice or claim of the grant is
--                            left (it needs no taking up)
--   {0, fence, born, hint}   not granted (queued in "wait" and "ticket"
--                            modes): fence is the last one issued, born
--                            the fence floor of this state, hint the ms
--                            until the earliest lease expires (-1: none,
--                            or not asked for)
--   {-1, limit, 0, 0}        the weight is above the limit (a rejection
--                            notice, which this call clears)
--   {2, fence, born, 0}      "check": a "try" would take a slot
local token, mode = ARGV[7], ARGV[8]
local lease, catch = tonumber(ARGV[9]), tonumber(ARGV[12])
local w = weight_of(token)
if is_ticket(token) then load_state() else load_state({'c:' .. proc_of(token)}) end

local function queued_reply()
  local hint = -1
  if ARGV[14] == 'hint' then
    local first = earliest(KEYS[2])
    if first then hint = first - now_ms() end
  end
  return finish({0, st.fence, st.born, hint})
end

local function catcher()
  if mode == 'ticket' then return ARGV[6], now_ms() + catch end
  return '', 0
end

-- drop_dead_heads drops queued live waiters whose process stopped
-- heartbeating, from the head until a live one.
local function drop_dead_heads()
  local now = now_ms()
  while st.nq > 0 do
    local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    if not head then
      set('nq', 0)
      return
    end
    if is_ticket(head) then return end
    local exp = tonumber(redis.call('ZSCORE', KEYS[5], proc_of(head)) or '0')
    if exp > now then return end
    drop_dead(head, redis.call('HGET', KEYS[4], head), exp > 0)
  end
end

if w > st.limit and redis.call('HEXISTS', KEYS[4], token) == 0 then
  return {-1, st.limit, 0, 0} -- nothing written
end

-- A token seen before: a retried call, a ticket asked for again, or a
-- waiter coming back for its notice.
local cp, cu = catcher()
local fresh = rec('Q', st.seq + 1, cp, cu, ARGV[10], ARGV[13])
if mode == 'check' or redis.call('HSETNX', KEYS[4], token, fresh) == 0 then
  local v = mode ~= 'check' and redis.call('HGET', KEYS[4], token)
  if v then
    local k, seq, _, _, label, payload = parse(v)
    local exp = redis.call('ZSCORE', KEYS[2], token)
    if exp and tonumber(exp) <= now_ms() then
      reap(now_ms()) -- its lease ran out: it holds nothing
      exp = nil
    end
    if exp then
      if mode == 'ticket' then
        redis.call('ZADD', KEYS[2], int(now_ms() + lease), token)
        redis.call('ZREM', KEYS[7], token)
        return finish({1, fence_of(token), lease, 1})
      end
      local taken = 1
      if redis.call('ZSCORE', KEYS[6], token) then taken = 0 end
      return finish({1, fence_of(token), tonumber(exp) - now_ms(), taken})
    end
    if redis.call('ZSCORE', KEYS[3], token) then
      if w > st.limit then
        -- The limit fell below its weight while it waited.
        unqueue(token, true)
        redis.call('HDEL', KEYS[4], token)
        return finish({-1, st.limit, 0, 0})
      end
      if mode == 'ticket' then
        redis.call('HSET', KEYS[4], token, rec('Q', seq, cp, cu, label, payload))
      elseif ARGV[11] ~= '0' then
        heartbeat(proc_of(token), tonumber(ARGV[11]))
      end
      return queued_reply()
    end
    if k == 'R' then
      redis.call('HDEL', KEYS[4], token)
      redis.call('ZREM', KEYS[6], token)
      redis.call('ZREM', KEYS[7], token)
      return finish({-1, st.limit, 0, 0})
    end
    if k == 'D' and (mode == 'wait' or mode == 'ticket') then
      -- Dropped while its process was gone: back to its old place.
      redis.call('ZADD', KEYS[3], seq, token)
      redis.call('HSET', KEYS[4], token, rec('Q', seq, cp, cu, label, payload))
      redis.call('ZREM', KEYS[6], token)
      count(token, 1)
      if ARGV[11] ~= '0' then heartbeat(proc_of(token), tonumber(ARGV[11])) end
      return queued_reply()
    end
    -- A leftover record: start afresh.
    redis.call('HSET', KEYS[4], token, fresh)
    redis.call('ZREM', KEYS[6], token)
  end
end

local function forget()
  if mode ~= 'check' then redis.call('HDEL', KEYS[4], token) end
end

if w > st.limit then
  forget()
  return finish({-1, st.limit, 0, 0})
end
if st.nq > 0 and st.used + w <= st.limit then
  if mode == 'check' or mode == 'try' then
    drop_dead_heads()
  else
    promote()
  end
end
if st.nq == 0 then
  if st.used + w > st.limit then reap(now_ms()) end
  if st.used + w <= st.limit then
    if mode == 'check' then return finish({2, st.fence, st.born, 0}) end
    local fence = next_fence()
    set('used', st.used + w)
    redis.call('ZADD', KEYS[2], int(now_ms() + lease), token)
    redis.call('HSET', KEYS[4], token .. '#', int(fence))
    return finish({1, fence, lease, 1})
  end
end
if mode == 'check' then return finish({0, st.fence, st.born, -1}) end
if mode == 'try' then
  forget()
  return finish({0, st.fence, st.born, -1})
end
set('seq', st.seq + 1)
redis.call('ZADD', KEYS[3], st.seq, token)
count(token, 1)
if mode == 'wait' and ARGV[11] ~= '0' then
  heartbeat(proc_of(token), tonumber(ARGV[11]))
end
return queued_reply()
