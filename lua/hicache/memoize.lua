--- hicache.memoize: cache:memoize(fn, opts) -> a callable that caches
-- fn's results (all of them) per arguments, stampede-safe because it is
-- get_or_set underneath.

local core = require "hicache.core"

local type, error, setmetatable = type, error, setmetatable
local pairs, tostring, getmetatable = pairs, tostring, getmetatable
local pack, unpack = table.pack, table.unpack
local args_key = core.args_key

local _M = {}

local GOS_OPTS = { ttl = true, neg_ttl = true, stale = true, stale_if_error = true, early = true,
                   wait = true, lease_ttl = true, on_wait_timeout = true }

function _M.new(cache, fn, opts)
  if type(fn) ~= "function" then error("bad argument #1 to 'memoize' (function expected)", 3) end
  if type(opts) ~= "table" then error("memoize needs opts with a name", 3) end
  local name = opts.name
  if type(name) ~= "string" or not name:match("^[%w_.%-]+$") then
    error("opts.name must be a non-empty string of letters, digits, '_', '.' or '-'"
      .. " (a function's identity is not a key across processes)", 3)
  end
  local key_of = opts.key
  if key_of ~= nil and type(key_of) ~= "function" and not (type(key_of) == "table" and getmetatable(key_of)) then
    error("opts.key must be a key builder or a function of the arguments", 3)
  end
  local gos = {}
  for k, v in pairs(opts) do
    if GOS_OPTS[k] then gos[k] = v
    elseif k ~= "name" and k ~= "key" and k ~= "tags" then
      error(("unknown memoize option '%s'"):format(tostring(k)), 3)
    end
  end
  local tags = opts.tags
  if tags ~= nil and type(tags) ~= "table" and type(tags) ~= "function" then
    error("opts.tags must be a list of tags or a function of the arguments", 3)
  end
  local with_tags = {}
  for k, v in pairs(gos) do with_tags[k] = v end

  local function key(...)
    if key_of == nil then return args_key(name, 200, ...) end
    local k = key_of(...)
    if type(key_of) == "table" then return k end  -- a builder: its family is the name
    if type(k) ~= "string" and type(k) ~= "number" then error("opts.key returned no key", 3) end
    return name .. ":" .. k
  end

  local function call(_, ...)
    local args = pack(...)
    local o = gos
    if tags then
      o = with_tags
      o.tags = type(tags) == "function" and tags(...) or tags
    end
    local v, status = cache:get_or_set(key(...), function()
      local res = pack(fn(unpack(args, 1, args.n)))
      -- no result, or only nils: a nil result (cached only with neg_ttl)
      local any = false
      for i = 1, res.n do if res[i] ~= nil then any = true; break end end
      if not any then return nil end
      return res
    end, o)
    if v == nil then
      -- status nil: the cache failed (Redis down, ...): the cache is an
      -- optimisation, so compute without it rather than fail the caller
      if status == nil then return fn(...) end
      return nil
    end
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
  return setmetatable(m, { __call = call })
end

return _M
