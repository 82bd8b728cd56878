-- Rollups of granularity ARGV[2] starting in [ARGV[3], ARGV[4]) seconds, oldest first, at
-- most ARGV[5] (layout in history_put.lua). Reply: {'ok', v1, j1, v2, j2, ...}.
local starts = redis.call('ZRANGEBYSCORE', key('hri', ARGV[2]), ARGV[3], '(' .. ARGV[4],
  'LIMIT', 0, tonumber(ARGV[5]))
local out = { 'ok' }
for _, s in ipairs(starts) do
  local r = redis.call('HMGET', key('hrb', ARGV[2] .. ':' .. s), 'v', 'j')
  if r[1] and r[2] then
    out[#out + 1] = tonumber(r[1])
    out[#out + 1] = r[2]
  end
end
return out
