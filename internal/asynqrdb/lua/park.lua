-- park: move a task that a worker holds (active) to the retry set, due at
-- ARGV[2] or at the task's own deadline when that comes first (asynq then
-- handles the past deadline when the task comes back), showing ARGV[3] as
-- its last error, without spending a retry.
-- The error is an encoded TaskMessage field 7 (error_msg) appended to the
-- stored message: a decoder keeps the last value of a field, so the task
-- reads as before but for that message. The appended bytes are kept in the
-- hash's "slotguard" field, which marks the task as parked, so that
-- unpark and wake can take them off again.
-- KEYS[1] asynq:{q}:t:<id>  KEYS[2] asynq:{q}:active  KEYS[3] asynq:{q}:lease
-- KEYS[4] asynq:{q}:retry
-- ARGV[1] the task ID, ARGV[2] due (Unix seconds), ARGV[3] the field
-- Returns 1 when parked, 2 when it was parked already (a call sent again
-- after a lost reply), 0 when the task is not active (nothing changed).
-- deadline reads field 9 (deadline, Unix seconds) of an encoded
-- TaskMessage: 0 when it is unset or the message cannot be read.
local function deadline(msg)
  local i, n, d = 1, #msg, 0
  local function varint()
    local v, mul = 0, 1
    while i <= n do
      local b = string.byte(msg, i)
      i = i + 1
      v = v + (b % 128) * mul
      if b < 128 then return v end
      mul = mul * 128
    end
    return nil
  end
  while i <= n do
    local tag = varint()
    if not tag then return 0 end
    local field, wire = math.floor(tag / 8), tag % 8
    if wire == 0 then
      local v = varint()
      if not v then return 0 end
      if field == 9 then d = v end
    elseif wire == 2 then
      local len = varint()
      if not len then return 0 end
      i = i + len
    elseif wire == 1 then i = i + 8
    elseif wire == 5 then i = i + 4
    else return 0 end
  end
  return d
end

local v = redis.call('HMGET', KEYS[1], 'msg', 'slotguard')
if not v[1] then return 0 end
if v[2] and redis.call('ZSCORE', KEYS[4], ARGV[1]) then return 2 end
if redis.call('LREM', KEYS[2], 0, ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
local msg = v[1]
if v[2] and string.sub(msg, -#v[2]) == v[2] then
  msg = string.sub(msg, 1, #msg - #v[2])
end
local due = tonumber(ARGV[2])
local d = deadline(msg)
if d > 0 and d < due then due = d end
redis.call('ZADD', KEYS[4], due, ARGV[1])
redis.call('HSET', KEYS[1], 'msg', msg .. ARGV[3], 'state', 'retry', 'slotguard', ARGV[3])
redis.call('HDEL', KEYS[1], 'slotguard_run') -- its next run has not started
return 1
