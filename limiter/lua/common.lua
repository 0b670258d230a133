-- Shared by every script; prepended to each of them when they are loaded.
--
-- KEYS[1] st   HASH  limit, used, fence, seq, nq (queued entries), nt
--                    (queued tickets), born (the fence floor this state
--                    began with), idle (1 or 2 while the keys expire), and
--                    c:<proc> (queued live waiters of a process)
-- KEYS[2] h    ZSET  holder token -> lease expiry (ms, Redis time)
-- KEYS[3] q    ZSET  queued token -> arrival sequence (FIFO order)
-- KEYS[4] d    HASH  token -> record (see rec); token .. '#' -> the fence of
--                    the grant the token holds
-- KEYS[5] p    ZSET  process -> heartbeat expiry (ms); a queued live
--                    waiter lives while its process heartbeats
-- KEYS[6] f    ZSET  notices for live waiters, all scored 0 so that a
--                    process finds its own by name: grants not taken up
--                    yet, rejections and drops not seen yet
-- KEYS[7] w    ZSET  grants to tickets not redeemed yet -> the time (ms)
--                    until which one process is responsible for them
-- KEYS[8] lim  STRING the limit stored by SetLimit; it outlives idleness
--
-- ARGV[1] channel on which grants are published
-- ARGV[2] limit to use when none is stored
-- ARGV[3] idle ms: how long the keys of an unused semaphore are kept
-- ARGV[4] ticket lease ms: how long a grant to a ticket stays reserved
-- ARGV[5] claim ms: how long a process has to act on a ticket's grant; 0
--         when the caller handles no tickets
-- ARGV[6] caller: the calling process
--
-- Tokens end in '.<weight>'. A live waiter's token is '<proc>.<id>.<w>';
-- a ticket's is '@<id>.<w>'. A ticket is a place in the queue that no
-- process keeps alive: it waits until it is granted or cancelled. While
-- a process catches it (waits for it in memory), its grant goes to that
-- process; after that, to whichever process runs the script that grants
-- it, and a process that does not act on it in time loses it to the next
-- poll.
--
-- A record is 'K:seq:cp:cu:ll:' .. label .. payload. K is Q (queued or
-- holding), R (rejected: its weight is above the limit) or D (dropped:
-- its process had stopped heartbeating when it reached the head); seq is
-- its place in the queue; cp and cu are a ticket's catcher and the time
-- (ms) until which it catches; ll is the label's length.

local st = {}  -- the state hash's fields, loaded by load_state
local dirty = {}
local emptied = {} -- process counts that fell to 0: deleted by save
local now_cache, now_us_cache -- the Redis clock, read once per call

local function now_us()
  if not now_us_cache then
    local t = redis.call('TIME')
    now_cache = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    now_us_cache = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return now_us_cache
end

local function now_ms()
  now_us()
  return now_cache
end

local function int(x)
  return string.format('%d', x)
end

local function set(field, value)
  st[field] = value
  dirty[field] = true
end

-- next_fence takes the next fence: one above the last, and at least the
-- Redis clock in microseconds. A state that survived a loss of its last
-- grants (a failover to a replica that missed them, an AOF that lost its
-- last second) so still hands out fences above the lost ones, unless grants
-- outran a million a second.
local function next_fence()
  local fence = math.max(st.fence + 1, now_us())
  set('fence', fence)
  return fence
end

