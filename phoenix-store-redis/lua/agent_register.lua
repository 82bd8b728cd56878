-- Agents live in hashes `ag:<id>`: j the record at enrollment, sec the secret hash, and the
-- fields later changes override: hb last heartbeat (JSON), st status, rev revoked (0/1),
-- res resources, pl pipelines, sa started_at (JSON, when reported). `agents` is the lex
-- index of ids.
--
-- Registers agent ARGV[2] (record ARGV[3], secret hash ARGV[4], heartbeat ARGV[5], status
-- ARGV[6]). Reply: {'ok'} | {'conflict'}.
local ak = key('ag', ARGV[2])
if redis.call('EXISTS', ak) == 1 then
  return { 'conflict' }
end
redis.call('HSET', ak, 'j', ARGV[3], 'sec', ARGV[4], 'hb', ARGV[5], 'st', ARGV[6], 'rev', '0')
redis.call('ZADD', key('agents'), 0, ARGV[2])
emit('G ' .. ARGV[2] .. ' ' .. ARGV[6])
flush()
return { 'ok' }
