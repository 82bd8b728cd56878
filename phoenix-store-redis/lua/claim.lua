-- Claims up to ARGV[3] claimable tasks of agent ARGV[2] under a lease of ARGV[4] ms, in
-- claim order; ARGV[5..] are fresh lease tokens (one per task claimed).
-- Reply: {'ok', task hash...}.
local now = clock()
local agent, max, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local ready, sched = key('ready', agent), key('sched', agent)

-- Promote every pending task that became due, in chunks (no unbounded unpack).
while true do
  local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, 500)
  if #due == 0 then
    break
  end
  for _, id in ipairs(due) do
    local v = redis.call('HMGET', key('t', id), 'p', 'r')
    redis.call('ZADD', ready, -tonumber(v[1]), ready_member(tonumber(v[2]), id))
  end
  redis.call('ZREM', sched, unpack(due))
  if #due < 500 then
    break
  end
end

local members = redis.call('ZRANGE', ready, 0, max - 1)
local reply = { 'ok' }
if #members == 0 then
  return reply
end
redis.call('ZREM', ready, unpack(members))
-- Per task: one read of its hash (which is also the reply) and one write; the index moves
-- (out of `pending`, into `leases`) are one command each for the whole claim.
local expires = now + lease
local ids, leases = {}, {}
for i, member in ipairs(members) do
  local id = string.sub(member, READY_ID_OFFSET)
  local tk = key('t', id)
  local f = record(redis.call('HGETALL', tk))
  if f then
    f.s, f.n, f.l, f.k, f.up = 'leased', tonumber(f.n) + 1, expires, ARGV[4 + i], now
    redis.call('HSET', tk, 's', 'leased', 'n', f.n, 'l', expires, 'k', f.k, 'up', now)
    ids[#ids + 1] = id
    leases[#leases + 1] = expires
    leases[#leases + 1] = id
    emit('T ' .. id .. ' ' .. agent .. ' ' .. (f.x or '-') .. ' leased')
    reply[#reply + 1] = flat(f)
  end
end
call_chunked('ZREM', key('pending'), ids)
call_chunked('ZADD', key('leases'), leases)
flush()
return reply
