-- Deletes every agent's health points taken before ARGV[2] (ms); an agent left without
-- points leaves the index. Reply: {'ok', count}.
local before = ARGV[2]
local pruned = 0
for _, id in ipairs(redis.call('SMEMBERS', key('hl'))) do
  local hk = key('hl', id)
  pruned = pruned + redis.call('ZREMRANGEBYSCORE', hk, '-inf', '(' .. before)
  if redis.call('ZCARD', hk) == 0 then
    redis.call('SREM', key('hl'), id)
  end
end
return { 'ok', pruned }
