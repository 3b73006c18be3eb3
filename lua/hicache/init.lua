--- hicache: Redis caching for Lua.
-- require "hicache" -> this module. The C core (hicache.core) does the
-- work, including every cache operation on the hot path; this layer
-- validates options and adds the few methods that are not hot (SCAN-based
-- key iteration and namespace deletion) to the client class of the core.

local core = require "hicache.core"
local config = require "hicache.config"

local type, error, setmetatable = type, error, setmetatable
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
function Cache:delete_pattern(pattern)
  if type(pattern) ~= "string" then error("pattern must be a string", 2) end
  return delete_matching(self, glob_escape(self:_namespace()) .. pattern)
end

--- cache:clear() -> number deleted | nil, err
-- Deletes this cache's prefix:version: namespace only, never FLUSHDB.
function Cache:clear()
  return delete_matching(self, glob_escape(self:_namespace()) .. "*")
end

return _M
