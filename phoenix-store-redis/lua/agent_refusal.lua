-- Counts one refused report of agent ARGV[2]: the count `rfc` goes up by one, the last
-- reason `rfr` becomes ARGV[3] and its time `rfa` ARGV[4] (JSON).
-- Reply: {'ok', new count} | {'not_found'}.
local ak = key('ag', ARGV[2])
local status = redis.call('HGET', ak, 'st')
if not status then
  return { 'not_found' }
end
local count = redis.call('HINCRBY', ak, 'rfc', 1)
redis.call('HSET', ak, 'rfr', ARGV[3], 'rfa', ARGV[4])
emit('G ' .. ARGV[2] .. ' ' .. status)
flush()
return { 'ok', count }
