-- Queue depth per state, the oldest pending run_at and the expired leases.
-- Reply: {'ok', pending, leased, succeeded, failed, dead_lettered, cancelled,
-- oldest run_at or '', expired}.
local now = clock()
local oldest = redis.call('ZRANGE', key('pending'), 0, 0, 'WITHSCORES')
return {
  'ok',
  redis.call('ZCARD', key('pending')),
  redis.call('ZCARD', key('leases')),
  redis.call('ZCARD', key('done', 'succeeded')),
  redis.call('ZCARD', key('done', 'failed')),
  redis.call('ZCARD', key('done', 'dead_lettered')),
  redis.call('ZCARD', key('done', 'cancelled')),
  oldest[2] or '',
  redis.call('ZCOUNT', key('leases'), '-inf', now),
}
