-- Helpers shared by every script; the Rust side prepends this file to each one.
--
-- Calling convention: KEYS[1] is the hash-tagged namespace `{prefix}`; every key a script
-- touches is derived from it, so all of them live in one cluster slot. ARGV[1] is the test
-- time shift in milliseconds (0 in production). Scripts reply with an array whose first
-- element is a status: 'ok', 'not_found', 'conflict', 'lease_lost' or 'invalid'.
--
-- Scripts apply decisions taken in Rust; they never decide a rule (no retry timing, no
-- phase logic). They do own the bookkeeping of the indexes below, which is what makes each
-- step atomic.

local NS = KEYS[1]

-- `{prefix}:a` or `{prefix}:a:b` (every key has one or two parts; no table per call).
local function key(a, b)
  if b then
    return NS .. ':' .. a .. ':' .. b
  end
  return NS .. ':' .. a
end

-- The store's single time source: Redis TIME plus the shift, in milliseconds.
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
end

-- Bus lines published at the end of a script, in one message. A line is either a JSON
-- `BusEvent` prepared by Rust, or a compact record the Rust subscriber decodes:
--   T <task> <agent> <experiment or -> <state>   task updated
--   A <agent>                                     tasks available
--   G <agent> <status>                            agent updated
local bus = {}

