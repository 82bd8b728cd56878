-- Completes several leased tasks, each fenced on its own token. From ARGV[2] on, four
-- arguments per task: id, lease token, '1' when a result follows, the result (JSON).
-- Reply: {'ok', status, hash, status, hash, ...}: per task 'ok' and its task hash, or
-- 'not_found' / 'lease_lost' and an empty array. One bus message for the whole batch.
local now = clock()
local reply = { 'ok' }
for i = 2, #ARGV, 4 do
  local t = load_task(ARGV[i])
  if not t then
    reply[#reply + 1] = 'not_found'
    reply[#reply + 1] = {}
  elseif not lease_valid(t, ARGV[i + 1], now) then
    reply[#reply + 1] = 'lease_lost'
    reply[#reply + 1] = {}
  else
    if ARGV[i + 2] == '1' then
      redis.call('HSET', key('t', t.id), 'res', ARGV[i + 3])
    end
    move_task(t, 'succeeded', now, now)
    reply[#reply + 1] = 'ok'
    reply[#reply + 1] = redis.call('HGETALL', key('t', t.id))
  end
end
flush()
return reply
