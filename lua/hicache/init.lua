--- hicache: Redis caching for Lua.
-- require "hicache" -> this module. The C core (hicache.core) does the
-- work, including every cache operation on the hot path; this layer
-- validates options and adds the few methods that are not hot (SCAN-based
-- key iteration and namespace deletion) to the client class of the core.

local core = require "hicache.core"
local config = require "hicache.config"
local lease = require "hicache.lease"
local lock = require "hicache.lock"
local memoize = require "hicache.memoize"
local invalidate = require "hicache.invalidate"

local type, error, setmetatable, pairs = type, error, setmetatable, pairs

local _M = {
  _VERSION = core._VERSION,
  null = core.null, -- what a Redis nil maps to (like ngx.null)
  now = core.now,   -- seconds on the monotonic clock
}

-- The validated settings of each cache, for with_version().
local settings_of = setmetatable({}, { __mode = "k" })

--- hicache.new(opts) -> cache | nil, err
-- Argument errors raise at the caller's line; a rediss:// URL returns
-- nil, "tls not available: ...". No connection is opened until first use.
function _M.new(opts)
  local settings, err, kind = config.settings(opts)
  if not settings then
    if kind == "tls" then return nil, err end
    error(err, 2)
  end
  local cache = core.new(settings)
  settings_of[cache] = settings
  return cache
end

_M.parse_url = config.parse_url

local Cache = core.Client -- the methods table of the C class

local EV, now = core.EV, core.now
local STATUS_EVENTS = {
  hit = EV.hit, miss = EV.miss | EV.compute, waited = EV.hit | EV.wait,
  stale = EV.hit | EV.stale, stale_error = EV.stale | EV.error,
}

local function observed(self)
  local s = settings_of[self]
  return s.stats or s.on_event
end


--- cache:delete(key) -> true (it existed) | false | nil, err
-- Also revokes the key's get_or_set lease and wakes its waiters.
function Cache:delete(key)
  if not observed(self) then return lease.delete(self, key) end
  local t0 = now()
  local ok, err = lease.delete(self, key)
  self:_record("delete", ok == nil and EV.error or EV.delete, self:_key(key), t0, err)
  return ok, err
end

--- cache:delete_many(keys) -> number deleted | nil, err (revokes leases too)
function Cache:delete_many(keys) return lease.delete_many(self, keys) end

--- cache:invalidate(key_or_list) -> true | nil, err
-- Deletes the entries and revokes their leases: a get_or_set fill that
-- started before this call is never stored after it.
function Cache:invalidate(key_or_list)
  if not observed(self) then return lease.invalidate(self, key_or_list) end
  local t0 = now()
  local ok, err = lease.invalidate(self, key_or_list)
  local one = type(key_or_list) ~= "table" and self:_key(key_or_list) or nil
  self:_record("invalidate", ok == nil and EV.error or EV.invalidate, one, t0, err)
  return ok, err
end

--- cache:invalidate_tag(tag_or_list) -> true | nil, err (O(1) per tag)
function Cache:invalidate_tag(tags)
  if not observed(self) then return lease.invalidate_tag(self, tags) end
  local t0 = now()
  local ok, err = lease.invalidate_tag(self, tags)
  self:_record("invalidate", ok == nil and EV.error or EV.invalidate, nil, t0, err)
  return ok, err
end

--- cache:memoize(fn, opts) -> memoized callable
function Cache:memoize(fn, opts) return memoize.new(self, fn, opts) end

--- cache:on_write(fn, {keys =, tags =}) -> writer that invalidates
function Cache:on_write(fn, opts) return invalidate.on_write(self, fn, opts) end

--- cache:batch() -> deferred invalidations (commit / rollback)
function Cache:batch() return invalidate.batch(self) end

--- cache:get_or_set(key, fn, opts) -> value, status[, err]
function Cache:get_or_set(key, fn, opts)
  if not observed(self) then
    return lease.get_or_set(self, key, fn, opts, settings_of[self].ttl_ms / 1000)
  end
  local t0 = now()
  local v, status, err = lease.get_or_set(self, key, fn, opts, settings_of[self].ttl_ms / 1000)
  local ev = STATUS_EVENTS[status]
  -- on a runtime failure get_or_set returned nil, err: the error is `status`
  self:_record("get_or_set", ev or EV.error, self:_key(key), t0, ev == nil and status or err)
  return v, status, err
end

