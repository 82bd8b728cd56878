-- Marks agent ARGV[2] lost if it is not already and its last heartbeat is still ARGV[3].
-- Reply: {'ok', 1 changed | 0 unchanged} | {'not_found'}.
local ak = key('ag', ARGV[2])
local v = redis.call('HMGET', ak, 'st', 'hb')
if not v[1] then
  return { 'not_found' }
end
if v[1] == 'lost' or v[2] ~= ARGV[3] then
  return { 'ok', 0 }
end
redis.call('HSET', ak, 'st', 'lost')
emit('G ' .. ARGV[2] .. ' lost')
flush()
return { 'ok', 1 }