-- load_state reads the state hash, creating it (in memory; save writes
-- it) when it is missing: after idleness, or after Redis lost its data.
-- A new state's fences start above the Redis clock in microseconds, so
-- fences keep rising across such a loss while that clock moves forward.
-- extra names more fields to read.
local function load_state(extra)
  local names = {'limit', 'used', 'fence', 'seq', 'nq', 'nt', 'born', 'idle', 'tk'}
  for _, x in ipairs(extra or {}) do names[#names + 1] = x end
  local v = redis.call('HMGET', KEYS[1], unpack(names))
  for i, name in ipairs(names) do st[name] = v[i] end
  if not st.limit then
    local stored = redis.call('GET', KEYS[8])
    local floor = now_us()
    set('limit', tonumber(stored or ARGV[2]))
    set('used', 0)
    set('fence', floor)
    set('born', floor)
    set('seq', 0)
    set('nq', 0)
    set('nt', 0)
    st.idle = nil
    st.tk = false
    st.new = true
    for i = 10, #names do st[names[i]] = false end
    return
  end
  for i = 1, 7 do
    st[names[i]] = tonumber(st[names[i]] or '0')
  end
end

-- save writes the changed state fields. It sets every key of an unused
-- semaphore (nothing held, nothing queued) to expire after the idle time,
-- and keeps the keys of one in use again. A state that this call created
-- and left unused is not written at all.
local function save()
  local gone = {}
  for field in pairs(emptied) do gone[#gone + 1] = field end
  if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
  local args = {}
  for field in pairs(dirty) do
    local v = st[field]
    if type(v) == 'number' then v = int(v) end
    args[#args + 1] = field
    args[#args + 1] = v
  end
  local idle = st.used == 0 and st.nq == 0
  if idle and st.new and redis.call('EXISTS', KEYS[4], KEYS[5], KEYS[6], KEYS[7]) == 0 then
    return -- nothing to keep
  end
  if idle and not st.idle then
    -- Heartbeats stay: a process that heartbeated lately may queue again
    -- without one.
    local kind = '1'
    if redis.call('EXISTS', KEYS[4], KEYS[5], KEYS[6], KEYS[7]) > 0 then
      kind = '2'
      redis.call('PEXPIRE', KEYS[4], ARGV[3])
      redis.call('PEXPIRE', KEYS[5], ARGV[3])
      redis.call('PEXPIRE', KEYS[6], ARGV[3])
      redis.call('PEXPIRE', KEYS[7], ARGV[3])
    end
    args[#args + 1] = 'idle'
    args[#args + 1] = kind
    redis.call('HSET', KEYS[1], unpack(args))
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return
  end
  if not idle and st.idle then
    redis.call('PERSIST', KEYS[1])
    if st.idle == '2' then
      redis.call('PERSIST', KEYS[4])
      redis.call('PERSIST', KEYS[5])
      redis.call('PERSIST', KEYS[6])
      redis.call('PERSIST', KEYS[7])
    end
    redis.call('HDEL', KEYS[1], 'idle')
  end
  if #args > 0 then
    redis.call('HSET', KEYS[1], unpack(args))
  end
end

local function is_ticket(token)
  return string.byte(token, 1) == 64 -- '@'
end

local function weight_of(token)
  return tonumber(string.match(token, '%.(%d+)$'))
end

local function proc_of(token)
  return string.match(token, '^([^.]*)%.')
end

local function rec(kind, seq, cp, cu, label, payload)
  return kind .. ':' .. int(seq) .. ':' .. cp .. ':' .. int(cu) .. ':' .. int(#label) .. ':' .. label .. payload
end

-- parse returns a record's kind, seq, catcher, catch-until, label and
-- payload.
local function parse(v)
  local k, seq, cp, cu, ll, rest = string.match(v, '^(%a):(%d+):([^:]*):(%d+):(%d+):(.*)$')
  ll = tonumber(ll)
  return k, tonumber(seq), cp, tonumber(cu), string.sub(rest, 1, ll), string.sub(rest, ll + 1)
end

-- fence_of returns the fence of the grant token holds (0 if none known).
local function fence_of(token)
  return tonumber(redis.call('HGET', KEYS[4], token .. '#') or '0')
end

-- count changes the number of queued entries by delta: tickets, or a
-- live waiter's process's. A process's count that load_state read is
-- updated in memory; a dead process's count may have been pruned already
-- (maybe_gone), and is then left alone.
local function count(token, delta, maybe_gone)
  set('nq', st.nq + delta)
  if is_ticket(token) then
    set('nt', st.nt + delta)
    if delta > 0 and not st.tk then set('tk', 1) end -- tickets were used here
    return
  end
  local field = 'c:' .. proc_of(token)
  local cur = st[field]
  if cur == nil then
    if maybe_gone and redis.call('HEXISTS', KEYS[1], field) == 0 then return end
    if redis.call('HINCRBY', KEYS[1], field, delta) <= 0 then
      redis.call('HDEL', KEYS[1], field)
    end
    return
  end
  if not cur then
    if maybe_gone then return end
    cur = 0
  end
  cur = tonumber(cur) + delta
  if cur > 0 then
    set(field, cur)
    emptied[field] = nil
  else
    st[field] = false
    dirty[field] = nil
    emptied[field] = true
  end
end

-- unqueue takes a token out of the queue.
local function unqueue(token, maybe_gone)
  redis.call('ZREM', KEYS[3], token)
  count(token, -1, maybe_gone)
end

-- drop_holder removes a holder and gives back its weight. taken says its
-- grant was taken up (no notice or claim to clear). It returns false when
-- token held nothing.
local function drop_holder(token, taken)
  if redis.call('ZREM', KEYS[2], token) == 0 then return false end
  redis.call('HDEL', KEYS[4], token, token .. '#')
  if taken then
  elseif is_ticket(token) then
    redis.call('ZREM', KEYS[7], token)
  else
    redis.call('ZREM', KEYS[6], token)
  end
  set('used', math.max(0, st.used - weight_of(token)))
  return true
end

-- earliest returns the lowest score of a ZSET, or nil when it is empty.
local function earliest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first == 0 then return nil end
  return tonumber(first[2])
end

-- reap drops holders whose lease expired. It costs one lookup when none
-- did.
local function reap(now)
  local first = earliest(KEYS[2])
  if not first or first > now then return end
  for _, token in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', int(now))) do
    drop_holder(token)
  end
end

-- heartbeat keeps proc's live waiters queued for ttl ms more.
local function heartbeat(proc, ttl)
  redis.call('ZADD', KEYS[5], int(now_ms() + ttl), proc)
end

local grants = {}    -- {token, fence, lease ms, recipient, payload} for the reply
local published = {} -- 'token:fence:lease' for other processes

-- notify records a grant (fence > 0) or a rejection (fence 0) for the
-- reply, and publishes it when another process must act on it.
local function notify(token, fence, lease, recipient, payload)
  grants[#grants + 1] = {token, fence, lease, recipient, payload}
  if recipient ~= '' and recipient ~= ARGV[6] then
    published[#published + 1] = token .. ':' .. int(fence) .. ':' .. int(lease)
  end
end

-- notice keeps a live waiter's grant, rejection or drop in f until its
-- process has seen it.
local function notice(token)
  redis.call('ZADD', KEYS[6], 0, token)
end

-- ticket_owner returns who must act on a ticket's grant, and until when:
-- its catcher while it catches, else the caller, or, when the caller
-- handles no tickets (claim ms 0), the next poll of one that does.
local function ticket_owner(cp, cu, now)
  if cp ~= '' and cu > now then return cp, cu end
  if ARGV[5] == '0' then return '', now end
  return ARGV[6], now + tonumber(ARGV[5])
end

-- drop_dead takes a live waiter whose process stopped heartbeating out of
-- the queue. While its process is still known (known), it leaves a notice
-- in case the process comes back; a pruned process is gone for good.
local function drop_dead(token, v, known)
  unqueue(token, true)
  if v and known then
    local _, seq, cp, cu, label, payload = parse(v)
    redis.call('HSET', KEYS[4], token, rec('D', seq, cp, cu, label, payload))
    notice(token)
  elseif v then
    redis.call('HDEL', KEYS[4], token)
  end
end

-- promote grants slots to the head of the queue (first, when given, is
-- the head already read), in order, while the head
-- fits. A head that does not fit stops the pass, so a large waiter is
-- never overtaken by smaller ones behind it. A live head whose process
-- stopped heartbeating is dropped (with a notice, in case the process
-- comes back), so dropping dead waiters costs one step each, when they
-- reach the head. A head heavier than the whole limit can never fit and
-- is rejected. A live waiter's grant lasts until its process's heartbeat
-- expiry and is kept in f until taken up; a ticket's grant is reserved
-- for the ticket lease and kept in w until redeemed.
local function promote(first)
  if st.nq <= 0 then return end
  local now = now_ms()
  while st.nq > 0 do
    local head = first or redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    first = nil
    if not head then
      set('nq', 0)
      break
    end
    local w = weight_of(head)
    local ticket, exp = is_ticket(head), 0
    local live = ticket
    if not ticket then
      exp = tonumber(redis.call('ZSCORE', KEYS[5], proc_of(head)) or '0')
      live = exp > now
    end
    local v, k, seq, cp, cu, label, payload
    if ticket or not live or w > st.limit then
      v = redis.call('HGET', KEYS[4], head)
      if v then k, seq, cp, cu, label, payload = parse(v) end
    end
    if not live or (ticket and not v) then
      drop_dead(head, v, exp > 0)
    elseif w > st.limit then
      unqueue(head)
      if v then redis.call('HSET', KEYS[4], head, rec('R', seq, cp, cu, label, payload)) end
      if ticket then
        local owner, claim = ticket_owner(cp, cu, now)
        redis.call('ZADD', KEYS[7], int(claim), head)
        notify(head, 0, 0, owner, payload)
      else
        notice(head)
        notify(head, 0, 0, proc_of(head), '')
      end
    elseif st.used + w > st.limit then
      break
    else
      unqueue(head)
      local fence = next_fence()
      set('used', st.used + w)
      redis.call('HSET', KEYS[4], head .. '#', int(fence))
      if ticket then
        local owner, claim = ticket_owner(cp, cu, now)
        exp = now + tonumber(ARGV[4])
        redis.call('ZADD', KEYS[7], int(claim), head)
        redis.call('ZADD', KEYS[2], int(exp), head)
        notify(head, fence, exp - now, owner, payload)
      else
        redis.call('ZADD', KEYS[2], int(exp), head)
        notice(head)
        notify(head, fence, exp - now, proc_of(head), '')
      end
      -- With no room left, the next head waits; one that is dead or too
      -- heavy is dropped by a later pass.
      if st.used >= st.limit then break end
    end
  end
end

-- finish saves the state, publishes grants for other processes and
-- returns the reply: head, then the grants as {token, fence, lease,
-- recipient, payload} quintuples.
local function finish(head)
  save()
  if #published > 0 then
    redis.call('PUBLISH', ARGV[1], table.concat(published, ' '))
  end
  local out = head
  for _, g in ipairs(grants) do
    for _, x in ipairs(g) do out[#out + 1] = x end
  end
  return out
end
