-- Marks task ARGV[2], leased with token ARGV[3], succeeded; ARGV[4] is '1' when ARGV[5]
-- holds a result (JSON).
-- Reply: {'ok', task hash} | {'not_found'} | {'lease_lost'}.
local now = clock()
local t = load_task(ARGV[2])
if not t then
  return { 'not_found' }
end
if not lease_valid(t, ARGV[3], now) then
  return { 'lease_lost' }
end
if ARGV[4] == '1' then
  redis.call('HSET', key('t', t.id), 'res', ARGV[5])
end
move_task(t, 'succeeded', now, now)
flush()
return { 'ok', redis.call('HGETALL', key('t', t.id)) }
