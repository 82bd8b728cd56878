-- Samples of an experiment: zset `smp:<experiment>` of members `<sort key>|<JSON>` (score
-- 0, so ordered by taken_at, agent, seq), and set `smpseen:<experiment>` of `<agent>:<seq>`
-- for idempotence (kept when old samples are dropped: a re-sent old sample stays old), and
-- hash `smprc:<experiment>` of agent -> JSON array of its ARGV[3] members with the highest
-- seq, highest first (the member's sort key holds the agent at byte 32 and the zero-padded
-- seq at byte 69).
--
-- Stores ARGV[4] samples packed from ARGV[6] as (experiment, dedup key, member), keeping
-- at most ARGV[2] per experiment; then ARGV[5] pairs (experiment, bus JSON) announce the
-- experiments that received samples. Reply: {'ok', inserted, duplicates}.
local keep = tonumber(ARGV[2])
local recent = tonumber(ARGV[3])
local inserted, duplicates = 0, 0
local touched = {}
local o = 6
local function seq_of(member)
  return string.sub(member, 69, 88)
end
local function remember(exp, member)
  local agent = string.sub(member, 32, 67)
  local rk = key('smprc', exp)
  local raw = redis.call('HGET', rk, agent)
  local list = raw and cjson.decode(raw) or {}
  table.insert(list, member)
  table.sort(list, function(a, b) return seq_of(a) > seq_of(b) end)
  while #list > recent do
    table.remove(list)
  end
  redis.call('HSET', rk, agent, cjson.encode(list))
end
for _ = 1, tonumber(ARGV[4]) do
  local exp = ARGV[o]
  if redis.call('SADD', key('smpseen', exp), ARGV[o + 1]) == 1 then
    redis.call('ZADD', key('smp', exp), 0, ARGV[o + 2])
    remember(exp, ARGV[o + 2])
    touched[exp] = true
    inserted = inserted + 1
  else
    duplicates = duplicates + 1
  end
  o = o + 3
end
for _ = 1, tonumber(ARGV[5]) do
  local exp = ARGV[o]
  if touched[exp] then
    redis.call('ZREMRANGEBYRANK', key('smp', exp), 0, -keep - 1)
    emit(ARGV[o + 1])
  end
  o = o + 2
end
flush()
return { 'ok', inserted, duplicates }
