-- One page of experiments, newest id first, after cursor ARGV[2] ('' for the start), at
-- most ARGV[3]; ARGV[4..] are the phases to include (none: all). Each phase has its own
-- index, merged here, so listing the few active experiments never walks finished ones.
-- Reply: {'ok', JSON...}.
local want = tonumber(ARGV[3])
local upper = ARGV[2] == '' and '+' or '(' .. ARGV[2]
local ids = {}
if ARGV[4] then
  local i = 4
  while ARGV[i] do
    for _, id in ipairs(redis.call('ZREVRANGEBYLEX', key('exps', ARGV[i]), upper, '-', 'LIMIT', 0, want)) do
      ids[#ids + 1] = id
    end
    i = i + 1
  end
  table.sort(ids, function(a, b) return a > b end)
else
  ids = redis.call('ZREVRANGEBYLEX', key('exps'), upper, '-', 'LIMIT', 0, want)
end
local reply = { 'ok' }
for i = 1, math.min(#ids, want) do
  local j = redis.call('HGET', key('exp', ids[i]), 'j')
  if j then
    reply[#reply + 1] = j
  end
end
return reply
