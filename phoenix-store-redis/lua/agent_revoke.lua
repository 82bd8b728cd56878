-- Revokes agent ARGV[2] (idempotent). Reply: {'ok'} | {'not_found'}.
local ak = key('ag', ARGV[2])
local status = redis.call('HGET', ak, 'st')
if not status then
  return { 'not_found' }
end
redis.call('HSET', ak, 'rev', '1')
emit('G ' .. ARGV[2] .. ' ' .. status)
flush()
return { 'ok' }
