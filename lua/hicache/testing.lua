--- hicache.testing: helpers for testing application code that caches,
-- against a real Redis (see docs/TESTING.md).
--
--   local testing = require "hicache.testing"   -- also registers assertions
--   local cache = testing.cache()                -- isolated: a random prefix
--   local rec = testing.record(cache)
--   ... run the code under test ...
--   assert.same({ "get miss user_profile:42", "set set user_profile:42" }, rec:lines())
--   assert.is_cached(cache, "user_profile:42")

local hicache = require "hicache"
local core = require "hicache.core"

local type, error, pairs, setmetatable = type, error, pairs, setmetatable

local _M = {}

local recorders = setmetatable({}, { __mode = "k" }) -- cache -> list of recorders
local created = {}                                    -- caches to clear in cleanup()

--- testing.cache(opts) -> an isolated cache on a real Redis: a random
-- prefix (opts.prefix is refused), the Redis of HICACHE_TEST_HOST/PORT or
-- HICACHE_TEST_URL (or opts.url / host / port), cleared by
-- testing.cleanup() — and at the end of the current busted test when
-- called inside one.
function _M.cache(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("opts must be a table", 2) end
  if opts.prefix ~= nil then error("testing.cache chooses its own random prefix", 2) end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.prefix = "test-" .. core.token():sub(1, 12)
  if not (o.url or o.host or o.path) then
    o.url = os.getenv("HICACHE_TEST_URL")
    if not o.url then
      o.host = os.getenv("HICACHE_TEST_HOST") or "127.0.0.1"
      o.port = tonumber(os.getenv("HICACHE_TEST_PORT") or 6379)
    end
  end
  local user_hook = o.on_event
  local cache
  o.on_event = function(ev)
    if user_hook then user_hook(ev) end
    for _, rec in ipairs(recorders[cache] or {}) do
      if rec.on then rec.events[#rec.events + 1] = ev end
    end
  end
  cache = assert(hicache.new(o))
  created[#created + 1] = cache
  local finally = rawget(_G, "finally")
  if type(finally) == "function" then pcall(finally, function() cache:clear() end) end
  return cache
end

--- testing.cleanup(): clears every cache made by testing.cache.
function _M.cleanup()
  for _, c in ipairs(created) do c:clear() end
  created = {}
end

local Recorder = {}
Recorder.__index = Recorder

--- testing.record(cache) -> recorder: collects the cache's events
-- ({op, key, family, status, ms, err}) from now on. Works on caches made
-- by testing.cache.
function _M.record(cache)
  local rec = setmetatable({ events = {}, on = true }, Recorder)
  recorders[cache] = recorders[cache] or {}
  table.insert(recorders[cache], rec)
  return rec
end

--- rec:lines() -> { "op status key", ... } for readable assertions
function Recorder:lines()
  local out = {}
  for i, ev in ipairs(self.events) do
    out[i] = ev.op .. " " .. ev.status .. (ev.key and (" " .. ev.key) or "")
  end
  return out
end

--- rec:statuses(key) -> the statuses of the events on key, in order
function Recorder:statuses(key)
  local out = {}
  for _, ev in ipairs(self.events) do
    if key == nil or ev.key == key then out[#out + 1] = ev.status end
  end
  return out
end

function Recorder:clear() self.events = {} end
function Recorder:stop() self.on = false end

--- Whether a key is cached (with tags: whether the tagged entry is).
function _M.is_cached(cache, key, tags)
  if tags then
    return cache:get(key, nil, { tags = tags }) ~= nil
  end
  local exists, err = cache:has_key(key)
  if exists == nil then error(err, 2) end
  return exists
end

-- busted / luassert: assert.is_cached(cache, key[, tags]) and
-- assert.is_not_cached(cache, key[, tags]), registered on require.
do
  local ok_assert, luassert = pcall(require, "luassert")
  local ok_say, say = pcall(require, "say")
  if ok_assert and ok_say then
    say:set("assertion.cached.positive", "Expected key %s to be cached")
    say:set("assertion.cached.negative", "Expected key %s not to be cached")
    luassert:register("assertion", "cached", function(_, args)
      return _M.is_cached(args[1], args[2], args[3])
    end, "assertion.cached.positive", "assertion.cached.negative")
  end
end

return _M
