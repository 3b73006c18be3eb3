--- hicache.lease: get_or_set with leases (docs/DESIGN.md, "No stale value").
--
-- On a miss, one caller across all processes takes the key's lease (a
-- random token under the namespace's current epoch, lease_ttl) and
-- computes; the others wait for a wake-up (BLPOP, bounded by the lease's
-- remaining TTL and opts.wait) and read its value. A waiter returns at
-- most one command timeout after opts.wait, whatever the filler, the
-- lease or the server do: no round starts once the wait is used up. While fn runs, the
-- keeper thread extends the lease, so a slow fn is still computed once.
-- The filler stores only while its lease and the epoch still hold (one
-- script); any failure after the lease is taken gives it back. Every
-- write and invalidation revokes the lease of its key, and clear() /
-- delete_pattern() move the epoch on: a fill that started before any of
-- them returned is never stored after it. Each step is one C call
-- (src/lua/hc_lease.c, src/lua/hc_read.c).

local core = require "hicache.core"
local argerror = require "hicache.argerror"

local token, time_ms, now = core.token, core.time_ms, core.now
local type, error, pcall, tostring, pairs = type, error, pcall, tostring, pairs
local compat = require "hicache.compat"
local pack, unpack = compat.pack, compat.unpack
local math_min, math_max, math_log, math_random, math_ceil = math.min, math.max, math.log, math.random, math.ceil

local _M = {}

local raise, rethrow = argerror.raise, argerror.rethrow

-- A list of non-empty strings (no holes, no other keys).
local function check_tags(tags)
  if type(tags) ~= "table" then raise("opts.tags must be a list of strings") end
  if argerror.non_list_key(tags) ~= nil then raise("opts.tags must be a list (no holes, no other keys)") end
  for i = 1, #tags do
    if type(tags[i]) ~= "string" or tags[i] == "" then raise("opts.tags must be non-empty strings") end
  end
  return tags
end
_M.check_tags = check_tags

