-- recover: put a task back at the head of its queue when the worker that
-- held it died before its handler started, instead of letting asynq's
-- recoverer retry (spending a retry) or archive it.
-- KEYS[1] asynq:{q}:t:<id>  KEYS[2] asynq:{q}:active  KEYS[3] asynq:{q}:lease
-- KEYS[4] asynq:{q}:pending
-- ARGV[1] the task ID, ARGV[2] the retry count of the run its worker held,
-- ARGV[3] now (Unix ns), ARGV[4] now (Unix s)
-- Returns 1 when it put the task back; 0 when the task's handler had
-- started (its "slotguard_run" field holds that retry count), and asynq's
-- rules apply; -1 when there is nothing to do: the task is not active, or
-- its lease has not expired (a worker took it again since the recoverer
-- listed it, or the worker that holds it renewed the lease).
local lease = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not lease or tonumber(lease) >= tonumber(ARGV[4]) then return -1 end
if redis.call('HGET', KEYS[1], 'slotguard_run') == ARGV[2] then return 0 end
if redis.call('LREM', KEYS[2], 0, ARGV[1]) == 0 then return -1 end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'pending', 'pending_since', ARGV[3])
return 1
