-- Applies one transition of experiment ARGV[2], all or nothing:
--   compare-and-set: the stored version must be ARGV[3] (and the new one ARGV[3] + 1);
--   replace it (JSON ARGV[4], version ARGV[5], phase ARGV[6]);
--   append ARGV[8] events packed from ARGV[10] as (seq, JSON, bus JSON), keeping at most
--   ARGV[9] events;
--   cancel its open tasks when ARGV[7] == '1';
--   enqueue the tasks packed after the events (a count, then `enqueue` fields).
-- Reply: {'ok', cancelled, enqueue results} | {'not_found'} | {'conflict'}.
local now = clock()
local id = ARGV[2]
local ek = key('exp', id)
local stored = redis.call('HMGET', ek, 'v', 'ph')
if not stored[1] then
  return { 'not_found' }
end
if stored[1] ~= ARGV[3] or tonumber(ARGV[5]) ~= tonumber(ARGV[3]) + 1 then
  return { 'conflict' }
end
local phase = ARGV[6]
redis.call('HSET', ek, 'j', ARGV[4], 'v', ARGV[5], 'ph', phase)
if stored[2] ~= phase then
  redis.call('ZREM', key('exps', stored[2]), id)
  redis.call('ZADD', key('exps', phase), 0, id)
end
local events, keep = tonumber(ARGV[8]), tonumber(ARGV[9])
local o = 10
for _ = 1, events do
  redis.call('ZADD', key('ev', id), tonumber(ARGV[o]), ARGV[o + 1])
  emit(ARGV[o + 2])
  o = o + 3
end
if events > 0 then
  redis.call('ZREMRANGEBYRANK', key('ev', id), 0, -keep - 1)
end
local cancelled = 0
if ARGV[7] == '1' then
  cancelled = cancel_open('tx:' .. id, now, id, '')
end
local results = enqueue(now, o + 1, tonumber(ARGV[o]))
flush()
return { 'ok', cancelled, results }
