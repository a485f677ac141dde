local stored = redis.call('HGET', KEYS[1], ARGV[2])
if stored then
  if stored == ARGV[3] then return 1 end
  return 2
end
local id = redis.call('INCR', KEYS[2])
local entry = redis.call('XADD', KEYS[3], '*', 'job', id)
redis.call('HSET', ARGV[1] .. id, 'team', ARGV[4], 'idem', ARGV[2], 'sha', ARGV[3],
  'flow', ARGV[5], 'version', ARGV[6], 'body', ARGV[7], 'request', ARGV[8],
  'enqueued', ARGV[9], 'attempts', 0, 'entry', entry, 'mode', ARGV[11])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[10], id)
return 0
