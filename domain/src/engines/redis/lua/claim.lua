local jp, group, consumer = ARGV[1], ARGV[2], ARGV[3]
local max, lease_until, now = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  if redis.call('EXISTS', jp .. id) == 1 then
    local entry = redis.call('XADD', KEYS[1], '*', 'job', id)
    redis.call('HSET', jp .. id, 'entry', entry)
  end
end
local out = {}
local function take(id, entry)
  local job = jp .. id
  local f = redis.call('HMGET', job, 'entry', 'team', 'flow', 'body', 'request', 'mode')
  if f[1] ~= entry then
    redis.call('XACK', KEYS[1], group, entry)
    redis.call('XDEL', KEYS[1], entry)
    redis.call('ZREM', KEYS[3], id)
    return
  end
  local attempts = redis.call('HINCRBY', job, 'attempts', 1)
  redis.call('ZADD', KEYS[3], lease_until, id)
  table.insert(out, {id, f[2], f[3], f[4], f[5] or '', attempts, f[6] or 'replace'})
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. now, 'LIMIT', 0, max)
for _, id in ipairs(expired) do
  local entry = redis.call('HGET', jp .. id, 'entry')
  if entry then
    redis.call('XCLAIM', KEYS[1], group, consumer, 0, entry, 'JUSTID')
    take(id, entry)
  else
    redis.call('ZREM', KEYS[3], id)
  end
end
local room = max - #out
if room > 0 then
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', room,
    'STREAMS', KEYS[1], '>')
  if read then
    for _, e in ipairs(read[1][2]) do
      take(e[2][2], e[1])
    end
  end
end
return out
