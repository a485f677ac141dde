local jp, group, id = ARGV[1], ARGV[2], ARGV[3]
local job = jp .. id
if redis.call('EXISTS', job) == 0 then return 0 end
local f = redis.call('HMGET', job, 'entry', 'team', 'attempts')
-- Fenced by the claim: only the holder of the newest claim sets the job aside (a lapsed
-- lease another worker took over, or a job already set aside, is left as it is).
if not f[1] or f[3] ~= ARGV[7] then return 0 end
redis.call('XACK', KEYS[1], group, f[1])
redis.call('XDEL', KEYS[1], f[1])
redis.call('HDEL', job, 'entry')
redis.call('HSET', job, 'last_error', ARGV[4])
redis.call('ZREM', KEYS[2], id)
if ARGV[5] == 'retry' then
  redis.call('ZADD', KEYS[3], ARGV[6], id)
else
  redis.call('HSET', job, 'died', ARGV[6])
  redis.call('XADD', KEYS[3], '*', 'job', id, 'team', f[2])
end
return 1
