--- hicache.invalidate: invalidation tied to write paths.
--   cache:on_write(fn, {keys = function(...) end, tags = function(...) end})
--   local batch = cache:batch(); batch:invalidate(k); ...; batch:commit()

local core = require "hicache.core"

local type, error, pcall, setmetatable = type, error, pcall, setmetatable
local pairs, ipairs, tostring = pairs, ipairs, tostring
local pack, unpack = table.pack, table.unpack

local _M = {}

local function as_list(v)
  if v == nil then return {} end
  if type(v) == "table" then return v end
  return { v }
end

--- cache:on_write(fn, opts) -> writer: runs fn(...), then invalidates the
-- keys (and tags) derived from the same arguments — also when fn raises
-- after a partial write, before re-raising.
function _M.on_write(cache, fn, opts)
  if type(fn) ~= "function" then error("bad argument #1 to 'on_write' (function expected)", 3) end
  opts = opts or {}
  if type(opts) ~= "table" then error("opts must be a table", 3) end
  for k, v in pairs(opts) do
    if (k ~= "keys" and k ~= "tags") or type(v) ~= "function" then
      error(("on_write: opts.%s must be a function of the writer's arguments"):format(tostring(k)), 3)
    end
  end
  if not opts.keys and not opts.tags then error("on_write needs opts.keys and/or opts.tags", 3) end
  return function(...)
    local res = pack(pcall(fn, ...))
    local batch = _M.batch(cache)
    if opts.keys then batch:invalidate(as_list(opts.keys(...))) end
    if opts.tags then batch:invalidate_tag(as_list(opts.tags(...))) end
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
  if self.done then error("batch already committed or rolled back", 2) end
  for _, k in ipairs(as_list(key_or_list)) do self.keys[#self.keys + 1] = self.cache:_key(k) end
  return self
end

function Batch:invalidate_tag(tag_or_list)
  if self.done then error("batch already committed or rolled back", 2) end
  for _, t in ipairs(as_list(tag_or_list)) do
    if type(t) ~= "string" or t == "" then error("a tag must be a non-empty string", 2) end
    self.tags[#self.tags + 1] = t
  end
  return self
end

--- batch:commit() -> number of entries deleted | nil, err: every
-- invalidation in one round trip (the WRITE script's del and tag items).
function Batch:commit()
  if self.done then error("batch already committed or rolled back", 2) end
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
