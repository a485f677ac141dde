local jp, team, only = ARGV[1], ARGV[2], ARGV[3]
local moved = 0
local from = '-'
while true do
  local page = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 500)
  if #page == 0 then break end
  for _, e in ipairs(page) do
    local id, owner = e[2][2], e[2][4]
    if (team == '' or team == owner) and (only == '' or only == id) then
      redis.call('XDEL', KEYS[1], e[1])
      if redis.call('EXISTS', jp .. id) == 1 then
        local entry = redis.call('XADD', KEYS[2], '*', 'job', id)
        redis.call('HSET', jp .. id, 'entry', entry, 'attempts', 0)
        redis.call('HDEL', jp .. id, 'died')
        moved = moved + 1
      end
    end
    from = '(' .. e[1]
  end
end
if moved > 0 then redis.call('PUBLISH', ARGV[4], 'redrive') end
return moved