--- cache:stats_text() -> the counters in the Prometheus text format
function Cache:stats_text()
  local st, err = self:stats()
  if not st then return nil, err end
  local prefix = settings_of[self].prefix
  local out = {}
  local function esc(v) return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" })) end
  local counters = { "hits", "misses", "sets", "deletes", "invalidations", "errors", "stale", "waits",
                     "computes", "lock_waits", "bytes_in", "bytes_out" }
  local function emit(family, c)
    local labels = ('prefix="%s"'):format(esc(prefix)) .. (family and (',family="%s"'):format(esc(family)) or "")
    for _, name in ipairs(counters) do
      out[#out + 1] = ("hicache_%s_total{%s} %d"):format(name, labels, c[name])
    end
    out[#out + 1] = ("hicache_hit_rate{%s} %.6f"):format(labels, c.hit_rate)
    for op, q in pairs(c.ops) do
      out[#out + 1] = ("hicache_operations_total{%s,op=\"%s\"} %d"):format(labels, op, q.count)
      for _, p in ipairs { { "0.5", q.p50 }, { "0.9", q.p90 }, { "0.99", q.p99 } } do
        out[#out + 1] = ("hicache_latency_ms{%s,op=\"%s\",quantile=\"%s\"} %.3f"):format(labels, op, p[1], p[2])
      end
    end
  end
  for _, name in ipairs(counters) do
    out[#out + 1] = ("# TYPE hicache_%s_total counter"):format(name)
  end
  out[#out + 1] = "# TYPE hicache_hit_rate gauge"
  out[#out + 1] = "# TYPE hicache_operations_total counter"
  out[#out + 1] = "# TYPE hicache_latency_ms summary"
  emit(nil, st)
  local fams = {}
  for f in pairs(st.families) do fams[#fams + 1] = f end
  table.sort(fams)
  for _, f in ipairs(fams) do emit(f, st.families[f]) end
  return table.concat(out, "\n") .. "\n"
end

--- cache:lock(name, opts) -> lock | nil, "timeout" | nil, err
function Cache:lock(name, opts)
  if not observed(self) then return lock.acquire(self, settings_of[self].prefix, name, opts) end
  local t0 = now()
  local l, err = lock.acquire(self, settings_of[self].prefix, name, opts)
  local ev = l and ((l.commands or 1) > 1 and EV.lock_wait or 0) or (err == "timeout" and EV.lock_wait or EV.error)
  self:_record("lock", ev, nil, t0, l == nil and err ~= "timeout" and err or nil)
  return l, err
end

--- cache:with_lock(name, opts, fn, ...) -> fn's results | nil, err
function Cache:with_lock(name, opts, fn, ...)
  return lock.with_lock(self, settings_of[self].prefix, name, opts, fn, ...)
end

local c_incr_version = Cache.incr_version
--- cache:incr_version(key, delta) -> new version | nil, err
-- Moves the entry to the new version and revokes the old key's lease.
function Cache:incr_version(key, delta)
  local v, err = c_incr_version(self, key, delta)
  if v then lease.invalidate_full(self, { self:_key(key) }) end
  return v, err
end

--- cache:with_version(v) -> a cache on the same pool, at key version v
function Cache:with_version(v)
  if type(v) ~= "number" or v % 1 ~= 0 then error("version must be an integer", 2) end
  local s = {}
  for k, x in pairs(settings_of[self]) do s[k] = x end
  s.version = v
  local c = core.new(s)
  settings_of[c] = s
  return c
end

-- Glob-escapes a literal so it matches only itself in SCAN MATCH.
local function glob_escape(s)
  return (s:gsub("[%*%?%[%]\\]", "\\%0"))
end

local SCAN_COUNT, BATCH = 1000, 500

--- cache:keys(pattern) -> iterator over this cache's keys matching the
-- glob pattern (default "*"), without the prefix:version: part. Uses SCAN.
-- The iterator raises nothing: on an error it stops and the error is
-- returned by a final call as nil, err.
function Cache:keys(pattern)
  pattern = pattern or "*"
  if type(pattern) ~= "string" then error("pattern must be a string", 2) end
  local ns = self:_namespace()
  local match = glob_escape(ns) .. pattern
  local cursor, batch, i, done = "0", {}, 0, false
  local cut = #ns + 1
  return function()
    while true do
      i = i + 1
      if batch[i] then return batch[i]:sub(cut) end
      if done then return nil end
      local r, err = self:command("SCAN", cursor, "MATCH", match, "COUNT", SCAN_COUNT)
      if not r then done = true; return nil, err end
      cursor, batch, i = r[1], r[2], 0
      done = cursor == "0"
    end
  end
end

local function delete_matching(self, match)
  local cursor, deleted = "0", 0
  repeat
    local r, err = self:command("SCAN", cursor, "MATCH", match, "COUNT", SCAN_COUNT)
    if not r then return nil, err end
    cursor = r[1]
    local keys = r[2]
    for from = 1, #keys, BATCH do
      local n, uerr = self:command("UNLINK", table.unpack(keys, from, math.min(from + BATCH - 1, #keys)))
      if not n then return nil, uerr end
      deleted = deleted + n
    end
  until cursor == "0"
  return deleted
end

--- cache:delete_pattern(pattern) -> number deleted | nil, err
-- SCAN with a large COUNT and UNLINK in batches: never KEYS. The pattern
-- applies inside this cache's namespace only.
-- Revokes the leases of the keys matching pattern in this namespace, and
-- deletes their tagged entries ({key}@generations) and their leases.
local function revoke_leases(self, pattern)
  local head = "\\{" .. glob_escape(self:_namespace()) .. pattern .. "\\}"
  local _, err = delete_matching(self, head .. ":lease")
  if err then return nil, err end
  return delete_matching(self, head .. "@*")
end

function Cache:delete_pattern(pattern)
  if type(pattern) ~= "string" then error("pattern must be a string", 2) end
  local n, err = delete_matching(self, glob_escape(self:_namespace()) .. pattern)
  if not n then return nil, err end
  local _, lerr = revoke_leases(self, pattern)
  if lerr then return nil, lerr end
  return n
end

--- cache:clear() -> number deleted | nil, err
-- Deletes this cache's prefix:version: namespace only, never FLUSHDB.
function Cache:clear()
  local n, err = delete_matching(self, glob_escape(self:_namespace()) .. "*")
  if not n then return nil, err end
  local _, lerr = revoke_leases(self, "*")
  if lerr then return nil, lerr end
  return n
end

return _M
