-- Deletes experiment ARGV[2] if its version is ARGV[3]: record, events, samples; cancels its
-- open tasks; publishes ARGV[4]. Reply: {'ok'} | {'not_found'} | {'conflict'}.
local now = clock()
local id = ARGV[2]
local ek = key('exp', id)
local stored = redis.call('HMGET', ek, 'v', 'ph')
if not stored[1] then
  return { 'not_found' }
end
if stored[1] ~= ARGV[3] then
  return { 'conflict' }
end
redis.call('DEL', ek, key('ev', id), key('smp', id), key('smpseen', id), key('smprc', id))
redis.call('ZREM', key('exps'), id)
redis.call('ZREM', key('exps', stored[2]), id)
cancel_open('tx:' .. id, now, id, '')
emit(ARGV[4])
flush()
return { 'ok' }
