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
local raise = require("hicache.argerror").raise

local type, pairs, setmetatable = type, pairs, setmetatable

local _M = {}

local recorders = setmetatable({}, { __mode = "k" }) -- cache -> list of recorders
local created = {}                                    -- caches to clear in cleanup()
local quiet = 0                                       -- > 0: inside an assertion

--- testing.cache(opts) -> an isolated cache on a real Redis: a random
-- prefix (opts.prefix is refused), the Redis of HICACHE_TEST_HOST/PORT or
-- HICACHE_TEST_URL (or opts.url / host / port) -- or, with
-- opts.backend = "memory", this process's in-memory store --, cleared by
-- testing.cleanup() — and at the end of the current busted test when
-- called inside one.
function _M.cache(opts)
  opts = opts or {}
  if type(opts) ~= "table" then raise("bad argument #1 to 'cache' (opts must be a table)") end
  if opts.prefix ~= nil then raise("testing.cache chooses its own random prefix") end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.prefix = "test-" .. core.token():sub(1, 12)
  -- the caller's options win; the environment fills in what they lack
  -- (backend = "memory" needs no server: its caches share the process's store)
  local routed = o.cluster ~= nil or o.sentinels ~= nil
  if o.backend ~= "memory" and not routed and not (o.url or o.host or o.path or o.port) then
    o.url = os.getenv("HICACHE_TEST_URL")
  end
  if o.backend ~= "memory" and not routed and not (o.url or o.path) then
    o.host = o.host or os.getenv("HICACHE_TEST_HOST") or "127.0.0.1"
    o.port = o.port or tonumber(os.getenv("HICACHE_TEST_PORT") or 6379)
  end
  local user_hook = o.on_event
  local cache
  o.on_event = function(ev)
    if user_hook then user_hook(ev) end
    if quiet > 0 then return end -- the assertions' own reads are not the code under test
    for _, rec in ipairs(recorders[cache] or {}) do
      if rec.on then rec.events[#rec.events + 1] = ev end
    end
  end
  local err
  cache, err = hicache.new(o)
  if not cache then raise("testing.cache: " .. tostring(err)) end
  -- fail fast, at the caller's line, when there is no Redis to test with
  local pong, perr = cache:command("PING")
  if pong == nil then
    pcall(cache.close, cache)
    local where = o.path or ((o.host or "?") .. ":" .. tostring(o.port))
    if o.url then -- its address, never its password
      local f = hicache.parse_url(o.url) or {}
      where = f.path or ((f.host or "127.0.0.1") .. ":" .. tostring(f.port or 6379))
    end
    raise(("testing.cache: redis at %s is unreachable: %s"):format(where, tostring(perr)))
  end
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
-- Raises (at the caller's line) when Redis fails: an assertion must not
-- pass or fail for a reason other than the one it checks.
function _M.is_cached(cache, key, tags)
  local found, err
  quiet = quiet + 1
  if tags then
    local ok, v, e = pcall(cache.get, cache, key, nil, { tags = tags })
    found, err = ok and v ~= nil, ok and e or v
    if ok and e == nil then err = nil end
  else
    local ok, e1, e2 = pcall(cache.has_key, cache, key)
    found, err = ok and e1, ok and e2 or e1
    if ok and e1 ~= nil then err = nil end
  end
  quiet = quiet - 1
  if err ~= nil then raise("is_cached: " .. tostring(err)) end
  return found
end

--- Whether the value stored at key is encrypted: stored sealed (not its
-- plaintext) and opening with this cache's keys under that very key.
-- false, why otherwise ("not cached", "stored in plaintext", "decrypt
-- error: ..."). Raises (at the caller's line) when Redis fails.
function _M.is_encrypted(cache, key)
  quiet = quiet + 1
  local ok, full = pcall(cache._key, cache, key)
  if not ok then quiet = quiet - 1; raise("is_encrypted: " .. tostring(full)) end
  local bytes, err = cache:command("GET", full)
  quiet = quiet - 1
  if err ~= nil then raise("is_encrypted: " .. tostring(err)) end
  if bytes == nil or bytes == core.null then return false, "not cached" end
  if not core.entry_info(bytes).encrypted then return false, "stored in plaintext" end
  local v, derr = cache:_decode_at(bytes, full)
  if v == nil and derr ~= nil then return false, derr end
  return true
end

-- busted / luassert: assert.is_cached(cache, key[, tags]) and
-- assert.is_not_cached(cache, key[, tags]), registered on require.
do
  local ok_assert, luassert = pcall(require, "luassert")
  local ok_say, say = pcall(require, "say")
  if ok_assert and ok_say then
    -- the message names the key as given (luassert would print the
    -- cache object first, and decorate the key with its type)
    luassert:register("assertion", "cached", function(_, args)
      local key = tostring(args[2]):gsub("%%", "%%%%")
      say:set("assertion.cached.positive", "Expected key '" .. key .. "' to be cached")
      say:set("assertion.cached.negative", "Expected key '" .. key .. "' not to be cached")
      local ok = _M.is_cached(args[1], args[2], args[3])
      args.n = 0
      return ok
    end, "assertion.cached.positive", "assertion.cached.negative")
    luassert:register("assertion", "encrypted", function(_, args)
      local key = tostring(args[2]):gsub("%%", "%%%%")
      local ok, why = _M.is_encrypted(args[1], args[2])
      local because = why and (" (" .. why:gsub("%%", "%%%%") .. ")") or ""
      say:set("assertion.encrypted.positive", "Expected key '" .. key .. "' to be stored encrypted" .. because)
      say:set("assertion.encrypted.negative", "Expected key '" .. key .. "' not to be stored encrypted")
      args.n = 0
      return ok
    end, "assertion.encrypted.positive", "assertion.encrypted.negative")
  end
end

return _M
