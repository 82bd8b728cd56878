-- Reads up to ARGV[2] expired leases (expiry <= now), oldest first, for Rust to decide
-- their fate. Changes nothing. Reply: {'ok', id, token, attempts, max attempts, ...}.
local now = clock()
local ids = redis.call('ZRANGEBYSCORE', key('leases'), '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local reply = { 'ok' }
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', key('t', id), 'k', 'n', 'm')
  if v[1] then
    reply[#reply + 1] = id
    reply[#reply + 1] = v[1]
    reply[#reply + 1] = v[2]
    reply[#reply + 1] = v[3]
  end
end
return reply
