-- move: send a task that asynq is running back to its queue under a new ID,
-- in one step. Used when asynq's own retry path would archive the task
-- (it has no retries left), so that no retry is spent and nothing is
-- archived. The key layout is asynq v0.26's (internal/base).
--
-- KEYS[1] asynq:{q}:t:<id>        the task's hash
-- KEYS[2] asynq:{q}:active        LIST
-- KEYS[3] asynq:{q}:lease         ZSET
-- KEYS[4] asynq:{q}:scheduled     ZSET
-- KEYS[5] asynq:{q}:t:<new id>    the new hash
-- KEYS[6] <prefix>:requeues:{q}:<id>      the old requeue counter
-- KEYS[7] <prefix>:requeues:{q}:<new id>  the new requeue counter
-- KEYS[8] the task's uniqueness lock (optional)
-- ARGV[1] id, ARGV[2] new id, ARGV[3] the msg the worker read,
-- ARGV[4] the new msg, ARGV[5] process-at Unix seconds,
-- ARGV[6] requeue count, ARGV[7] counter TTL ms
-- Returns 1 when moved (also when a retried call finds it moved already),
-- -1 when the stored msg changed, -2 when the task is no longer active.
if redis.call('EXISTS', KEYS[5]) == 1 then
  return 1
end
if redis.call('HGET', KEYS[1], 'msg') ~= ARGV[3] then
  return -1
end
if redis.call('LREM', KEYS[2], 0, ARGV[1]) == 0 then
  return -2
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[5], 'msg', ARGV[4], 'state', 'scheduled')
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
redis.call('DEL', KEYS[6])
redis.call('SET', KEYS[7], ARGV[6], 'PX', ARGV[7])
if KEYS[8] and redis.call('GET', KEYS[8]) == ARGV[1] then
  local ttl = redis.call('PTTL', KEYS[8])
  if ttl > 0 then
    redis.call('SET', KEYS[8], ARGV[2], 'PX', ttl)
  else
    redis.call('SET', KEYS[8], ARGV[2])
  end
end
return 1
