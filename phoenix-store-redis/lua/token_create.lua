-- Tokens: hash `tok:<id>` (j record, rev revoked 0/1), `toks` lex index, `tokh` hash
-- secret hash -> id (kept after revocation, so a hash is never reused).
-- Stores token ARGV[2] (record ARGV[3], secret hash ARGV[4]). Reply: {'ok'} | {'conflict'}.
local tk = key('tok', ARGV[2])
if redis.call('EXISTS', tk) == 1 or redis.call('HEXISTS', key('tokh'), ARGV[4]) == 1 then
  return { 'conflict' }
end
redis.call('HSET', tk, 'j', ARGV[3], 'rev', '0')
redis.call('HSET', key('tokh'), ARGV[4], ARGV[2])
redis.call('ZADD', key('toks'), 0, ARGV[2])
return { 'ok' }
