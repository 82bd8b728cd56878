-- Deletes up to ARGV[3] succeeded and cancelled tasks last updated before ARGV[2] (ms),
-- with every index entry. Reply: {'ok', count}.
local before, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local pruned = 0
for _, state in ipairs({ 'succeeded', 'cancelled' }) do
  if pruned >= limit then
    break
  end
  local ids = redis.call('ZRANGEBYSCORE', key('done', state), '-inf', '(' .. before,
    'LIMIT', 0, limit - pruned)
  for _, id in ipairs(ids) do
    local v = redis.call('HMGET', key('t', id), 'a', 'x', 'd')
    redis.call('ZREM', key('done', state), id)
    redis.call('ZREM', key('tasks'), id)
    if v[1] then
      redis.call('ZREM', key('ta', v[1]), id)
    end
    if v[2] then
      redis.call('ZREM', key('tx', v[2]), id)
    end
    if v[3] then
      redis.call('ZREM', key('td', v[3]), id)
    end
    redis.call('DEL', key('t', id))
    pruned = pruned + 1
  end
end
return { 'ok', pruned }
