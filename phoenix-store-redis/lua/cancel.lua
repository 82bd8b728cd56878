-- Cancels every open task in owner index ARGV[2] (a key suffix such as `tx:<id>`, or
-- `open` for every open task) that passes the filters packed from ARGV[3] in field/values
-- pairs. Reply: {'ok', count}.
local now = clock()
local ids
if ARGV[2] == 'open' then
  ids = redis.call('ZRANGE', key('pending'), 0, -1)
  for _, id in ipairs(redis.call('ZRANGE', key('leases'), 0, -1)) do
    ids[#ids + 1] = id
  end
else
  ids = redis.call('ZRANGE', key(ARGV[2]), 0, -1)
end
local cancelled = 0
for _, id in ipairs(ids) do
  local t = load_task(id)
  if t and (t.s == 'pending' or t.s == 'leased') and matches(key('t', id), 3) then
    move_task(t, 'cancelled', now, now)
    cancelled = cancelled + 1
  end
end
flush()
return { 'ok', cancelled }
