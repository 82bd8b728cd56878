-- Deployments: hash `dep:<id>` (j record, v version), `deps` lex index.
-- Inserts deployment ARGV[2] (record ARGV[3], version ARGV[4]) and enqueues the tasks
-- packed from ARGV[7] (ARGV[6] of them); publishes ARGV[5].
-- Reply: {'ok', enqueue results} | {'conflict'}.
local now = clock()
local dk = key('dep', ARGV[2])
if redis.call('EXISTS', dk) == 1 then
  return { 'conflict' }
end
redis.call('HSET', dk, 'j', ARGV[3], 'v', ARGV[4])
redis.call('ZADD', key('deps'), 0, ARGV[2])
emit(ARGV[5])
local results = enqueue(now, 7, tonumber(ARGV[6]))
flush()
return { 'ok', results }
