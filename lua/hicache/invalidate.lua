--- hicache.invalidate: invalidation tied to write paths.
--   cache:on_write(fn, {keys = function(...) end, tags = function(...) end})
--   local batch = cache:batch(); batch:invalidate(k); ...; batch:commit()

local core = require "hicache.core"
local argerror = require "hicache.argerror"

local type, error, pcall, setmetatable = type, error, pcall, setmetatable
local pairs, ipairs, tostring = pairs, ipairs, tostring
local compat = require "hicache.compat"
local pack, unpack = compat.pack, compat.unpack
local raise, rethrow = argerror.raise, argerror.rethrow

local _M = {}

-- A key or tag, or a list of them (no holes, no other keys).
local function as_list(v, what)
  if v == nil then return {} end
  if type(v) ~= "table" then return { v } end
  if argerror.non_list_key(v) ~= nil then raise(what .. " must be a list (no holes, no other keys)") end
  return v
end

--- cache:on_write(fn, opts) -> writer: runs fn(...), then invalidates the
-- keys (and tags) derived from the same arguments — also when fn raises
-- after a partial write, before re-raising.
function _M.on_write(cache, fn, opts)
  if type(fn) ~= "function" then raise("bad argument #1 to 'on_write' (function expected, got " .. type(fn) .. ")") end
  opts = opts or {}
  if type(opts) ~= "table" then raise("bad argument #2 to 'on_write' (opts must be a table)") end
  for k, v in pairs(opts) do
    if (k ~= "keys" and k ~= "tags") or type(v) ~= "function" then
      raise(("on_write: opts.%s must be a function of the writer's arguments"):format(tostring(k)))
    end
  end
  if not opts.keys and not opts.tags then raise("on_write needs opts.keys and/or opts.tags") end
  return function(...)
    local res = pack(pcall(fn, ...))
    local batch = _M.batch(cache)
    if opts.keys then batch:invalidate(as_list(opts.keys(...), "on_write: opts.keys' result")) end
    if opts.tags then batch:invalidate_tag(as_list(opts.tags(...), "on_write: opts.tags' result")) end
    local ok, err = batch:commit()
    if not res[1] then error(res[2], 0) end
    if not ok then return nil, err end
    return unpack(res, 2, res.n)
  end
end

local Batch = {}
Batch.__index = Batch

--- cache:batch() -> a deferred set of invalidations, e.g. for a database
-- transaction: collect, then commit() after the commit (one round trip)
-- or rollback() to drop them.
function _M.batch(cache)
  return setmetatable({ cache = cache, keys = {}, tags = {}, done = false }, Batch)
end

function Batch:invalidate(key_or_list)
  if self.done then raise("batch already committed or rolled back") end
  if key_or_list == nil then raise("bad argument #1 to 'invalidate' (a key or a list of keys expected)") end
  local full = {}
  for i, k in ipairs(as_list(key_or_list, "bad argument #1 to 'invalidate' (keys)")) do
    local ok, f = pcall(self.cache._key, self.cache, k)
    if not ok then rethrow(f, "invalidate") end
    full[i] = f
  end
  for _, f in ipairs(full) do self.keys[#self.keys + 1] = f end
  return self
end

function Batch:invalidate_tag(tag_or_list)
  if self.done then raise("batch already committed or rolled back") end
  if tag_or_list == nil then raise("bad argument #1 to 'invalidate_tag' (a tag or a list of tags expected)") end
  local list = as_list(tag_or_list, "bad argument #1 to 'invalidate_tag' (tags)")
  for _, t in ipairs(list) do
    if type(t) ~= "string" or t == "" then
      raise("bad argument #1 to 'invalidate_tag' (a tag must be a non-empty string)")
    end
  end
  for _, t in ipairs(list) do self.tags[#self.tags + 1] = t end
  return self
end

--- batch:commit() -> number of entries deleted | nil, err: every
-- invalidation in one round trip (the WRITE script's del and tag items).
function Batch:commit()
  if self.done then raise("batch already committed or rolled back") end
  self.done = true
  local t0 = core.now()
  local n, err = self.cache:_invalidate_full(self.keys, self.tags)
  local ev = n == nil and core.EV.error or core.EV.invalidate
  for _, full in ipairs(self.keys) do self.cache:_record("invalidate", ev, full, t0, err) end
  if #self.tags > 0 then self.cache:_record("invalidate", ev, nil, t0, err) end
  return n, err
end

--- batch:rollback(): drops the collected invalidations.
function Batch:rollback()
  self.done = true
  self.keys, self.tags = {}, {}
  return true
end

return _M
