-- Replaces deployment ARGV[2] (record ARGV[3], version ARGV[4]) if its stored version is
-- ARGV[4] - 1, cancels its open tasks when ARGV[5] == '1', and enqueues the tasks packed
-- from ARGV[8] (ARGV[7] of them); publishes ARGV[6].
-- Reply: {'ok', enqueue results} | {'not_found'} | {'conflict'}.
local now = clock()
local id = ARGV[2]
local dk = key('dep', id)
local stored = redis.call('HGET', dk, 'v')
if not stored then
  return { 'not_found' }
end
if tonumber(stored) + 1 ~= tonumber(ARGV[4]) then
  return { 'conflict' }
end
redis.call('HSET', dk, 'j', ARGV[3], 'v', ARGV[4])
emit(ARGV[6])
if ARGV[5] == '1' then
  cancel_open('td:' .. id, now, '', id)
end
local results = enqueue(now, 8, tonumber(ARGV[7]))
flush()
return { 'ok', results }
