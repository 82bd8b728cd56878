-- Cost history rollups: hash `hrb:<granularity>:<start seconds>` (v version, j bucket) and
-- `hri:<granularity>`, a sorted set of starts (score = start seconds).
-- Writes bucket ARGV[5] at (ARGV[2], ARGV[3]) if its stored version is ARGV[4] (0: none
-- stored yet). Reply: {'ok', new version} or {'conflict'}.
local b = key('hrb', ARGV[2] .. ':' .. ARGV[3])
local v = tonumber(redis.call('HGET', b, 'v') or '0')
if v ~= tonumber(ARGV[4]) then
  return { 'conflict' }
end
redis.call('HSET', b, 'v', v + 1, 'j', ARGV[5])
redis.call('ZADD', key('hri', ARGV[2]), tonumber(ARGV[3]), ARGV[3])
return { 'ok', v + 1 }
