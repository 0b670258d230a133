-- unpark: give a parked task back to the worker that parked it, which runs
-- it now: from the retry set to active, with a lease, its message as it was.
-- KEYS[1] asynq:{q}:t:<id>  KEYS[2] asynq:{q}:active  KEYS[3] asynq:{q}:lease
-- KEYS[4] asynq:{q}:retry
-- ARGV[1] the task ID, ARGV[2] the lease's expiry (Unix seconds)
-- Returns 1 when unparked, 0 when the task is not parked any more (woken,
-- run from the Inspector, deleted).
local v = redis.call('HMGET', KEYS[1], 'msg', 'slotguard')
if not v[2] or redis.call('ZREM', KEYS[4], ARGV[1]) == 0 then return 0 end
local msg = v[1]
if string.sub(msg, -#v[2]) == v[2] then msg = string.sub(msg, 1, #msg - #v[2]) end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], 'msg', msg, 'state', 'active')
redis.call('HDEL', KEYS[1], 'slotguard')
return 1
