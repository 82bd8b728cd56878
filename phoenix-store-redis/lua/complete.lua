-- Marks task ARGV[2], leased with token ARGV[3], succeeded; ARGV[4] is '1' when ARGV[5]
-- holds a result (JSON).
-- Reply: {'ok', task hash} | {'not_found'} | {'lease_lost'}.
local now = clock()
local left, done = {}, {}
local status, f = complete_task(ARGV[2], ARGV[3], ARGV[4] == '1' and ARGV[5] or nil, now,
  string.format('%d', now), left, done)
if status ~= 'ok' then
  return { status }
end
complete_indexes(left, done)
flush()
return { 'ok', f }
