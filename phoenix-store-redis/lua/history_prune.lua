-- Deletes the rollups of granularity ARGV[2] starting before ARGV[3] seconds (layout in
-- history_put.lua). Reply: {'ok', deleted}.
local idx = key('hri', ARGV[2])
local old = redis.call('ZRANGEBYSCORE', idx, '-inf', '(' .. ARGV[3])
for _, s in ipairs(old) do
  redis.call('UNLINK', key('hrb', ARGV[2] .. ':' .. s))
end
if #old > 0 then
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. ARGV[3])
end
return { 'ok', #old }
