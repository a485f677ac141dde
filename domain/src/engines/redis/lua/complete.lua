local jp, group, now = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HMGET', jp .. id, 'entry', 'idem')
  if f[1] then
    redis.call('XACK', KEYS[1], group, f[1])
    redis.call('XDEL', KEYS[1], f[1])
  end
  if f[2] then
    redis.call('ZADD', KEYS[3], now, f[2])
  end
  redis.call('ZREM', KEYS[2], id)
  redis.call('DEL', jp .. id)
end
return #ARGV - 3
