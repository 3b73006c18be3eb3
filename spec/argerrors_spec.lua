-- Every argument error of every public function points at the caller's
-- line (this file), whatever the cache's options: stats on or off, an
-- on_event hook, a logger. Internal names (_key, _read, c_...) never show.
local H = require "helper"
local hicache = require "hicache"
local keys = require "hicache.keys"
local testing = require "hicache.testing"

local THIS = debug.getinfo(1, "S").short_src

-- Runs f (one call on one line of this file) and returns its error,
-- after checking that it names this file and no internal function.
local function raises_here(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an argument error")
  assert.is_string(err)
  local file = err:match("^(.-):%d+: ")
  assert(file == THIS, ("error points at %s, not at the caller (%s): %s"):format(tostring(file), THIS, err))
  assert(not err:find("'_%a") and not err:find("'c_"), "internal name in: " .. err)
  return err
end

local fn = function() return 1 end
local builder = keys.define("argerr_user", { "id" })

-- name -> a call with a bad argument, on one line. The methods of the C
-- core are called `return (c:method(...))`, not as a tail call: LuaJIT
-- drops the caller's frame of a tail call, so luaL_argerror could neither
-- name the method nor point at the caller (as for any C function there,
-- e.g. `return s:rep()`); on Lua 5.4 the two are the same for a C function
-- (its caller's frame stays). The methods of the Lua layer keep the tail
-- call: they must find the caller's line in both.
local CACHE_CASES = {
  { "get nil key", function(c) return (c:get(nil)) end },
  { "get NaN key", function(c) return (c:get(0 / 0)) end },
  { "get opts", function(c) return (c:get("k", nil, 5)) end },
  { "get_many not a list", function(c) return (c:get_many("k")) end },
  { "get_many with holes", function(c) return (c:get_many { [1] = "a", [3] = "c" }) end },
  { "set no value", function(c) return (c:set("k")) end },
  { "set negative ttl", function(c) return (c:set("k", "v", -1)) end },
  { "set unknown option", function(c) return (c:set("k", "v", 60, { NX = true })) end },
  { "set function value", function(c) return (c:set("k", print)) end },
  { "add nil key", function(c) return (c:add(nil, "v")) end },
  { "set_many not a table", function(c) return (c:set_many("x")) end },
  { "incr float delta", function(c) return (c:incr("k", 1.5)) end },
  { "decr table key", function(c) return (c:decr({})) end },
  { "delete nil", function(c) return (c:delete(nil)) end },
  { "delete_many not a list", function(c) return (c:delete_many("x")) end },
  { "has_key nil", function(c) return (c:has_key(nil)) end },
  { "ttl nil", function(c) return (c:ttl(nil)) end },
  { "expire negative", function(c) return (c:expire("k", -1)) end },
  { "touch nil", function(c) return (c:touch(nil)) end },
  { "persist nil", function(c) return (c:persist(nil)) end },
  { "invalidate nil", function(c) return (c:invalidate(nil)) end },
  { "invalidate_tag nil", function(c) return (c:invalidate_tag(nil)) end },
  { "incr_version nil", function(c) return (c:incr_version(nil)) end },
  { "incr_version float", function(c) return (c:incr_version("k", 1.5)) end },
  { "with_version float", function(c) return c:with_version(1.5) end },
  { "keys number", function(c) return c:keys(5) end },
  { "delete_pattern nil", function(c) return c:delete_pattern(nil) end },
  { "command no args", function(c) return (c:command()) end },
  { "pipeline not a list", function(c) return (c:pipeline("x")) end },
  { "encode function", function(c) return (c:encode(print)) end },
  { "decode number", function(c) return (c:decode({})) end },
  { "get_or_set nil key", function(c) return c:get_or_set(nil, fn) end },
  { "get_or_set NaN key", function(c) return c:get_or_set(0 / 0, fn) end },
  { "get_or_set long key", function(c) return c:get_or_set(("x"):rep(2000), fn) end },
  { "get_or_set no fn", function(c) return c:get_or_set("k", nil) end },
  { "get_or_set unknown option", function(c) return c:get_or_set("k", fn, { negttl = 1 }) end },
  { "get_or_set bad ttl", function(c) return c:get_or_set("k", fn, { ttl = -1 }) end },
  { "get_or_set bad tags", function(c) return c:get_or_set("k", fn, { tags = { 1 } }) end },
  { "get_or_set bad bypass", function(c) return c:get_or_set("k", fn, { bypass = "no" }) end },
  { "get_or_set fn bad ttl", function(c) return c:get_or_set("argerr:badttl", function() return 1, "x" end) end },
  { "get_or_set fn unstorable", function(c) return c:get_or_set("argerr:unstorable", function() return print end) end },
  { "lock empty name", function(c) return c:lock("") end },
  { "lock huge ttl", function(c) return c:lock("L", { ttl = 1e300 }) end },
  { "lock zero ttl", function(c) return c:lock("L", { ttl = 0 }) end },
  { "lock unknown option", function(c) return c:lock("L", { ttls = 1 }) end },
  { "with_lock no fn", function(c) return c:with_lock("L", nil, nil) end },
  { "memoize no fn", function(c) return c:memoize(nil) end },
  { "memoize no opts", function(c) return c:memoize(fn) end },
  { "memoize bad name", function(c) return c:memoize(fn, { name = "a b" }) end },
  { "memoize unknown option", function(c) return c:memoize(fn, { name = "m", negttl = 1 }) end },
  { "memoize bad option value", function(c) return c:memoize(fn, { name = "m", ttl = "1" }) end },
  { "memoized bad argument", function(c) local m = c:memoize(fn, { name = "m" }); return m({}) end },
  { "memoized builder missing field", function(c)
      local m = c:memoize(fn, { name = "m", key = builder }); return m {} end },
  { "on_write no fn", function(c) return c:on_write(nil) end },
  { "on_write no keys", function(c) return c:on_write(fn, {}) end },
  { "batch invalidate nil", function(c) return c:batch():invalidate(nil) end },
  { "batch invalidate NaN", function(c) return c:batch():invalidate(0 / 0) end },
  { "batch invalidate_tag empty", function(c) return c:batch():invalidate_tag("") end },
  { "batch committed twice", function(c) local b = c:batch(); b:commit(); return b:commit() end },
  { "lock extend negative", function(c) local l = assert(c:lock("argerr:" .. tostring(c))); return l:extend(-1) end },
}

local OPTION_SETS = {
  { name = "stats off", opts = { stats = false } },
  { name = "stats on (default)", opts = {} },
  { name = "an on_event hook", opts = { stats = false, on_event = function() end } },
  { name = "a logger", opts = { logger = function() end } },
}

describe("argument errors point at the caller's line", function()
  for _, set in ipairs(OPTION_SETS) do
    describe("with " .. set.name, function()
      local c
      setup(function()
        local o = {}
        for k, v in pairs(set.opts) do o[k] = v end
        o.prefix = "argerr"
        c = H.cache(o)
      end)
      for _, case in ipairs(CACHE_CASES) do
        it(case[1], function() raises_here(case[2], c) end)
      end
    end)
  end

  it("at the exact line, not only in this file", function()
    local c = H.cache { prefix = "argerr" }
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() return c:get_or_set("k", fn, { negttl = 1 }) end)
    assert.is_false(ok)
    assert.equal(THIS .. ":" .. line .. ": unknown get_or_set option 'negttl'", err)
  end)

  it("hicache.new, parse_url", function()
    raises_here(function() return hicache.new { bogus = 1 } end)
    raises_here(function() return hicache.new { url = 5 } end)
    raises_here(function() return hicache.new { url = "redis://u:pw@[bad" } end)
    raises_here(function() return hicache.parse_url(42) end)
    raises_here(function() return hicache.parse_url(nil) end)
  end)

  it("hicache.keys", function()
    raises_here(function() return keys.define("a b", { "x" }) end)
    raises_here(function() return keys.define("d", { "user_id", perms = keys.set("perms") }) end)
    raises_here(function() return keys.define("d", { "x" }, { max_len = 100 }) end)
    raises_here(function() return (builder {}) end)
    raises_here(function() return (builder { id = 0 / 0 }) end)
  end)

  it("hicache.testing", function()
    raises_here(function() return testing.cache { prefix = "x" } end)
    raises_here(function() return testing.cache(5) end)
  end)

  it("a closed cache refuses with_version with nil, \"closed\"", function()
    local c = H.cache { prefix = "argerr" }
    c:close()
    assert.same({ nil, "closed" }, { c:with_version(2) })
  end)
end)
