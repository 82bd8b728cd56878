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
    local t = parse_header(id, redis.call('HGET', key('t', id), 'h'))
    redis.call('ZADD', ready, -t.p, ready_member(t.r, id))
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
-- Per task: one read of what the reply needs and one write of its scalars; the index
-- moves (out of `pending`, into `leases`) are one command each for the whole claim.
local expires = now + lease
local ids, leases = {}, {}
for i, member in ipairs(members) do
  local id = string.sub(member, READY_ID_OFFSET)
  local tk = key('t', id)
  local v = redis.call('HMGET', tk, 'h', 'pl', 'u', 'e', 'res')
  if v[1] then
    local t = parse_header(id, v[1])
    t.s, t.n, t.l, t.k, t.up = 'leased', t.n + 1, expires, ARGV[4 + i], now
    local h = header(t)
    redis.call('HSET', tk, 'h', h)
    ids[#ids + 1] = id
    leases[#leases + 1] = expires
    leases[#leases + 1] = id
    task_updated(t)
    reply[#reply + 1] = task_reply(id, h, v[2], v[3] or nil, v[4] or nil, v[5] or nil)
  end
end
call_chunked('ZREM', key('pending'), ids)
call_chunked('ZADD', key('leases'), leases)
flush()
return reply
