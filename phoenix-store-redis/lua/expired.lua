-- Reads up to ARGV[2] expired leases (expiry <= now), oldest first, for Rust to decide
-- their fate. Changes nothing. Reply: {'ok', id, token, attempts, max attempts, ...}.
local now = clock()
local ids = redis.call('ZRANGEBYSCORE', key('leases'), '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local reply = { 'ok' }
for _, id in ipairs(ids) do
  local h = redis.call('HGET', key('t', id), 'h')
  if h then
    local t = parse_header(id, h)
    if t.k then
      reply[#reply + 1] = id
      reply[#reply + 1] = t.k
      reply[#reply + 1] = t.n
      reply[#reply + 1] = t.m
    end
  end
end
return reply
