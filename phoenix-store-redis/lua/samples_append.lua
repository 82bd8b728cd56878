-- Samples of an experiment: zset `smp:<experiment>` of members `<sort key>|<JSON>` (score
-- 0, so ordered by taken_at, agent, seq), and set `smpseen:<experiment>` of `<agent>:<seq>`
-- for idempotence (kept when old samples are dropped: a re-sent old sample stays old).
--
-- Stores ARGV[3] samples packed from ARGV[5] as (experiment, dedup key, member), keeping
-- at most ARGV[2] per experiment; then ARGV[4] pairs (experiment, bus JSON) announce the
-- experiments that received samples. Reply: {'ok', inserted, duplicates}.
local keep = tonumber(ARGV[2])
local inserted, duplicates = 0, 0
local touched = {}
local o = 5
for _ = 1, tonumber(ARGV[3]) do
  local exp = ARGV[o]
  if redis.call('SADD', key('smpseen', exp), ARGV[o + 1]) == 1 then
    redis.call('ZADD', key('smp', exp), 0, ARGV[o + 2])
    touched[exp] = true
    inserted = inserted + 1
  else
    duplicates = duplicates + 1
  end
  o = o + 3
end
for _ = 1, tonumber(ARGV[4]) do
  local exp = ARGV[o]
  if touched[exp] then
    redis.call('ZREMRANGEBYRANK', key('smp', exp), 0, -keep - 1)
    emit(ARGV[o + 1])
  end
  o = o + 2
end
flush()
return { 'ok', inserted, duplicates }
