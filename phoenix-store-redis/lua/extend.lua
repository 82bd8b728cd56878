-- Extends the lease of task ARGV[2] held with token ARGV[3] to now + ARGV[4] ms.
-- Reply: {'ok', expiry} | {'not_found'} | {'lease_lost'}.
local now = clock()
local t = load_task(ARGV[2])
if not t then
  return { 'not_found' }
end
if not lease_valid(t, ARGV[3], now) then
  return { 'lease_lost' }
end
local expires = now + tonumber(ARGV[4])
t.l = expires
t.up = now
save_header(t)
redis.call('ZADD', key('leases'), expires, t.id)
return { 'ok', expires }
