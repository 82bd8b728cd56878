-- Appends health point ARGV[5] (JSON) taken at ARGV[4] (ms) to agent ARGV[3]'s history
-- and keeps its newest ARGV[2] points. Reply: {'ok'} | {'not_found'}.
if redis.call('HEXISTS', key('ag', ARGV[3]), 'st') == 0 then
  return { 'not_found' }
end
local hk = key('hl', ARGV[3])
redis.call('ZADD', hk, tonumber(ARGV[4]), ARGV[5])
redis.call('ZREMRANGEBYRANK', hk, 0, -(tonumber(ARGV[2]) + 1))
redis.call('SADD', key('hl'), ARGV[3])
return { 'ok' }
