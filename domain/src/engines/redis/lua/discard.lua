local jp, team, only = ARGV[1], ARGV[2], ARGV[3]
local from = '-'
while true do
  local page = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 500)
  if #page == 0 then break end
  for _, e in ipairs(page) do
    local id, owner = e[2][2], e[2][4]
    if id == only and (team == '' or team == owner) then
      redis.call('XDEL', KEYS[1], e[1])
      local idem = redis.call('HGET', jp .. id, 'idem')
      if idem then redis.call('HDEL', KEYS[2], idem) end
      redis.call('DEL', jp .. id)
      return 1
    end
    from = '(' .. e[1]
  end
end
return 0
