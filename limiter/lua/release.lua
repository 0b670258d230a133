-- release: give back a held slot, leave the queue, or clear a notice.
-- KEYS and ARGV[1..6]: see common.lua. ARGV[7] token, ARGV[8] "1" when the
-- token's grant was taken up (no notice or claim of it is left).
-- Returns {status, born, nt, claim} followed by the grants this call made
-- (see finish): status 1 when token held a slot, 0 when it was queued or
-- had a notice, -1 when it was none of these (its lease had expired and was
-- reaped, or a call before this one released it). born, the fence floor
-- of this state, tells the caller whether the state was lost since its
-- grant. nt is the number of queued tickets and claim the ms until the
-- earliest ticket grant may be taken on (-1: none), so that a caller that
-- handles tickets polls while there are any, as after poll.lua. claim is
-- looked up only when no ticket is queued (with one queued the caller
-- polls, and the poll reports claims) on a semaphore that has had tickets,
-- so that a semaphore without tickets pays nothing for it.
local token = ARGV[7]
local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
local extra = {}
if head and not is_ticket(head) then extra[1] = 'c:' .. proc_of(head) end
if not is_ticket(token) then extra[#extra + 1] = 'c:' .. proc_of(token) end
load_state(extra)
local status = -1
if drop_holder(token, ARGV[8] == '1') then
  status = 1
elseif redis.call('HEXISTS', KEYS[4], token) == 1 then
  status = 0
  if redis.call('ZREM', KEYS[3], token) == 1 then
    count(token, -1, true)
    if token == head then head = nil end
  end
  redis.call('HDEL', KEYS[4], token, token .. '#')
  redis.call('ZREM', KEYS[6], token)
  redis.call('ZREM', KEYS[7], token)
end
promote(head)
local claim = -1
if st.nt == 0 and st.tk then
  local first = earliest(KEYS[7])
  if first then claim = math.max(0, first - now_ms()) end
end
return finish({status, st.born, st.nt, claim})
