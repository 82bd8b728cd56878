-- Revokes token ARGV[2] (idempotent). Reply: {'ok'} | {'not_found'}.
local tk = key('tok', ARGV[2])
if redis.call('EXISTS', tk) == 0 then
  return { 'not_found' }
end
redis.call('HSET', tk, 'rev', '1')
return { 'ok' }
