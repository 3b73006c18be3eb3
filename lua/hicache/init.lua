--- hicache: Redis caching for Lua.
-- require "hicache" -> this module. The C core (hicache.core) does the
-- work, including every read and write of the cache API; this layer
-- validates options and adds the methods that are not hot (get_or_set's
-- orchestration, SCAN-based key iteration and namespace deletion, locks,
-- memoize, write-path invalidation) to the client class of the core.

local core = require "hicache.core"
local config = require "hicache.config"
local lease = require "hicache.lease"
local lock = require "hicache.lock"
local memoize = require "hicache.memoize"
local invalidate = require "hicache.invalidate"
local argerror = require "hicache.argerror"
local prometheus = require "hicache.prometheus"
local compat = require "hicache.compat"

local type, setmetatable, pairs, ipairs, tostring = type, setmetatable, pairs, ipairs, tostring
local raise = argerror.raise

local _M = {
  _VERSION = core._VERSION,
  null = core.null, -- what a Redis nil maps to (like ngx.null)
  now = core.now,   -- seconds on the monotonic clock
}

-- The validated settings of each cache, for with_version().
local settings_of = setmetatable({}, { __mode = "k" })

-- A cache for validated settings: the C cache, or inside OpenResty the
-- cosocket cache around it; registered for with_version().
local function open(settings)
  local make = settings.transport == "cosocket" and require("hicache.openresty").new or core.new
  local ngx = rawget(_G, "ngx")
  if settings.backend == "memory" and type(ngx) == "table" and type(ngx.sleep) == "function" then
    make = require("hicache.memory").new -- inside OpenResty: waits poll with ngx.sleep
  end
  local cache, err = make(settings)
  if not cache then return nil, err end
  settings_of[cache] = settings
  return cache
end

--- hicache.new(opts) -> cache | nil, err
-- Argument errors raise at the caller's line; a TLS file that cannot be
-- used returns nil, "tls: ...". No connection is opened until first use.
function _M.new(opts)
  local settings, err = config.settings(opts)
  if not settings then raise(err) end
  return open(settings)
end

--- hicache.read_keys(path) -> encryption keys for encrypt.keys | nil, err
_M.read_keys = require("hicache.keyfile").read

--- hicache.parse_url(url) -> fields | nil, err
function _M.parse_url(url)
  if type(url) ~= "string" then
    raise("bad argument #1 to 'parse_url' (string expected, got " .. type(url) .. ")")
  end
  local f, err = config.parse_url(url)
  if not f then return nil, err end
  return f
end

local Cache = core.Client -- the methods table of the C class

local EV, now, bor = core.EV, core.now, compat.bor
local STATUS_EVENTS = {
  hit = EV.hit, miss = bor(EV.miss, EV.compute), waited = bor(EV.hit, EV.wait),
  stale = bor(EV.hit, EV.stale), stale_error = bor(bor(EV.stale, EV.error), EV.compute),
}

local function observed(self)
  local s = settings_of[self]
  return s.stats or s.on_event
end


-- Sleeps s seconds: blocks this thread here; on cosockets ngx.sleep.
function Cache._sleep(_, s) return core.sleep(s) end

--- cache:memoize(fn, opts) -> memoized callable
function Cache:memoize(fn, opts) return memoize.new(self, fn, opts) end

--- cache:on_write(fn, {keys =, tags =}) -> writer that invalidates
function Cache:on_write(fn, opts) return invalidate.on_write(self, fn, opts) end

--- cache:batch() -> deferred invalidations (commit / rollback)
function Cache:batch() return invalidate.batch(self) end

--- cache:get_or_set(key, fn, opts) -> value, err, status
function Cache:get_or_set(key, fn, opts)
  local default_ttl = settings_of[self].ttl_ms / 1000
  if not observed(self) then
    local v, err, status = lease.get_or_set(self, key, fn, opts, default_ttl)
    return v, err, status
  end
  local t0 = now()
  local v, err, status, cause, stored = lease.get_or_set(self, key, fn, opts, default_ttl)
  -- a runtime failure, or a bypass (the cache failed: fn ran without it)
  local ev
  if err ~= nil then ev = EV.error
  elseif status == "bypass" then ev = bor(EV.error, EV.compute)
  else ev = STATUS_EVENTS[status] end
  if stored then ev = bor(ev, EV.set) end -- a fill counts in sets and bytes_out
  local why = err or cause
  self:_record("get_or_set", ev, self:_key(key), t0, why ~= nil and tostring(why) or nil, stored or 0)
  return v, err, status
end

--- cache:stats_text() -> the counters in the Prometheus text format | nil, err
function Cache:stats_text()
  local st, err = self:stats()
  if not st then return nil, err end
  return prometheus.text(st, settings_of[self].prefix)
end

--- cache:lock(name, opts) -> lock | nil, "timeout" | nil, err
function Cache:lock(name, opts)
  if not observed(self) then return lock.acquire(self, name, opts) end
  local t0 = now()
  local l, err = lock.acquire(self, name, opts)
  local ev = l and ((l.commands or 1) > 1 and EV.lock_wait or 0) or (err == "timeout" and EV.lock_wait or EV.error)
  self:_record("lock", ev, nil, t0, l == nil and err ~= "timeout" and err or nil)
  return l, err
