-- The token whose secret hash is ARGV[2]. Reply: {'ok', token hash} | {'not_found'}.
local id = redis.call('HGET', key('tokh'), ARGV[2])
if not id then
  return { 'not_found' }
end
local tk = key('tok', id)
if redis.call('EXISTS', tk) == 0 then
  return { 'not_found' }
end
return { 'ok', redis.call('HGETALL', tk) }