local function emit(line)
  bus[#bus + 1] = line
end

local function flush()
  if #bus > 0 then
    redis.call('PUBLISH', key('bus'), table.concat(bus, '\n'))
    bus = {}
  end
end

-- Tasks ------------------------------------------------------------------------------
--
-- t:<id>          hash: h the task's scalars (below), pl payload JSON, u unique key, e last
--                 error, res result JSON (each when set); and, written once at enqueue for
--                 listing filters and pruning, id, a agent, x experiment, d deployment,
--                 kd kind
-- h               one string, space-separated: state, attempts, max attempts, priority,
--                 run_at, created, updated, lease expiry, lease token, agent, experiment
--                 ('-' for no lease expiry / token / experiment). Claim and complete read
--                 and write a task as this one field (plus the payload they hand back).
-- tasks           zset (lex, score 0) of every task id; ta:<agent>, tx:<experiment>,
--                 td:<deployment> the same per owner
-- ready:<agent>   zset of claimable tasks: score -priority, member `<run_at>:<id>`, so the
--                 order is priority desc, then run_at, then id (UUID v7: creation)
-- sched:<agent>   zset of pending tasks not yet due, by run_at (promoted at claim)
-- pending         zset of every pending task by run_at (stats)
-- leases          zset of leased tasks by lease expiry
-- done:<state>    zset of finished tasks by updated time (retention)
-- uniq            hash unique key -> the open task holding it

local function ready_member(run_at, id)
  return string.format('%015d:%s', run_at, id)
end

local READY_ID_OFFSET = 17

local HEADER = '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$'

-- A task's scalars from its `h` field.
local function parse_header(id, h)
  local s, n, m, p, r, c, up, l, k, a, x = string.match(h, HEADER)
  return {
    id = id, s = s, n = tonumber(n), m = tonumber(m), p = tonumber(p), r = tonumber(r), c = c,
    up = up, l = tonumber(l), k = k ~= '-' and k or nil, a = a, x = x ~= '-' and x or nil,
  }
end

-- Claim and complete rewrite only the words of `h` they own and keep the others as the
-- text they read (no number parsing and formatting per task): HOT_CLAIM captures state,
-- attempts, max attempts to created (kept), agent, experiment; HOT_DONE state, attempts
-- to run_at (kept), lease expiry, lease token, agent, experiment.
local HOT_CLAIM = '^(%S+) (%S+) (%S+ %S+ %S+ %S+) %S+ %S+ %S+ (%S+) (%S+)$'
local HOT_DONE = '^(%S+) (%S+ %S+ %S+ %S+ %S+) %S+ (%S+) (%S+) (%S+) (%S+)$'

-- A number as text with %d (Lua's own conversion, %.14g, is a slow floating-point one).
local function int(v)
  return type(v) == 'number' and string.format('%d', v) or v
end

-- The `h` field of task `t`.
local function header(t)
  return table.concat({ t.s, int(t.n), int(t.m), int(t.p), int(t.r), int(t.c), int(t.up),
    t.l and int(t.l) or '-', t.k or '-', t.a, t.x or '-' }, ' ')
end

local function load_task(id)
  local v = redis.call('HMGET', key('t', id), 'h', 'u', 'd', 'kd')
  if not v[1] then
    return nil
  end
  local t = parse_header(id, v[1])
  t.u = v[2] or nil
  t.d = v[3] or nil
  t.kd = v[4]
  return t
end

local function save_header(t)
  redis.call('HSET', key('t', t.id), 'h', header(t))
end

-- A task as the Rust side decodes it (the fields of an HGETALL reply it reads).
local function task_reply(id, h, pl, u, e, res)
  local r = { 'id', id, 'h', h, 'pl', pl }
  if u then
    r[#r + 1] = 'u'
    r[#r + 1] = u
  end
  if e then
    r[#r + 1] = 'e'
    r[#r + 1] = e
  end
  if res then
    r[#r + 1] = 'res'
    r[#r + 1] = res
  end
  return r
end

-- redis.call(cmd, k, args...) over `args` in chunks of UNPACK_CHUNK (even, so ZADD's
-- score/member pairs stay whole): no batch size overflows Lua's unpack.
local UNPACK_CHUNK = 1000

local function call_chunked(cmd, k, args)
  for i = 1, #args, UNPACK_CHUNK do
    redis.call(cmd, k, unpack(args, i, math.min(i + UNPACK_CHUNK - 1, #args)))
  end
end

-- The bus line of a task update (`x` is the experiment, '-' for none).
local function task_line(id, a, x, s)
  emit('T ' .. id .. ' ' .. a .. ' ' .. x .. ' ' .. s)
end

local function task_updated(t)
  task_line(t.id, t.a, t.x or '-', t.s)
end

-- The fencing check: `token` is the task's current lease (state `s`, token `k`, expiry
-- `l`) and it has not expired at `now`.
local function lease_holds(s, k, l, token, now)
  return s == 'leased' and k == token and l ~= nil and now < l
end

local function lease_valid(t, token, now)
  return lease_holds(t.s, t.k, t.l, token, now)
end

local function index_pending(t, now)
  redis.call('ZADD', key('pending'), int(t.r), t.id)
  if t.r <= now then
    redis.call('ZADD', key('ready', t.a), int(-t.p), ready_member(t.r, t.id))
  else
    redis.call('ZADD', key('sched', t.a), int(t.r), t.id)
  end
end

local function unindex(t)
  if t.s == 'pending' then
    redis.call('ZREM', key('pending'), t.id)
    redis.call('ZREM', key('ready', t.a), ready_member(t.r, t.id))
    redis.call('ZREM', key('sched', t.a), t.id)
  elseif t.s == 'leased' then
    redis.call('ZREM', key('leases'), t.id)
  else
    redis.call('ZREM', key('done', t.s), t.id)
  end
end

local function release_unique(t)
  if t.u and redis.call('HGET', key('uniq'), t.u) == t.id then
    redis.call('HDEL', key('uniq'), t.u)
  end
end

-- Moves a task to `state` (not 'leased': leases are taken by claim), keeping every index
-- right; `run_at` is used when the new state is 'pending'. Other changes to `t`'s scalars
-- (attempts) are written with it.
local function move_task(t, state, now, run_at)
  unindex(t)
  t.s = state
  t.up = now
  t.k = nil
  t.l = nil
  if state == 'pending' then
    t.r = run_at
  end
  save_header(t)
  if state == 'pending' then
    index_pending(t, now)
  else
    redis.call('ZADD', key('done', state), int(now), t.id)
    release_unique(t)
  end
  task_updated(t)
end

-- Marks the leased task `id` succeeded at `now` (`now_s` as text) if `token` is its
-- current, unexpired lease, storing `result` (JSON, or nil for none): one read and one
-- write of its hash. The index moves (out of `leases`, into `done:succeeded`) are appended
-- to `left` / `done` for the caller to apply in one command each. Returns 'ok' and the
-- task's reply, or 'not_found' / 'lease_lost' (nothing changed).
local function complete_task(id, token, result, now, now_s, left, done)
  local tk = key('t', id)
  local v = redis.call('HMGET', tk, 'h', 'pl', 'u', 'e', 'res')
  if not v[1] then
    return 'not_found', nil
  end
  -- The words of `h` completion does not change stay text (see HOT_DONE).
  local s, kept, l, k, a, x = string.match(v[1], HOT_DONE)
  if not lease_holds(s, k, tonumber(l), token, now) then
    return 'lease_lost', nil
  end
  local h = 'succeeded ' .. kept .. ' ' .. now_s .. ' - - ' .. a .. ' ' .. x
  if result then
    redis.call('HSET', tk, 'h', h, 'res', result)
  else
    redis.call('HSET', tk, 'h', h)
    result = v[5] or nil
  end
  left[#left + 1] = id
  done[#done + 1] = now_s
  done[#done + 1] = id
  local u = v[3] or nil
  release_unique({ id = id, u = u })
  task_line(id, a, x, 'succeeded')
  return 'ok', task_reply(id, h, v[2], u, v[4] or nil, result)
end

-- Applies the index moves `complete_task` collected.
local function complete_indexes(left, done)
  call_chunked('ZREM', key('leases'), left)
  call_chunked('ZADD', key('done', 'succeeded'), done)
end

-- Enqueues the tasks packed in ARGV from `first`, 10 fields each: id, agent, priority,
-- unique key ('' none), delay ms, max attempts, payload, kind, experiment ('' none),
-- deployment ('' none). Returns one entry per task: '' when stored, else the id of the task
-- that already holds the id or unique key.
local TASK_FIELDS = 10

local function enqueue(now, first, count)
  local results = {}
  for i = 0, count - 1 do
    local o = first + i * TASK_FIELDS
    local id, agent, prio, ukey = ARGV[o], ARGV[o + 1], tonumber(ARGV[o + 2]), ARGV[o + 3]
    local tk = key('t', id)
    local existing = nil
    if redis.call('EXISTS', tk) == 1 then
      existing = id
    elseif ukey ~= '' then
      existing = redis.call('HGET', key('uniq'), ukey) or nil
    end
    if existing then
      results[#results + 1] = existing
    else
      local run_at = now + tonumber(ARGV[o + 4])
      local exp, dep = ARGV[o + 8], ARGV[o + 9]
      local t = { id = id, s = 'pending', n = 0, m = ARGV[o + 5], p = prio, r = run_at, c = now,
        up = now, a = agent, x = exp ~= '' and exp or nil }
      redis.call('HSET', tk, 'id', id, 'a', agent, 'h', header(t), 'pl', ARGV[o + 6],
        'kd', ARGV[o + 7])
      redis.call('ZADD', key('tasks'), '0', id)
      redis.call('ZADD', key('ta', agent), '0', id)
      if ukey ~= '' then
        redis.call('HSET', tk, 'u', ukey)
        redis.call('HSET', key('uniq'), ukey, id)
      end
      if exp ~= '' then
        redis.call('HSET', tk, 'x', exp)
        redis.call('ZADD', key('tx', exp), '0', id)
      end
      if dep ~= '' then
        redis.call('HSET', tk, 'd', dep)
        redis.call('ZADD', key('td', dep), '0', id)
      end
      index_pending(t, now)
      emit('A ' .. agent)
      results[#results + 1] = ''
    end
  end
  return results
end

-- Cancels every open task listed in the owner index `index` (a key suffix) whose
-- experiment / deployment match (empty: any). Returns how many were cancelled.
local function cancel_open(index, now, exp, dep)
  local ids = redis.call('ZRANGE', key(index), 0, -1)
  local cancelled = 0
  for _, id in ipairs(ids) do
    local t = load_task(id)
    if t and (t.s == 'pending' or t.s == 'leased')
      and (exp == '' or t.x == exp) and (dep == '' or t.d == dep) then
      move_task(t, 'cancelled', now, now)
      cancelled = cancelled + 1
    end
  end
  return cancelled
end

-- True when the hash `record` passes every filter packed in ARGV from `first`: pairs of
-- (field, comma-separated allowed values); an empty value list allows anything.
local function matches(record, first)
  local i = first
  while ARGV[i] do
    local field, allowed = ARGV[i], ARGV[i + 1]
    if allowed ~= '' then
      local value
      if field == 's' then
        -- A task's state is the first word of its scalars.
        local h = redis.call('HGET', record, 'h')
        value = h and string.match(h, '^%S+')
      else
        value = redis.call('HGET', record, field)
      end
      if not value or not string.find(',' .. allowed .. ',', ',' .. value .. ',', 1, true) then
        return false
      end
    end
    i = i + 2
  end
  return true
end
