-- Query sources: hash `qs:<id>` (id, n name, j record), `qss` lex index of ids, `qsn`
-- hash name -> id.
-- Stores source ARGV[2] named ARGV[3] (record ARGV[4]); a source of that name is replaced
-- and keeps its id. Reply: {'ok', id}.
local id = redis.call('HGET', key('qsn'), ARGV[3])
if not id then
  id = ARGV[2]
  redis.call('HSET', key('qsn'), ARGV[3], id)
  redis.call('ZADD', key('qss'), 0, id)
end
redis.call('HSET', key('qs', id), 'id', id, 'n', ARGV[3], 'j', ARGV[4])
return { 'ok', id }
