-- Claims up to ARGV[3] claimable tasks of agent ARGV[2] under a lease of ARGV[4] ms, in
-- claim order; ARGV[5..] are fresh lease tokens (one per task claimed).
-- Reply: {'ok', task hash...}.
local now = clock()
local agent, max, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
-- Numbers handed to Redis go as text formatted with %d: Redis would format a Lua number
-- with %.17g, a floating-point conversion that costs more than the command.
local now_s, expires = string.format('%d', now), string.format('%d', now + lease)
local ready, sched = key('ready', agent), key('sched', agent)

-- Promote every pending task that became due, in chunks (no unbounded unpack).
while true do
  local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now_s, 'LIMIT', '0', '500')
  if #due == 0 then
    break
  end
  for _, id in ipairs(due) do
    local h = redis.call('HGET', key('t', id), 'h')
    if h then
      local t = parse_header(id, h)
      redis.call('ZADD', ready, int(-t.p), ready_member(t.r, id))
    end
  end
  redis.call('ZREM', sched, unpack(due))
  if #due < 500 then
    break
  end
end

local members = redis.call('ZRANGE', ready, '0', string.format('%d', max - 1))
local reply = { 'ok' }
if #members == 0 then
  return reply
end
redis.call('ZREM', ready, unpack(members))
-- Per task: one read of what the reply needs and one write of its scalars; the index
-- moves (out of `pending`, into `leases`) are one command each for the whole claim.
local ids, leases = {}, {}
for i, member in ipairs(members) do
  local id = string.sub(member, READY_ID_OFFSET)
  local tk = key('t', id)
  local v = redis.call('HMGET', tk, 'h', 'pl', 'u', 'e', 'res')
  if v[1] then
    -- The words of `h` a claim does not change stay text (see HOT_CLAIM).
    local _, n, kept, a, x = string.match(v[1], HOT_CLAIM)
    local h = 'leased ' .. string.format('%d', tonumber(n) + 1) .. ' ' .. kept .. ' ' .. now_s .. ' ' .. expires
      .. ' ' .. ARGV[4 + i] .. ' ' .. a .. ' ' .. x
    redis.call('HSET', tk, 'h', h)
    ids[#ids + 1] = id
    leases[#leases + 1] = expires
    leases[#leases + 1] = id
    task_line(id, a, x, 'leased')
    reply[#reply + 1] = task_reply(id, h, v[2], v[3] or nil, v[4] or nil, v[5] or nil)
  end
end
call_chunked('ZREM', key('pending'), ids)
call_chunked('ZADD', key('leases'), leases)
flush()
return reply