end

--- cache:with_lock(name, opts, fn, ...) -> fn's results | nil, err
function Cache:with_lock(name, opts, fn, ...)
  return lock.with_lock(self, name, opts, fn, ...)
end

--- cache:with_version(v) -> a cache on the same pool, at key version v
function Cache:with_version(v)
  if type(v) ~= "number" or v % 1 ~= 0 or v < -1e15 or v > 1e15 then
    raise("bad argument #1 to 'with_version' (version must be an integer from -1e15 to 1e15)")
  end
  local alive, err = self:pool_stats()
  if not alive then return nil, err end -- "closed"
  local s = {}
  for k, x in pairs(settings_of[self]) do s[k] = x end
  s.version = v
  local c, oerr = open(s)
  if not c then return nil, oerr end
  -- the families memoize(..., {encrypt = true}) added stay sealed at any version
  for _, f in ipairs(self:_seal_families()) do c:_seal_family(f) end
  return c
end

local SCAN_COUNT, BATCH = 1000, 500

-- What SCAN runs on: every master of a cluster (by address), else the
-- one server (false: cache:command).
local function scan_targets(self)
  if self:_is_cluster() then return self:nodes() end
  return { false }
end

local function scan(self, node, cursor, match)
  if node then return self:node_command(node, "SCAN", cursor, "MATCH", match, "COUNT", SCAN_COUNT) end
  return self:command("SCAN", cursor, "MATCH", match, "COUNT", SCAN_COUNT)
end

--- cache:keys(pattern) -> iterator over this cache's keys matching the
-- glob pattern (default "*"), without the prefix:version: part: the keys a
-- get would hit (a tagged entry whose tags moved on is left out). Uses
-- SCAN. The iterator raises nothing: on an error it stops and the error
-- is returned by a final call as nil, err.
function Cache:keys(pattern)
  pattern = pattern or "*"
  if type(pattern) ~= "string" then raise("bad argument #1 to 'keys' (pattern must be a string)") end
  local match = self:_scan_pattern(pattern)
  local cut = #self:_namespace() + 1
  local nodes, err0 = scan_targets(self)
  local cursor, batch, i, done, n = "0", {}, 0, false, 1
  if not nodes then done = true end
  return function()
    while true do
      i = i + 1
      if batch[i] then return batch[i]:sub(cut) end
      if done then
        if err0 then
          local e = err0
          err0 = nil
          return nil, e
        end
        return nil
      end
      local r, err = scan(self, nodes[n], cursor, match)
      local visible
      if r then visible, err = self:_visible(r[2]) end
      if not visible then
        done, batch, i = true, {}, 0
        return nil, err
      end
      cursor, batch, i = r[1], visible, 0
      if cursor == "0" then -- this node is done: the next one, if any
        n = n + 1
        done = nodes[n] == nil
      end
    end
  end
end

-- Deletes the keys of this namespace matching the glob pattern: first the
-- namespace epoch moves on, which revokes every get_or_set lease of the
-- namespace at once (a fill in flight is never stored) and wakes their
-- waiters; then SCAN, and del items of the WRITE script in batches (each
-- also revokes the key's lease). Returns how many entries a read would
-- have seen.
local function delete_matching(self, pattern)
  local ok, err = self:_bump_epoch()
  if not ok then return nil, err end
  local match = self:_scan_pattern(pattern)
  local nodes, nerr = scan_targets(self)
  if not nodes then return nil, nerr end
  local deleted = 0
  for _, node in ipairs(nodes) do
    local cursor = "0"
    repeat
      local r, serr = scan(self, node, cursor, match)
      if not r then return nil, serr end
      cursor = r[1]
      local keys = r[2]
      for from = 1, #keys, BATCH do
        local n, derr = self:_invalidate_full({ compat.unpack(keys, from, math.min(from + BATCH - 1, #keys)) })
        if not n then return nil, derr end
        deleted = deleted + n
      end
    until cursor == "0"
  end
  return deleted
end

--- cache:delete_pattern(pattern) -> number deleted | nil, err
-- SCAN with a large COUNT, never KEYS. The pattern applies inside this
-- cache's namespace only.
-- delete_pattern and clear count as one delete operation each.
local function observed_delete(self, pattern)
  if not observed(self) then return delete_matching(self, pattern) end
  local t0 = now()
  local n, err = delete_matching(self, pattern)
  self:_record("delete", n and EV.delete or EV.error, nil, t0, err)
  return n, err
end

function Cache:delete_pattern(pattern)
  if type(pattern) ~= "string" then raise("bad argument #1 to 'delete_pattern' (pattern must be a string)") end
  return observed_delete(self, pattern)
end

--- cache:clear() -> number deleted | nil, err
-- Deletes this cache's prefix:version: namespace only, never FLUSHDB.
function Cache:clear()
  return observed_delete(self, "*")
end

return _M
