-- Inserts experiment ARGV[2] (JSON ARGV[3], version ARGV[4], phase ARGV[5]) with its first
-- event (seq ARGV[6], JSON ARGV[7]); publishes ARGV[8]. Reply: {'ok'} | {'conflict'}.
local id = ARGV[2]
local ek = key('exp', id)
if redis.call('EXISTS', ek) == 1 then
  return { 'conflict' }
end
redis.call('HSET', ek, 'j', ARGV[3], 'v', ARGV[4], 'ph', ARGV[5])
redis.call('ZADD', key('exps'), 0, id)
redis.call('ZADD', key('exps', ARGV[5]), 0, id)
redis.call('ZADD', key('ev', id), tonumber(ARGV[6]), ARGV[7])
emit(ARGV[8])
flush()
return { 'ok' }
