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
local string_format = string.format

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

--- cache:delete(key) -> true (it existed) | false | nil, err
-- Also revokes the key's get_or_set lease and wakes its waiters.
function Cache:delete(key) return lease.delete(self, key) end

--- cache:delete_many(keys) -> number deleted | nil, err (revokes leases too)
function Cache:delete_many(keys) return lease.delete_many(self, keys) end

--- cache:invalidate(key_or_list) -> true | nil, err
-- Deletes the entries and revokes their leases: a get_or_set fill that
-- started before this call is never stored after it.
function Cache:invalidate(key_or_list) return lease.invalidate(self, key_or_list) end

--- cache:invalidate_tag(tag_or_list) -> true | nil, err (O(1) per tag)
function Cache:invalidate_tag(tags) return lease.invalidate_tag(self, tags) end

--- cache:memoize(fn, opts) -> memoized callable
function Cache:memoize(fn, opts) return memoize.new(self, fn, opts) end

--- cache:on_write(fn, {keys =, tags =}) -> writer that invalidates
function Cache:on_write(fn, opts) return invalidate.on_write(self, fn, opts) end

--- cache:batch() -> deferred invalidations (commit / rollback)
function Cache:batch() return invalidate.batch(self) end

--- cache:get_or_set(key, fn, opts) -> value, status[, err]
function Cache:get_or_set(key, fn, opts)
  return lease.get_or_set(self, key, fn, opts, settings_of[self].ttl_ms / 1000)
end

--- cache:lock(name, opts) -> lock | nil, "timeout" | nil, err
function Cache:lock(name, opts)
  return lock.acquire(self, settings_of[self].prefix, name, opts)
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
