--- hicache.lease: get_or_set with leases (docs/DESIGN.md, "No stale value").
--
-- On a miss, one caller across all processes takes the key's lease (a
-- random token under the namespace's current epoch, lease_ttl) and
-- computes; the others wait for a wake-up (BLPOP, bounded by the lease's
-- remaining TTL and opts.wait) and read its value. While fn runs, the
-- keeper thread extends the lease, so a slow fn is still computed once.
-- The filler stores only while its lease and the epoch still hold (one
-- script). Every write and invalidation revokes the lease of its key, and
-- clear() / delete_pattern() move the epoch on: a fill that started
-- before any of them returned is never stored after it. Each step is one
-- C call (src/hc_lease.c, src/hc_read.c).

local core = require "hicache.core"

local token, time_ms, now = core.token, core.time_ms, core.now
local type, error, pcall, tostring, pairs = type, error, pcall, tostring, pairs
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local math_min, math_max, math_log, math_random, math_ceil = math.min, math.max, math.log, math.random, math.ceil

local _M = {}

local function check_tags(tags, level)
  if type(tags) ~= "table" then error("tags must be a list of strings", level) end
  for i = 1, #tags do
    if type(tags[i]) ~= "string" or tags[i] == "" then error("tags must be non-empty strings", level) end
  end
  return tags
end
_M.check_tags = check_tags

-- ---- get_or_set ---------------------------------------------------------

local STATUS_TIMEOUT = { compute = true, error = true, stale = true }

local function number_opt(opts, name, default, min)
  local v = opts[name]
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < min or v == math.huge then
    error(("opts.%s must be a number >= %s"):format(name, min), 4)
  end
  return v
end

local NO_OPTS = {}

local function check_opts(opts)
  if opts == nil then opts = NO_OPTS end
  if type(opts) ~= "table" then error("opts must be a table", 3) end
  local o = {
    ttl = opts.ttl ~= nil and number_opt(opts, "ttl", nil, 0) or nil,
    neg_ttl = number_opt(opts, "neg_ttl", 0, 0),
    lease_ttl = number_opt(opts, "lease_ttl", 10, 0.01),
    stale = number_opt(opts, "stale", 0, 0),
    stale_if_error = number_opt(opts, "stale_if_error", 0, 0),
    early = number_opt(opts, "early", 0, 0),
    on_wait_timeout = opts.on_wait_timeout or "compute",
    tags = opts.tags ~= nil and check_tags(opts.tags, 4) or nil,
  }
  o.wait = number_opt(opts, "wait", 3 * o.lease_ttl, 0)
  if not STATUS_TIMEOUT[o.on_wait_timeout] then
    error('opts.on_wait_timeout must be "compute", "error" or "stale"', 3)
  end
  for k in pairs(opts) do
    if o[k] == nil and k ~= "ttl" and k ~= "tags" then error(("unknown option '%s'"):format(tostring(k)), 3) end
  end
  o.envelope = o.stale > 0 or o.stale_if_error > 0 or o.early > 0
  o.lease_ms = math_ceil(o.lease_ttl * 1000)
  return o
end

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

-- Runs fn under our lease and stores its value. Returns value, status[, err].
local function fill(cache, key, tok, epoch, fn, o, stale_value, has_stale, default_ttl, tokens)
  local keep = o.lease_ms >= 30 and cache:_keep(key, tok, epoch, o.lease_ms) or nil
  local t0 = now()
  local res = pack(pcall(fn))
  if keep then keep:stop() end
  local delta_ms = math_ceil((now() - t0) * 1000)
  if not res[1] then
    cache:_release(key, tok, epoch) -- a waiter retries at once
    if has_stale and o.stale_if_error > 0 then return stale_value, "stale_error", res[2] end
    error(res[2], 0)
  end
  local value, ttl = res[2], res[3]
  if ttl ~= nil and (type(ttl) ~= "number" or ttl ~= ttl or ttl < 0) then
    cache:_release(key, tok, epoch)
    error("get_or_set: fn returned an invalid ttl (a non-negative number expected)", 0)
  end
  ttl = ttl or o.ttl or default_ttl
  if value == nil then
    if o.neg_ttl <= 0 then
      cache:_release(key, tok, epoch)
      return nil, "miss"
    end
    ttl = o.neg_ttl
  end
  local soft = (o.envelope and ttl > 0) and time_ms() + math_ceil(ttl * 1000) or nil
  local ok, bytes
  if soft or o.tags then
    ok, bytes = pcall(cache._entry, cache, value, soft, delta_ms, o.tags, tokens)
  else
    ok, bytes = pcall(cache.encode, cache, value)
  end
  if not ok then
    cache:_release(key, tok, epoch) -- nothing to store: let the waiters compute
    error(bytes, 0)
  end
  -- false: our lease was revoked by a write (or the epoch moved on): not
  -- stored, but this caller still gets the value it computed
  local stored, err = cache:_fill(key, tok, epoch, bytes, hard_ms(o, ttl), o.tags)
  if stored == nil then return value, "miss", err end
  return value, "miss"