-- ---- get_or_set ---------------------------------------------------------
--
-- Returns value, err, status (and, for the stats wrapper in init.lua, the
-- cache's error that made it bypass): see README "cache:get_or_set".

local STATUS_TIMEOUT = { compute = true, error = true, stale = true }

local function number_opt(opts, name, default, min)
  local v = opts[name]
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < min or v == math.huge then
    raise(("opts.%s must be a finite number >= %s"):format(name, min))
  end
  return v
end

local NO_OPTS = {}
local KNOWN = { ttl = true, neg_ttl = true, lease_ttl = true, stale = true, stale_if_error = true, early = true,
                wait = true, on_wait_timeout = true, tags = true, bypass = true }
_M.OPTIONS = KNOWN

local function check_opts(opts)
  if opts == nil then opts = NO_OPTS end
  if type(opts) ~= "table" then raise("bad argument #3 to 'get_or_set' (opts must be a table)") end
  for k in pairs(opts) do
    if not KNOWN[k] then raise(("unknown get_or_set option '%s'"):format(tostring(k))) end
  end
  local o = {
    ttl = number_opt(opts, "ttl", nil, 0),
    neg_ttl = number_opt(opts, "neg_ttl", 0, 0),
    lease_ttl = number_opt(opts, "lease_ttl", 10, 0.01),
    stale = number_opt(opts, "stale", 0, 0),
    stale_if_error = number_opt(opts, "stale_if_error", 0, 0),
    early = number_opt(opts, "early", 0, 0),
    on_wait_timeout = opts.on_wait_timeout or "compute",
    tags = opts.tags ~= nil and check_tags(opts.tags) or nil,
    bypass = opts.bypass,
  }
  if o.ttl and o.ttl > 1e11 then raise("opts.ttl too large") end
  o.wait = number_opt(opts, "wait", 3 * o.lease_ttl, 0)
  if not STATUS_TIMEOUT[o.on_wait_timeout] then
    raise('opts.on_wait_timeout must be "compute", "error" or "stale"')
  end
  if o.bypass == nil then o.bypass = true
  elseif type(o.bypass) ~= "boolean" then raise("opts.bypass must be a boolean") end
  o.envelope = o.stale > 0 or o.stale_if_error > 0 or o.early > 0
  o.lease_ms = math_ceil(o.lease_ttl * 1000)
  return o
end
_M.check_opts = check_opts

-- How long an entry of ttl seconds is kept (its stale windows included), in ms.
local function hard_ms(o, ttl)
  if ttl <= 0 then return 0 end
  local hard = ttl
  if o.envelope then hard = ttl + math_max(o.stale, o.stale_if_error) end
  return math_ceil(hard * 1000)
end

-- The lease: 2, epoch, tokens (ours) | 1, epoch | 3, pttl, epoch | nil, err.
-- With tags, their tokens are read (created) now, before fn reads anything.
local function take(cache, key, tok, o, ignore, default_ttl)
  local tag_ms
  if o.tags then
    local px = hard_ms(o, o.ttl or default_ttl)
    tag_ms = px > 0 and px + o.lease_ms or 0
  end
  return cache:_lease(key, tok, o.lease_ms, ignore, o.tags, tag_ms)
end

-- fn's results: value[, ttl] is a value; nil, err (err neither nil nor a
-- number) a failed computation (mlcache's convention).
local function failed(value, second)
  return value == nil and second ~= nil and type(second) ~= "number"
end

-- Without the cache (it failed, or the wait for another filler timed out
-- with on_wait_timeout = "compute"): fn's value, never stored.
local function compute(fn, status, cause)
  local value, second = fn()
  if failed(value, second) then return nil, second, nil, cause end
  return value, nil, status, cause
end

-- A wait for another filler ran out: what opts.on_wait_timeout says.
local function ran_out(fn, o, has_stale, stale_value)
  if o.on_wait_timeout == "error" then return nil, "timeout" end
  if o.on_wait_timeout == "stale" then
    if has_stale then return stale_value, nil, "stale" end
    return nil, "timeout"
  end
  return compute(fn, "miss") -- "compute": without the lease, not stored
end

-- One wait round (a BLPOP) is at most a day; a longer wait takes several.
local MAX_ROUND = 86400

-- The cache failed with err: compute without it, unless opted out.
local function bypass(fn, o, err)
  if not o.bypass then return nil, err end
  return compute(fn, "bypass", err)
end

-- Redis could not be reached: with an L1, the value computed is also kept
-- in this process for l1.local_ttl seconds, served only while Redis stays
-- unreachable (a stale copy; never once Redis answers again).
local function bypass_keep(cache, key, fn, o, err)
  local r = compat.pack(bypass(fn, o, err))
  if r[1] ~= nil and r[3] == "bypass" then
    local ok, bytes = pcall(cache.encode, cache, r[1], key)
    if ok and cache._l1_keep then cache:_l1_keep(key, bytes) end
  end
  return compat.unpack(r, 1, r.n)
end

local function check_ttl(ttl)
  if type(ttl) ~= "number" or ttl ~= ttl or ttl < 0 or ttl > 1e11 then
    raise("get_or_set: fn returned an invalid ttl (a non-negative number of seconds expected)")
  end
  return ttl
end

-- After fn succeeded under our lease: encode and store. Raises on a value
-- that cannot be encoded or an invalid ttl (the caller releases).
local function store(cache, key, tok, epoch, o, value, ttl, delta_ms, default_ttl, tokens)
  if ttl ~= nil then check_ttl(ttl) end
  ttl = ttl or o.ttl or default_ttl
  if value == nil then
    if o.neg_ttl <= 0 then
      cache:_release(key, tok, epoch)
      return nil, nil, "miss"
    end
    ttl = o.neg_ttl
  end
  local soft = (o.envelope and ttl > 0) and time_ms() + math_ceil(ttl * 1000) or nil
  local ok, bytes
  if soft or o.tags then
    ok, bytes = pcall(cache._entry, cache, value, soft, delta_ms, o.tags, tokens, key)
  else
    ok, bytes = pcall(cache.encode, cache, value, key)
  end
  if not ok then
    local why = argerror.strip(bytes):gsub("^bad argument #%d+ to '[^']*' %((.*)%)$", "%1")
    raise("get_or_set: fn returned a value that cannot be stored: " .. why)
  end
  -- false: our lease was revoked by a write (or the epoch moved on): not
  -- stored, but this caller still gets the value it computed
  local stored, err = cache:_fill(key, tok, epoch, bytes, hard_ms(o, ttl), o.tags)
  if stored == nil then
    -- the store failed (connection closed or killed, a server error): give
    -- the lease back, so that waiters take over now instead of waiting out
    -- lease_ttl. Not after a timeout: the server is not answering (a
    -- release would wait as long), and the store may still run and wake them.
    if err ~= "timeout" then cache:_release(key, tok, epoch) end
    return value, nil, "bypass", err
  end
  if stored then return value, nil, "miss", nil, #bytes end -- #bytes: for the stats
  return value, nil, "miss"
end

-- Runs fn under our lease and stores its value. Whatever fails after the
-- lease was taken (fn raises or returns nil, err, its value cannot be
-- encoded, the keeper or the store raise), the lease is given back so a
-- waiter computes at once instead of waiting out lease_ttl.
local function fill(cache, key, tok, epoch, fn, o, stale_value, has_stale, default_ttl, tokens)
  local keep
  if o.lease_ms >= 30 then keep = cache:_keep(key, tok, epoch, o.lease_ms) end
  local t0 = now()
  local ok, value, second = pcall(fn)
  if keep then pcall(keep.stop, keep) end
  if not ok or failed(value, second) then
    cache:_release(key, tok, epoch) -- a waiter retries at once
    local err = ok and second or value
    if has_stale and o.stale_if_error > 0 then return stale_value, nil, "stale_error", err end
    if not ok then error(value, 0) end -- fn's own error, as fn raised it
    return nil, err
  end
  local res = pack(pcall(store, cache, key, tok, epoch, o, value, second,
                         math_ceil((now() - t0) * 1000), default_ttl, tokens))
  if not res[1] then
    cache:_release(key, tok, epoch)
    error(res[2], 0) -- already positioned at the caller's line
  end
  return unpack(res, 2, res.n)
end

-- XFetch: recompute early when now - delta * beta * ln(rand) >= expiry.
local function xfetch(soft_ms, delta_ms, beta)
  return time_ms() - delta_ms * beta * math_log(math_random()) >= soft_ms
end

-- A value that is there but cannot be decoded (another writer's format,
-- a corrupt entry) is no reason to bypass the cache forever: get_or_set
-- takes the lease and replaces it.
local function undecodable(err)
  return type(err) == "string" and err:find("^decode error") ~= nil
end

--- cache:get_or_set(key, fn, opts) -> value, err, status[, cause[, stored]]
-- (cause: the cache's error behind a bypass; stored: the bytes a fill
-- stored; both for the stats wrapper in init.lua only)
function _M.get_or_set(cache, key, fn, opts, default_ttl)
  if not argerror.is_callable(fn) then
    raise("bad argument #2 to 'get_or_set' (function expected, got " .. type(fn) .. ")")
  end
  local o = check_opts(opts)
  -- the hit path: one C call (GET, with tags GET + MGET of the tags); it
  -- also checks the key (its argument errors name get_or_set)
  local ok, found, value, soft, delta = pcall(cache._read, cache, key, o.tags)
  if not ok then rethrow(found, "get_or_set", 1) end
  if found == nil then
    if not undecodable(value) then return bypass_keep(cache, key, fn, o, value) end
    found, value = false, true -- bytes we cannot read: compute and replace them
  end
  local tok = token()
  local has_stale, ignore = false, found == false and value
  if found then
    if not soft then return value, nil, "hit" end
    local t = time_ms()
    if t < soft then
      if o.early > 0 and xfetch(soft, delta, o.early) then
        local r, epoch, tokens = take(cache, key, tok, o, true, default_ttl)
        if r == 2 then return fill(cache, key, tok, epoch, fn, o, value, true, default_ttl, tokens) end
      end
      return value, nil, "hit"
    end
    -- past the soft expiry: a stale value
    has_stale, ignore = true, true
    if o.stale > 0 and t < soft + o.stale * 1000 then
      local r, epoch, tokens = take(cache, key, tok, o, true, default_ttl)
      if r == nil then return bypass(fn, o, epoch) end
      if r == 2 then return fill(cache, key, tok, epoch, fn, o, value, true, default_ttl, tokens) end
      return value, nil, "stale"
    end
  end
  -- a miss (or a stale value past its stale window): the lease loop
  local stale_value = has_stale and value or nil
  local deadline = now() + o.wait
  local waited = false
  while true do
    -- ignore: the key holds something we cannot use, so its existence is no hit
    local r, a, b = take(cache, key, tok, o, ignore, default_ttl)
    if r == nil then return bypass(fn, o, a) end
    if r == 2 then return fill(cache, key, tok, a, fn, o, stale_value, has_stale, default_ttl, b) end
    if r == 3 then -- someone else's lease: a = its PTTL, b = the epoch
      local left = deadline - now()
      if left <= 0 then return ran_out(fn, o, has_stale, stale_value) end
      -- one BLPOP round, at most what is left of the wait (and of the
      -- lease); it returns at most one command timeout later, even when
      -- Redis does not answer
      local woke, werr = cache:_wait(key, b, math_min(left, (a > 0 and a or 1) / 1000 + 0.01, MAX_ROUND))
      -- the wait is used up (the round timed out, or the server did not
      -- answer it within the command timeout): no further round
      if not woke and now() >= deadline then return ran_out(fn, o, has_stale, stale_value) end
      if woke == nil then return bypass(fn, o, werr) end
      waited = true
    end
    found, value, soft = cache:_read(key, o.tags)
    if found == nil then
      if not undecodable(value) then return bypass(fn, o, value) end
      found, value = false, true
    end
    if found and (not soft or time_ms() < soft) then
      if waited then cache:_wake(key) end -- pass the wake-up on
      return value, nil, waited and "waited" or "hit"
    end
    if found then
      has_stale, stale_value, ignore = true, value, true
    else
      ignore = value -- something invisible is there: take the lease anyway
    end
    -- woken, but no value: another round only while the wait lasts
    if waited and now() >= deadline then return ran_out(fn, o, has_stale, stale_value) end
  end
end

return _M
