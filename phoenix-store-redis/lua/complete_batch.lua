-- Completes several leased tasks, each fenced on its own token. From ARGV[2] on, four
-- arguments per task: id, lease token, '1' when a result follows, the result (JSON).
-- Reply: {'ok', status, hash, status, hash, ...}: per task 'ok' and its task hash, or
-- 'not_found' / 'lease_lost' and an empty array. Per task one read and one write of its
-- hash; the index moves are one command each, and one bus message, for the whole batch.
local now = clock()
local reply = { 'ok' }
local now_s = string.format('%d', now)
local left, done = {}, {}
for i = 2, #ARGV, 4 do
  local status, f = complete_task(ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1' and ARGV[i + 3] or nil,
    now, now_s, left, done)
  reply[#reply + 1] = status
  reply[#reply + 1] = f or {}
end
complete_indexes(left, done)
flush()
return reply
