-- Records a heartbeat of agent ARGV[2] at ARGV[3] (JSON) with status ARGV[4], resources
-- ARGV[5], pipelines ARGV[6] and started_at ARGV[7] ('' when not reported).
-- Reply: {'ok', agent hash} | {'not_found'}.
local ak = key('ag', ARGV[2])
local before = redis.call('HGET', ak, 'st')
if not before then
  return { 'not_found' }
end
redis.call('HSET', ak, 'hb', ARGV[3], 'st', ARGV[4], 'res', ARGV[5], 'pl', ARGV[6])
if ARGV[7] ~= '' then
  redis.call('HSET', ak, 'sa', ARGV[7])
end
if before ~= ARGV[4] then
  emit('G ' .. ARGV[2] .. ' ' .. ARGV[4])
  flush()
end
return { 'ok', redis.call('HGETALL', ak) }
