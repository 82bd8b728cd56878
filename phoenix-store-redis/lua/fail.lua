-- Applies the fate Rust decided for a failed attempt of task ARGV[2], leased with token
-- ARGV[3] after ARGV[4] attempts: state ARGV[5] ('pending', 'failed' or 'dead_lettered'),
-- claimable again after ARGV[6] ms when pending; ARGV[7] is the error text. ARGV[4] is
-- '' for a decision that does not depend on the attempts.
-- Reply: {'ok', task hash} | {'not_found'} | {'lease_lost'}.
local now = clock()
local t = load_task(ARGV[2])
if not t then
  return { 'not_found' }
end
if not lease_valid(t, ARGV[3], now) or (ARGV[4] ~= '' and t.n ~= tonumber(ARGV[4])) then
  return { 'lease_lost' }
end
redis.call('HSET', key('t', t.id), 'e', ARGV[7])
move_task(t, ARGV[5], now, now + tonumber(ARGV[6]))
flush()
return { 'ok', redis.call('HGETALL', key('t', t.id)) }
