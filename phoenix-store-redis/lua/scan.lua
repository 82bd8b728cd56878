-- One page of records from the lex index ARGV[2] (a key suffix), newest id first, after
-- cursor ARGV[4] ('' for the start); records are hashes at `<ARGV[3]>:<id>`. At most ARGV[5]
-- matches are returned, after scanning at most ARGV[6] index entries; filters are packed
-- from ARGV[7] (see `matches`).
-- Reply: {'ok', resume, hash...}: resume is '' when the index was read to its end or
-- enough matched, else the id to continue after.
local index, record, after = key(ARGV[2]), ARGV[3], ARGV[4]
local want, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
local reply = { 'ok', '' }
local found, scanned = 0, 0
local upper = after == '' and '+' or '(' .. after
while found < want do
  if scanned >= budget then
    reply[2] = string.sub(upper, 2)
    break
  end
  local chunk = math.min(budget - scanned, math.max(want * 2, 64))
  local ids = redis.call('ZREVRANGEBYLEX', index, upper, '-', 'LIMIT', 0, chunk)
  for _, id in ipairs(ids) do
    scanned = scanned + 1
    upper = '(' .. id
    local rk = key(record, id)
    if redis.call('EXISTS', rk) == 1 and matches(rk, 7) then
      reply[#reply + 1] = redis.call('HGETALL', rk)
      found = found + 1
      if found >= want then
        break
      end
    end
  end
  if #ids < chunk then
    break
  end
end
return reply
