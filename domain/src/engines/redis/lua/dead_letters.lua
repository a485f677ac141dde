local jp, team, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local from = '+'
while #out < limit do
  local page = redis.call('XREVRANGE', KEYS[1], from, '-', 'COUNT', 500)
  if #page == 0 then break end
  for _, e in ipairs(page) do
    local id, owner = e[2][2], e[2][4]
    if (team == '' or team == owner) and #out < limit then
      local f = redis.call('HMGET', jp .. id, 'team', 'flow', 'version', 'attempts',
        'last_error', 'request', 'enqueued', 'died')
      if f[1] then
        table.insert(out, {id, f[1], f[2], f[3], f[4], f[5] or '', f[6] or '', f[7],
          f[8] or ''})
      end
    end
    from = '(' .. e[1]
  end
end
return out