end

-- XFetch: recompute early when now - delta * beta * ln(rand) >= expiry.
local function xfetch(soft_ms, delta_ms, beta)
  return time_ms() - delta_ms * beta * math_log(math_random()) >= soft_ms
end

--- cache:get_or_set(key, fn, opts) -> value, status[, err]
function _M.get_or_set(cache, key, fn, opts, default_ttl)
  if type(fn) ~= "function" and not (type(fn) == "table" and getmetatable(fn) and getmetatable(fn).__call) then
    error("bad argument #2 to 'get_or_set' (function expected, got " .. type(fn) .. ")", 3)
  end
  local o = check_opts(opts)
  -- the hit path: one C call (GET, with tags GET + MGET of the tags)
  local found, value, soft, delta = cache:_read(key, o.tags)
  if found == nil then return nil, value end
  local tok = token()
  local has_stale, ignore = false, found == false and value
  if found then
    if not soft then return value, "hit" end
    local t = time_ms()
    if t < soft then
      if o.early > 0 and xfetch(soft, delta, o.early) then
        local r, epoch, tokens = take(cache, key, tok, o, true, default_ttl)
        if r == 2 then return fill(cache, key, tok, epoch, fn, o, value, true, default_ttl, tokens) end
      end
      return value, "hit"
    end
    -- past the soft expiry: a stale value
    has_stale, ignore = true, true
    if o.stale > 0 and t < soft + o.stale * 1000 then
      local r, epoch, tokens = take(cache, key, tok, o, true, default_ttl)
      if r == nil then return nil, epoch end
      if r == 2 then return fill(cache, key, tok, epoch, fn, o, value, true, default_ttl, tokens) end
      return value, "stale"
    end
  end
  -- a miss (or a stale value past its stale window): the lease loop
  local stale_value = has_stale and value or nil
  local deadline = now() + o.wait
  local waited = false
  while true do
    -- ignore: the key holds something we cannot use, so its existence is no hit
    local r, a, b = take(cache, key, tok, o, ignore, default_ttl)
    if r == nil then return nil, a end
    if r == 2 then return fill(cache, key, tok, a, fn, o, stale_value, has_stale, default_ttl, b) end
    if r == 3 then -- someone else's lease: a = its PTTL, b = the epoch
      local left = deadline - now()
      if left <= 0 then
        if o.on_wait_timeout == "error" then return nil, "timeout" end
        if o.on_wait_timeout == "stale" then
          if has_stale then return stale_value, "stale" end
          return nil, "timeout"
        end
        return (fn()), "miss" -- "compute": without the lease, not stored
      end
      local woke, werr = cache:_wait(key, b, math_min(left, (a > 0 and a or 1) / 1000 + 0.01))
      if woke == nil then return nil, werr end
      waited = true
    end
    found, value, soft = cache:_read(key, o.tags)
    if found == nil then return nil, value end
    if found and (not soft or time_ms() < soft) then
      if waited then cache:_wake(key) end -- pass the wake-up on
      return value, waited and "waited" or "hit"
    end
    if found then
      has_stale, stale_value, ignore = true, value, true
    else
      ignore = value -- something invisible is there: take the lease anyway
    end
  end
end

return _M
