--- hicache.lease: get_or_set with leases, and the invalidations that
-- revoke them (delete, delete_many, invalidate).
--
-- On a miss, one caller across all processes takes the lease of the key
-- ({prefix:version:key}:lease, a random token, lease_ttl) and computes; the
-- others wait for a wake-up (BLPOP on {..}:wake, bounded by the lease's
-- remaining TTL and opts.wait) and read its value. The filler stores only
-- if its lease is still valid (one script), and every invalidation deletes
-- the lease: a fill that started before an invalidation is never stored
-- after it (the memcache "lease", Facebook NSDI 2013).

local core = require "hicache.core"
local scripts = require "hicache.scripts"

local eval, lease_key, wake_key, gen_key = scripts.eval, scripts.lease_key, scripts.wake_key, scripts.gen_key
local token, time_ms, now = core.token, core.time_ms, core.now
local type, error, pcall, tostring = type, error, pcall, tostring
local math_min, math_log, math_random, math_ceil = math.min, math.log, math.random, math.ceil

local _M = {}

local WAKE_TTL = scripts.WAKE_TTL_MS

--- Deletes keys (a list of full keys), revokes their leases and moves on
-- their generations and those of tags (a list of tag names), in one round
-- trip.
local function invalidate_many(cache, fulls, tags)
  local keys, n = {}, #fulls
  for i, k in ipairs(fulls) do
    keys[4 * i - 3], keys[4 * i - 2], keys[4 * i - 1], keys[4 * i] = k, lease_key(k), wake_key(k), gen_key(k)
  end
  for _, t in ipairs(tags or {}) do keys[#keys + 1] = cache:_tag_key(t) end
  if #keys == 0 then return 0 end
  local nkeys = #keys
  keys[nkeys + 1], keys[nkeys + 2] = WAKE_TTL, n
  return eval(cache, scripts.INVALIDATE, nkeys, table.unpack(keys))
end
_M.invalidate_many = invalidate_many

local function invalidate_full(cache, fulls) return invalidate_many(cache, fulls, nil) end
_M.invalidate_full = invalidate_full

function _M.delete(cache, key)
  local n, err = invalidate_full(cache, { cache:_key(key) })
  if not n then return nil, err end
  return n > 0
end

function _M.delete_many(cache, keys)
  if type(keys) ~= "table" then
    error("bad argument #1 to 'delete_many' (table expected, got " .. type(keys) .. ")", 3)
  end
  local fulls = {}
  for i = 1, #keys do fulls[i] = cache:_key(keys[i]) end
  return invalidate_full(cache, fulls)
end

function _M.invalidate(cache, key_or_list)
  local list = type(key_or_list) == "table" and key_or_list or { key_or_list }
  local fulls = {}
  for i = 1, #list do fulls[i] = cache:_key(list[i]) end
  local n, err = invalidate_full(cache, fulls)
  if not n then return nil, err end
  return true
end

local function check_tags(tags, level)
  if type(tags) ~= "table" then error("tags must be a list of strings", level) end
  for i = 1, #tags do
    if type(tags[i]) ~= "string" or tags[i] == "" then error("tags must be non-empty strings", level) end
  end
  return tags
end

--- cache:invalidate_tag(tag_or_list) -> true | nil, err
-- Every entry carrying one of the tags becomes a miss: O(1) per tag (a
-- generation counter), whatever the number of entries.
function _M.invalidate_tag(cache, tag_or_list)
  local tags = check_tags(type(tag_or_list) == "table" and tag_or_list or { tag_or_list }, 4)
  local n, err = invalidate_many(cache, {}, tags)
  if not n then return nil, err end
  return true
end

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
  return o
end

-- Runs fn and stores its value under our lease. Returns value, status[, err].
local function fill(cache, full, tok, fn, o, stale_value, has_stale, default_ttl, gen)
  local lease, wake = lease_key(full), wake_key(full)
  local t0 = now()
  local res = table.pack(pcall(fn))
  local delta_ms = math_ceil((now() - t0) * 1000)
  if not res[1] then
    eval(cache, scripts.RELEASE, 2, lease, wake, tok, WAKE_TTL) -- waiters retry at once
    if has_stale and o.stale_if_error > 0 then return stale_value, "stale_error", res[2] end
    error(res[2], 0)
  end
  local value, ttl = res[2], res[3]
  if ttl ~= nil and (type(ttl) ~= "number" or ttl ~= ttl or ttl < 0) then
    eval(cache, scripts.RELEASE, 2, lease, wake, tok, WAKE_TTL)
    error("get_or_set: fn returned an invalid ttl (a non-negative number expected)", 0)
  end
  ttl = ttl or o.ttl or default_ttl
  if value == nil then
    if o.neg_ttl <= 0 then
      eval(cache, scripts.RELEASE, 2, lease, wake, tok, WAKE_TTL)
      return nil, "miss"
    end
    ttl = o.neg_ttl
  end
  local bytes, hard
  if o.envelope and ttl > 0 then
    bytes = cache:_encode_env(value, time_ms() + math_ceil(ttl * 1000), delta_ms)
    hard = ttl + math.max(o.stale, o.stale_if_error)
  else
    bytes = cache:encode(value)
    hard = ttl
  end
  local px = hard > 0 and math_ceil(hard * 1000) or 0
  -- stored = 0 means our lease was revoked by an invalidation: not stored,
  -- but this caller still gets the value it computed.
  local stored, err
  if gen then
    stored, err = eval(cache, scripts.FILL, 4, full, lease, wake, gen, tok, bytes, px, WAKE_TTL)
  else
    stored, err = eval(cache, scripts.FILL, 3, full, lease, wake, tok, bytes, px, WAKE_TTL)
  end
  if not stored then return value, "miss", err end
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
  local tags = o.tags
  -- the hit path: one GET (or, with tags, one EVALSHA) and the decode, in C
  local found, value, soft, delta, full, gen
  if tags then
    found, value, soft, delta = cache:_tagged(key, tags)
    if found == false then full = value[1] end
  else
    found, value, soft, delta = cache:_get_meta(key)
  end
  if found == nil then return nil, value end
  local function target()
    -- only on the fill paths: a tagged fill also creates the key's generation
    if tags then gen = gen or gen_key(cache:_key(key)) end
    if full then return full end
    if tags then
      local f, v = cache:_tagged(key, tags, "name")
      if f == nil then return nil, v end
      full = v[1]
    else
      full = cache:_key(key)
    end
    return full
  end
  local has_stale = false
  if found then
    if not soft then return value, "hit" end
    local t = time_ms()
    if t < soft then
      if o.early > 0 and xfetch(soft, delta, o.early) then
        local tok, name = token(), target()
        if name and cache:command("SET", lease_key(name), tok, "NX", "PX", math_ceil(o.lease_ttl * 1000)) == "OK" then
          return fill(cache, name, tok, fn, o, value, true, default_ttl, gen)
        end
      end
      return value, "hit"
    end
    -- past the soft expiry: a stale value
    has_stale = true
    if o.stale > 0 and t < soft + o.stale * 1000 then
      local tok = token()
      local name, terr = target()
      if not name then return nil, terr end
      local ok, err = cache:command("SET", lease_key(name), tok, "NX", "PX", math_ceil(o.lease_ttl * 1000))
      if ok == "OK" then return fill(cache, name, tok, fn, o, value, true, default_ttl, gen) end
      if ok == nil and err then return nil, err end
      return value, "stale"
    end
  end
  -- a miss (or a stale value past its stale window): the lease loop
  local name, terr = target()
  if not name then return nil, terr end
  local stale_value = has_stale and value or nil
  local tok = token()
  local lease_ms = math_ceil(o.lease_ttl * 1000)
  local deadline = now() + o.wait
  local waited = false
  local lease, wake = lease_key(name), wake_key(name)
  while true do
    -- has_stale: the key exists but is not fresh, so existence is no hit
    local r, err = eval(cache, scripts.LEASE, 2, name, lease, tok, lease_ms, has_stale and "1" or "0")
    if not r then return nil, err end
    if r[1] == 2 then
      return fill(cache, name, tok, fn, o, stale_value, has_stale, default_ttl, gen)
    end
    if r[1] == 3 then
      local left = deadline - now()
      if left <= 0 then
        if o.on_wait_timeout == "error" then return nil, "timeout" end
        if o.on_wait_timeout == "stale" then
          if has_stale then return stale_value, "stale" end
          return nil, "timeout"
        end
        return (fn()), "miss" -- "compute": without the lease, not stored
      end
      local woke, werr = scripts.wait(cache, wake, math_min(left, (r[2] > 0 and r[2] or 1) / 1000 + 0.01))
      if woke == nil then return nil, werr end
      waited = true
    end
    found, value, soft = cache:_get_meta_raw(name)
    if found == nil then return nil, value end
    if found and (not soft or time_ms() < soft) then
      if waited then scripts.wake(cache, wake) end -- pass the wake-up on
      return value, waited and "waited" or "hit"
    end
    if found then has_stale, stale_value = true, value end
  end
end

return _M
