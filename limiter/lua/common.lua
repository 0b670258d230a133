-- Shared by every script; prepended to each of them when they are loaded.
--
-- KEYS[1] holders  ZSET  token -> lease expiry (ms, Redis server time)
-- KEYS[2] queue    ZSET  token -> arrival sequence (FIFO order)
-- KEYS[3] procs    ZSET  process -> heartbeat expiry (ms); a queued waiter
--                        lives while its process (the token's prefix before
--                        the first '.') heartbeats
-- KEYS[4] data     HASH  token -> "weight:fence:label" (fence 0 while queued)
-- KEYS[5] state    HASH  limit, used, fence, seq, and since:<process> for
--                        each process with a heartbeat entry (its
--                        incarnation: see heartbeat)
-- KEYS[6] fresh    ZSET  handed-over grants not yet taken up by their
--                        waiter, and rejections (data fence 0, not queued)
--                        not yet seen by it, all scored 0 so that a process
--                        finds its own by prefix (ZRANGEBYLEX)
-- ARGV[1] channel on which grants are published
-- ARGV[2] limit to store when none is stored yet

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function int(x)
  return string.format('%d', x)
end

local function parse(v)
  local w, f, label = string.match(v, '^(%d+):(%d+):(.*)$')
  return tonumber(w), tonumber(f), label
end

local function proc_of(token)
  return string.match(token, '^([^.]*)%.') or token
end

local function limit_of()
  local l = redis.call('HGET', KEYS[5], 'limit')
  if not l then
    redis.call('HSET', KEYS[5], 'limit', ARGV[2])
    l = ARGV[2]
  end
  return tonumber(l)
end

local function used_of()
  return tonumber(redis.call('HGET', KEYS[5], 'used') or '0')
end

-- drop_holder removes one holder and returns its weight (0 if absent).
local function drop_holder(token)
  local v = redis.call('HGET', KEYS[4], token)
  redis.call('ZREM', KEYS[1], token)
  redis.call('ZREM', KEYS[6], token)
  redis.call('HDEL', KEYS[4], token)
  if not v then return 0 end
  local w = parse(v)
  return w
end

local function drop_waiter(token)
  redis.call('ZREM', KEYS[2], token)
  redis.call('HDEL', KEYS[4], token)
end

-- earliest returns the lowest score of a ZSET, or nil when it is empty.
local function earliest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 then return nil end
  return tonumber(first[2])
end

-- reap removes holders whose lease expired and keeps the stored usage equal
-- to the live holders' weight. It costs one lookup when nothing expired, and
-- returns true when it changed the usage.
local function reap(now)
  local first = earliest(KEYS[1])
  if not first or first > now then return false end
  local used = used_of()
  for _, token in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now))) do
    used = used - drop_holder(token)
  end
  if used < 0 then used = 0 end
  redis.call('HSET', KEYS[5], 'used', int(used))
  return true
end

-- reap_procs removes processes that stopped heartbeating, with their queued
-- waiters. Only a non-empty queue needs it; a dead process is rare, and
-- finding its waiters costs one pass over the queue.
local function reap_procs(now)
  local first = earliest(KEYS[3])
  if not first or first > now then return end
  local dead = {}
  for _, p in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', int(now))) do
    dead[p] = true
    redis.call('ZREM', KEYS[3], p)
    redis.call('HDEL', KEYS[5], 'since:' .. p)
    -- rejections nobody will collect (grants are reaped with their lease)
    for _, token in ipairs(redis.call('ZRANGEBYLEX', KEYS[6], '[' .. p .. '.', '(' .. p .. '/')) do
      if not redis.call('ZSCORE', KEYS[1], token) then
        redis.call('ZREM', KEYS[6], token)
        redis.call('HDEL', KEYS[4], token)
      end
    end
  end
  for _, token in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if dead[proc_of(token)] then drop_waiter(token) end
  end
end

-- promote grants slots to the head of the queue, in order, while the head
-- fits. A head that does not fit stops the pass, so a large waiter is never
-- overtaken by smaller ones behind it. A head heavier than the whole limit
-- can never fit and is rejected: published with fence 0, and kept in fresh
-- (with data fence 0) until its process has seen it. Each grant is
-- published as "token:fence:lease_ms" and kept in fresh until its waiter
-- takes it up; its lease runs only until its process's heartbeat expiry, and
-- the waiter extends it when it takes the grant, so a grant to a process
-- that died blocks the slot no longer than a waiter TTL.
local function promote(now)
  if redis.call('ZCARD', KEYS[2]) == 0 then return end
  reap_procs(now)
  local limit = limit_of()
  local used = used_of()
  local before = used
  local out = {}
  while true do
    local head = redis.call('ZRANGE', KEYS[2], 0, 0)
    if #head == 0 then break end
    local token = head[1]
    local v = redis.call('HGET', KEYS[4], token)
    local exp = tonumber(redis.call('ZSCORE', KEYS[3], proc_of(token)) or '0')
    if not v or exp <= now then
      drop_waiter(token)
    else
      local w, _, label = parse(v)
      if w > limit then
        redis.call('ZREM', KEYS[2], token)
        redis.call('HSET', KEYS[4], token, int(w) .. ':0:' .. label)
        redis.call('ZADD', KEYS[6], 0, token)
        out[#out + 1] = token .. ':0:0'
      elseif used + w > limit then
        break
      else
        redis.call('ZREM', KEYS[2], token)
        local fence = redis.call('HINCRBY', KEYS[5], 'fence', 1)
        used = used + w
        redis.call('ZADD', KEYS[1], int(exp), token)
        redis.call('ZADD', KEYS[6], 0, token)
        redis.call('HSET', KEYS[4], token, int(w) .. ':' .. int(fence) .. ':' .. label)
        out[#out + 1] = token .. ':' .. int(fence) .. ':' .. int(exp - now)
      end
    end
  end
  if used ~= before then
    redis.call('HSET', KEYS[5], 'used', int(used))
  end
  if #out > 0 then
    redis.call('PUBLISH', ARGV[1], table.concat(out, ' '))
  end
end

-- next_expiry returns the milliseconds until the earliest lease expires, or -1.
local function next_expiry(now)
  local first = earliest(KEYS[1])
  if not first then return -1 end
  return first - now
end

-- holder_reply returns {1, fence, lease_ms} when token holds a slot, or nil.
local function holder_reply(token, now)
  local exp = redis.call('ZSCORE', KEYS[1], token)
  if not exp then return nil end
  local _, fence = parse(redis.call('HGET', KEYS[4], token))
  return {1, fence, tonumber(exp) - now}
end

-- heartbeat keeps proc alive for ttl ms and returns its incarnation: the
-- time (ms) at which its current run of live heartbeats began. A process
-- whose heartbeat lapsed may have had its waiters dropped; its next
-- heartbeat starts a new incarnation, and its waiters that queued under an
-- older one must queue again.
local function heartbeat(proc, now, ttl)
  local old = redis.call('ZSCORE', KEYS[3], proc)
  redis.call('ZADD', KEYS[3], int(now + ttl), proc)
  local field = 'since:' .. proc
  local since = redis.call('HGET', KEYS[5], field)
  if not since or not old or tonumber(old) <= now then
    since = int(now)
    redis.call('HSET', KEYS[5], field, since)
  end
  return tonumber(since)
end
