-- Gives task ARGV[2], leased with token ARGV[3], back: pending now, the claim's attempt
-- uncounted. Reply: {'ok', task hash} | {'not_found'} | {'lease_lost'}.
local now = clock()
local t = load_task(ARGV[2])
if not t then
  return { 'not_found' }
end
if not lease_valid(t, ARGV[3], now) then
  return { 'lease_lost' }
end
t.n = math.max(t.n - 1, 0)
move_task(t, 'pending', now, now)
emit('A ' .. t.a)
flush()
return { 'ok', redis.call('HGETALL', key('t', t.id)) }
