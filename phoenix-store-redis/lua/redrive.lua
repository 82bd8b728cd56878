-- Re-drives task ARGV[2] if it is dead-lettered or failed: pending now, zero attempts,
-- taking its unique key back. Reply: {'ok', task hash} | {'not_found'} |
-- {'invalid', state} | {'conflict'} (the key is held by another open task).
local now = clock()
local t = load_task(ARGV[2])
if not t then
  return { 'not_found' }
end
if t.s ~= 'dead_lettered' and t.s ~= 'failed' then
  return { 'invalid', t.s }
end
if t.u then
  if redis.call('HEXISTS', key('uniq'), t.u) == 1 then
    return { 'conflict' }
  end
  redis.call('HSET', key('uniq'), t.u, t.id)
end
t.n = 0
move_task(t, 'pending', now, now)
emit('A ' .. t.a)
flush()
return { 'ok', redis.call('HGETALL', key('t', t.id)) }
