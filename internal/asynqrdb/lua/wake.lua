-- wake: put a parked task at the head of its queue, so that the next free
-- worker runs it, and say so on a Pub/Sub channel for idle workers.
-- KEYS[1] asynq:{q}:t:<id>  KEYS[2] asynq:{q}:retry  KEYS[3] asynq:{q}:pending
-- ARGV[1] the task ID, ARGV[2] now (Unix ns), ARGV[3] the channel,
-- ARGV[4] the message (the queue's name)
-- Returns 1 when woken, 2 when the task is pending or active already (it
-- runs soon), 0 when it is gone or in another state.
local v = redis.call('HMGET', KEYS[1], 'msg', 'slotguard', 'state')
if not v[1] then return 0 end
if v[2] and redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  local msg = v[1]
  if string.sub(msg, -#v[2]) == v[2] then msg = string.sub(msg, 1, #msg - #v[2]) end
  redis.call('RPUSH', KEYS[3], ARGV[1])
  redis.call('HSET', KEYS[1], 'msg', msg, 'state', 'pending', 'pending_since', ARGV[2])
  redis.call('HDEL', KEYS[1], 'slotguard')
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
if v[3] == 'pending' or v[3] == 'active' then return 2 end
return 0
