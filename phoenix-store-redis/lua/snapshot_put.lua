-- Replaces an agent's current snapshot of one source: hash `snap` (field -> JSON) and, in
-- the same step, hash `snapver` (field -> "<version> <taken_at RFC 3339> <interval secs>")
-- with a version drawn from the counter `snapseq`, so that a reader of `snapver` sees a new
-- version for every write. The field is `<agent>` for the input, `<agent>:shipped` for the
-- shipped output.
-- ARGV[2] field, ARGV[3] taken_at, ARGV[4] interval seconds, ARGV[5] JSON.
-- Reply: {'ok', version}.
local version = redis.call('INCR', key('snapseq'))
redis.call('HSET', key('snap'), ARGV[2], ARGV[5])
redis.call('HSET', key('snapver'), ARGV[2], string.format('%d %s %s', version, ARGV[3], ARGV[4]))
return {'ok', version}
