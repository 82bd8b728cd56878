-- Enqueues ARGV[2] tasks packed from ARGV[3] (see `enqueue` in lib.lua), all or nothing.
-- Reply: {'ok', result per task}.
local now = clock()
local results = enqueue(now, 3, tonumber(ARGV[2]))
flush()
return { 'ok', results }
