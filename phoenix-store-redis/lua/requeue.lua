-- Applies Rust's decisions for expired leases, packed from ARGV[2] in fours: task id, the
-- token read, new state ('pending' or 'dead_lettered'), delay ms. A task whose lease was
-- extended, completed or requeued since it was read is skipped, so concurrent runs handle
-- each expired lease once. Reply: {'ok', task hash...} for the tasks changed.
local now = clock()
local reply = { 'ok' }
local i = 2
while ARGV[i] do
  local t = load_task(ARGV[i])
  if t and t.s == 'leased' and t.k == ARGV[i + 1] and t.l ~= nil and t.l <= now then
    redis.call('HSET', key('t', t.id), 'e', 'lease expired')
    move_task(t, ARGV[i + 2], now, now + tonumber(ARGV[i + 3]))
    if t.s == 'pending' then
      emit('A ' .. t.a)
    end
    reply[#reply + 1] = redis.call('HGETALL', key('t', t.id))
  end
  i = i + 4
end
flush()
return reply
