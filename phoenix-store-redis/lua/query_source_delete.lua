-- Removes query source ARGV[2] (see query_source_put.lua). Reply: {'ok'} | {'not_found'}.
local qk = key('qs', ARGV[2])
local name = redis.call('HGET', qk, 'n')
if not name then
  return { 'not_found' }
end
redis.call('HDEL', key('qsn'), name)
redis.call('ZREM', key('qss'), ARGV[2])
redis.call('DEL', qk)
return { 'ok' }
