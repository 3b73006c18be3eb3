--- hicache.memoize: cache:memoize(fn, opts) -> a callable that caches
-- fn's results (all of them) per arguments, stampede-safe because it is
-- get_or_set underneath.
--
-- The memoized callable returns what fn returns. fn's `nil, err` (err
-- neither nil nor a number) is a failed computation: returned as is,
-- never cached. When the cache fails (Redis down, a timeout), fn is
-- called directly (get_or_set's "bypass"), unless opts.bypass = false:
-- then the call returns nil, err.

local core = require "hicache.core"
local argerror = require "hicache.argerror"
local lease = require "hicache.lease"

local type, setmetatable, pcall = type, setmetatable, pcall
local pairs, tostring = pairs, tostring
local compat = require "hicache.compat"
local pack, unpack = compat.pack, compat.unpack
local args_key = core.args_key
local raise, rethrow, is_callable = argerror.raise, argerror.rethrow, argerror.is_callable

local _M = {}

function _M.new(cache, fn, opts)
  if not is_callable(fn) then raise("bad argument #1 to 'memoize' (function expected, got " .. type(fn) .. ")") end
  if type(opts) ~= "table" then
    raise("bad argument #2 to 'memoize' (opts with a name expected, got " .. type(opts) .. ")")
  end
  local name = opts.name
  if type(name) ~= "string" or not name:match("^[%w_.%-]+$") then
    raise("opts.name must be a non-empty string of letters, digits, '_', '.' or '-'"
      .. " (a function's identity is not a key across processes)")
  end
  local key_of = opts.key
  if key_of ~= nil and not is_callable(key_of) then
    raise("opts.key must be a key builder or a function of the arguments")
  end
  local gos = {}
  for k, v in pairs(opts) do
    if lease.OPTIONS[k] and k ~= "tags" then gos[k] = v
    elseif k ~= "name" and k ~= "key" and k ~= "tags" and k ~= "encrypt" then
      raise(("unknown memoize option '%s'"):format(tostring(k)))
    end
  end
  if opts.encrypt ~= nil and type(opts.encrypt) ~= "boolean" then raise("opts.encrypt must be a boolean") end
  if opts.encrypt then
    -- the family of the keys: a builder's, else the name (keys are name:...)
    local family = type(key_of) == "table" and key_of.family or name
    local ok, err = pcall(cache._seal_family, cache, family)
    if not ok then
      local why = argerror.strip(err):gsub("^bad argument #%d+ to '[^']*' %((.*)%)$", "%1")
      raise("memoize '" .. name .. "': opts.encrypt: " .. why)
    end
  end
  lease.check_opts(gos) -- refuse bad values now, not on the first call
  local tags = opts.tags
  if tags ~= nil then
    if type(tags) == "table" and not is_callable(tags) then lease.check_tags(tags)
    elseif type(tags) ~= "function" then
      raise("opts.tags must be a list of tags or a function of the arguments")
    end
  end
  local with_tags = {}
  for k, v in pairs(gos) do with_tags[k] = v end

  -- The key of the arguments; a builder's or args_key's argument errors
  -- are raised at the caller's line.
  local function key(...)
    if key_of == nil then
      local ok, k = pcall(args_key, name, 200, ...)
      if not ok then rethrow(k, "memoized '" .. name .. "'", 2) end
      return k
    end
    local ok, k = pcall(key_of, ...)
    if not ok then rethrow(k) end
    if type(key_of) == "table" then return k end -- a builder: its family is the name
    if (type(k) ~= "string" or k == "") and type(k) ~= "number" then
      raise("memoize '" .. name .. "': opts.key returned no key (a string or a number expected)")
    end
    return name .. ":" .. k
  end

  local function call(_, ...)
    local args = pack(...)
    local o = gos
    if tags then
      o = with_tags
      if type(tags) == "function" then
        local t = tags(...)
        if type(t) ~= "table" then raise("memoize '" .. name .. "': opts.tags returned no list") end
        o.tags = t
      else
        o.tags = tags
      end
    end
    local v, err = cache:get_or_set(key(...), function()
      local res = pack(fn(unpack(args, 1, args.n)))
      if res[1] == nil and res[2] ~= nil and type(res[2]) ~= "number" then
        return nil, res[2] -- fn failed: nil, err, not cached
      end
      -- no result, or only nils: a nil result (cached only with neg_ttl)
      for i = 1, res.n do
        if res[i] ~= nil then return res end
      end
      return nil
    end, o)
    if v == nil then return nil, err end
    return unpack(v, 1, v.n)
  end

  local m = {
    name = name,
    key = function(_, ...) return key(...) end,
    invalidate = function(_, ...) return cache:invalidate(key(...)) end,
    peek = function(_, ...)
      local v, err = cache:get(key(...))
      if v == nil then return nil, err end
      return unpack(v, 1, v.n)
    end,
  }
  return setmetatable(m, { __call = call, __tostring = function() return "hicache memoized '" .. name .. "'" end })
end

return _M
