-- Bad input is refused (issue 9): every argument a caller can get wrong
-- raises a clean argument error naming the public method, before anything
-- is stored; values that would lose precision or read out of bounds in C
-- are refused or handled exactly. Run under `make test-asan` too.
local H = require "helper"
local posix = H.posix

local NAN, INF = 0 / 0, math.huge
-- 2^62 as an integer (LuaJIT: a double holds it exactly)
local I62 = math.tointeger and math.tointeger(2 ^ 62) or 2 ^ 62
-- The message of an int64 argument (LuaJIT also takes its decimal string)
local INT_ARG = H.luajit and "must be an integer %(beyond 2%^53: its decimal string%)" or "must be an integer"

-- The calls that must raise are written `return (c:method(...))`: not a
-- tail call, whose caller's frame LuaJIT drops (luaL_argerror would then
-- name the method '?' and count self as argument #1, as for any C function)

-- The error of f(), which must raise.
local function raises(f)
  local ok, err = pcall(f)
  assert(not ok, "expected an error")
  assert.is_string(err)
  return err
end

local function shell_out(cmd)
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("a")
  f:close()
  return out
end

describe("bad input is refused", function()
  local c
  before_each(function() c = H.cache { prefix = "bad" } end)
  after_each(function() c:clear() end)

  it("1: a NaN or infinite key raises for every key argument", function()
    local calls = {
      get = function(k) return (c:get(k)) end,
      set = function(k) return (c:set(k, "x")) end,
      add = function(k) return (c:add(k, "x")) end,
      delete = function(k) return (c:delete(k)) end,
      has_key = function(k) return (c:has_key(k)) end,
      ttl = function(k) return (c:ttl(k)) end,
      expire = function(k) return (c:expire(k, 10)) end,
      touch = function(k) return (c:touch(k, 10)) end,
      persist = function(k) return (c:persist(k)) end,
      incr = function(k) return (c:incr(k)) end,
      decr = function(k) return (c:decr(k)) end,
      invalidate = function(k) return (c:invalidate(k)) end,
      incr_version = function(k) return (c:incr_version(k)) end,
      _key = function(k) return (c:_key(k)) end,
      get_many = function(k) return (c:get_many { "a", k }) end,
      set_many = function(k) return (c:set_many { [k] = 1 }) end,
      delete_many = function(k) return (c:delete_many { "a", k }) end,
    }
    for name, call in pairs(calls) do
      for _, k in ipairs { NAN, INF, -INF } do
        if not (name == "set_many" and k ~= k) then -- NaN cannot be a table key
          local err = raises(function() return call(k) end)
          assert.matches("bad argument #1 to '" .. name .. "' %(.*key must not be NaN or infinite%)", err)
        end
      end
    end
    local err = raises(function() return (c:invalidate { "a", NAN }) end)
    assert.matches("bad argument #1 to 'invalidate' %(keys%[2%]: key must not be NaN or infinite%)", err)
    assert.same({}, c:command("KEYS", "bad:*"))   -- nothing was stored under "nan" or "inf"
    assert.equal("bad:1:0", c:_key(0))
    assert.equal("bad:1:1.5", c:_key(1.5))
  end)

  it("1b: -0.0 is not the key 0, and round-trips as a value with its sign", function()
    -- -0.0 keeps its sign ("%.17g"): a distinct key from the integer 0
    assert.equal("bad:1:-0", c:_key(-0.0))
    assert.equal("bad:1:0", c:_key(0))
    assert.is_true(c:set(0, "zero"))
    assert.is_true(c:set(-0.0, "minus zero"))
    assert.equal("zero", c:get(0))
    assert.equal("minus zero", c:get(-0.0))
    -- and -0.0 as a value round-trips with its sign
    assert.is_true(c:set("z", -0.0))
    local z = c:get("z")
    assert.equal("float", H.mtype(z))
    assert.equal(-INF, 1 / z)
  end)

  it("2: unknown options and a missing or nil value raise for set, add and set_many", function()
    assert.is_true(c:set("x", "a"))
    local err = raises(function() return (c:set("x", "b", 60, { NX = true })) end)
    assert.matches("bad argument #4 to 'set' %(unknown option 'NX'%)", err)
    assert.equal("a", c:get("x"))
    err = raises(function() return (c:set("k")) end)
    assert.matches("bad argument #2 to 'set' %(value expected%)", err)
    err = raises(function() return (c:set("k", nil, 60)) end)
    assert.matches("bad argument #2 to 'set' %(value must not be nil", err)
    err = raises(function() return (c:add("k")) end)
    assert.matches("bad argument #2 to 'add' %(value expected%)", err)
    err = raises(function() return (c:add("k", nil)) end)
    assert.matches("bad argument #2 to 'add' %(value must not be nil", err)
    err = raises(function() return (c:add("k", 1, nil, { nx = true })) end) -- add knows tags only
    assert.matches("bad argument #4 to 'add' %(unknown option 'nx'%)", err)
    err = raises(function() return (c:set_many({ k = 1 }, 60, { tags = { "t" } })) end)
    assert.matches("bad argument #3 to 'set_many' %(unknown option 'tags'%)", err)
    err = raises(function() return (c:set_many({ k = 1 }, 60, 5)) end)
    assert.matches("bad argument #3 to 'set_many' %(opts must be a table%)", err)
    assert.is_nil(c:get("k"))
    -- the known options still work
    assert.is_true(c:set("k", 1, 60, { nx = true }))
    assert.same({}, c:set_many({ k2 = 1 }, 60, {}))
  end)

  it("3: argument errors name the public method, never an internal one", function()
    local cases = {
      { "invalidate", function() return (c:invalidate(nil)) end },
      { "invalidate_tag", function() return (c:invalidate_tag(nil)) end },
      { "invalidate_tag", function() return (c:invalidate_tag(5)) end },
      { "invalidate_tag", function() return (c:invalidate_tag { "" }) end },
      { "incr_version", function() return (c:incr_version("k", 1.5)) end },
      { "incr", function() return (c:incr("k", 1.5)) end },
      { "decr", function() return (c:decr("k", 1.5)) end },
      { "delete", function() return (c:delete({})) end },
      { "get_or_set", function() return c:get_or_set(nil, function() return 1 end) end },
      { "get_or_set", function() return c:get_or_set(NAN, function() return 1 end) end },
    }
    for _, case in ipairs(cases) do
      local err = raises(case[2])
      assert.matches("bad argument #%d to '" .. case[1] .. "'", err)
      assert.is_nil(err:find("'_%a") or err:find("'c_"), err)
    end
    assert.matches("a tag or a list of tags expected", raises(function() return (c:invalidate_tag(nil)) end))
    assert.matches("delta must be an integer", raises(function() return (c:incr_version("k", 1.5)) end))
  end)

  it("4: a list with holes or other keys raises (get_many, delete_many, invalidate, set_many's keys)", function()
    c:set("a", 1)
    c:set("c", 3)
    for name, call in pairs {
      get_many = function(l) return (c:get_many(l)) end,
      delete_many = function(l) return (c:delete_many(l)) end,
      invalidate = function(l) return (c:invalidate(l)) end,
      invalidate_tag = function(l) return (c:invalidate_tag(l)) end,
    } do
      for _, bad in ipairs { { [1] = "a", [3] = "c" }, { "a", x = "c" }, { [0] = "a" }, { [1.5] = "a" } } do
        local err = raises(function() return call(bad) end)
        assert.matches("bad argument #1 to '" .. name .. "' %(%a+ must be a list", err)
      end
    end
    assert.equal(1, c:get("a"))
    assert.equal(3, c:get("c"))
    for _, bad in ipairs { { [true] = 1 }, { [{}] = 1 }, { [print] = 1 } } do
      local err = raises(function() return (c:set_many(bad)) end)
      assert.matches("bad argument #1 to 'set_many' %(key must be a string or a number%)", err)
    end
  end)

  it("5: counters are exact over the whole int64 range", function()
    local admin = H.admin()
    -- the values as decimal digits: H.int gives them as hicache returns
    -- them (Lua 5.4: integers; LuaJIT: beyond 2^53, the decimal strings)
    for _, case in ipairs {
      { "9007199254740992", "9007199254740993", "9007199254740995" },       -- 2^53
      { "4611686018427387904", "4611686018427387905", "4611686018427387907" }, -- 2^62
      { "9223372036854775804", "9223372036854775805", "9223372036854775807" }, -- maxinteger - 3
    } do
      local start, plus1, plus3 = case[1], case[2], case[3]
      assert.is_true(H.set_int(c, "n", start))
      local v = c:incr("n")
      assert.equal(type(H.int(plus1)), type(v))
      if type(v) == "number" then assert.equal("integer", H.mtype(v)) end -- (always on 5.4)
      assert.equal(H.int(plus1), v)
      assert.equal(plus1, admin:command("GET", c:_key("n")))
      assert.equal(H.int(plus3), c:incr("n", 2))
      assert.equal(H.int(start), c:decr("n", 3))
    end
    assert.is_true(H.set_int(c, "n", "9223372036854775806"))
    assert.equal(H.INT64_MAX, c:incr("n"))
    local v, err = c:incr("n")
    assert.is_nil(v)
    assert.matches("overflow", err)
    assert.equal(H.INT64_MAX, c:get("n"))
    assert.is_true(H.set_int(c, "n", "-9223372036854775807"))
    assert.equal(H.INT64_MIN, c:decr("n"))
    v, err = c:decr("n")
    assert.is_nil(v)
    assert.matches("overflow", err)
    -- the delta over the whole range too (LuaJIT: as a decimal string)
    assert.is_true(c:set("n", 0))
    assert.equal(H.INT64_MAX, c:incr("n", H.INT64_MAX))
    assert.is_true(c:set("n", 0))
    v, err = c:decr("n", H.INT64_MIN)
    assert.is_nil(v)
    assert.matches("overflow", err)
    -- a float delta is an argument error naming the method
    assert.matches("bad argument #2 to 'incr' %(delta " .. INT_ARG .. "%)",
                   raises(function() return (c:incr("n", 1.5)) end))
    assert.matches("bad argument #2 to 'decr' %(delta " .. INT_ARG .. "%)",
                   raises(function() return (c:decr("n", 1.5)) end))
    assert.matches("bad argument #2 to 'incr_version' %(delta must be an integer%)",
                   raises(function() return (c:incr_version("n", 1.5)) end))
  end)

  it("6: numbers beyond the int64 range are floats that round-trip (and hc_isinteger casts nothing out of range)", function()
    -- (LuaJIT has no float subtype: -2^63 and 2^53 are integral, so there
    -- they are integers, read back as H.int gives their digits)
    for _, case in ipairs { { 2 ^ 63 }, { -2 ^ 63, "-9223372036854775808" }, { 1e300 }, { -1e300 },
                            { 2 ^ 53 + 0.0, "9007199254740992" }, { -(2 ^ 64) } } do
      local x = case[1]
      local want = x
      if H.mtype(x) == "integer" then want = H.int(case[2]) end -- (never on Lua 5.4)
      assert.is_true(c:set("f", x))
      local got = c:get("f")
      assert.equal(H.mtype(want), H.mtype(got))
      assert.equal(want, got)
      assert.is_true(c:set("t", { x = x }))
      assert.equal(want, c:get("t").x)
    end
    -- The Lua 5.1 build's hc_isinteger (src/base/compat.h) under UBSan, when
    -- the LuaJIT headers are there (make compat-luajit needs them too).
    if shell_out("pkg-config --exists luajit && echo yes"):find("yes") == nil then return end
    local src = H.dir .. "/isint.c"
    local f = assert(io.open(src, "w"))
    f:write([[
#include <stdio.h>
#include <lua.h>
#include <lauxlib.h>
#include "compat.h"
int main(void)
{
    static const double v[] = {9223372036854775808.0, 1e300, -1e300, -9223372036854775808.0, 42.0, 1.5};
    lua_State *L = luaL_newstate();
    size_t i;
    for (i = 0; i < sizeof v / sizeof v[0]; i++) {
        lua_pushnumber(L, v[i]);
        printf("%d", hc_isinteger(L, -1));
        lua_pop(L, 1);
    }
    lua_close(L);
    return 0;
}
]])
    f:close()
    local bin = H.dir .. "/isint"
    -- (GCC and Clang leave float-cast-overflow out of -fsanitize=undefined)
    local ubsan = "-fsanitize=undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow"
    local out, code = H.shell(("cc -std=c99 " .. ubsan .. " "
      .. "$(pkg-config --cflags luajit) -Isrc/base %s -o %s $(pkg-config --libs luajit) && %s"):format(src, bin, bin))
    assert.equal(0, code, out)
    assert.equal("000110", out)
  end)

  it("7: JSON refuses object keys with NUL bytes at encode time; nothing is stored", function()
    local j = H.cache { prefix = "bad", serializer = "json" }
    local err = raises(function() return (j:set("j", { ["a\0b"] = 1 })) end)
    assert.matches("bad argument #2 to 'set' %(.*JSON object keys must not contain NUL bytes%)", err)
    err = raises(function() return (j:set("j", { list = { { ["\0"] = true } } })) end)
    assert.matches("JSON object keys must not contain NUL bytes", err)
    assert.is_nil(j:get("j"))
    assert.equal(0, H.admin():command("EXISTS", j:_key("j")))
    err = raises(function() return (j:encode({ ["a\0"] = 1 })) end)
    assert.matches("NUL", err)
    -- a NUL inside a string value is fine
    assert.is_true(j:set("j", { a = "x\0y" }))
    assert.same({ a = "x\0y" }, j:get("j"))
  end)

  it("8: core.new frees everything when a Lua allocation fails midway", function()
    local core = require "hicache.core"
    local settings = assert(require("hicache.config").settings {
      host = H.host, port = H.port, prefix = "bad", stats = true, on_event = function() end,
    })
    local function round()
      local budget, ok = 0, false
      while not ok do
        ok = posix.with_alloc_limit(budget, core.new, settings)
        budget = budget + 64
        assert(budget < 64 * 1024, "core.new never succeeded")
      end
    end
    round()
    collectgarbage()
    collectgarbage()
    local before = posix.heap()
    for _ = 1, 200 do round() end
    collectgarbage()
    collectgarbage()
    local grown = posix.heap() - before
    if not (H.asan or H.valgrind) then -- their allocators hide mallinfo; they check leaks at exit
      -- a leaked stats struct is ~9 KB: 200 rounds would leak ~1.9 MB
      assert.is_true(grown < 512 * 1024, "heap grew by " .. grown)
    end
  end)

  it("9: the private methods refuse garbage cleanly", function()
    local PRIVATE = { "_key", "_names", "_tag_name", "_lock_names", "_scan_pattern", "_entry", "_read",
                      "_visible", "_invalidate_full", "_bump_epoch", "_lease", "_keep", "_fill", "_release",
                      "_wait", "_wake", "_eval", "_namespace", "_watch", "_block", "_l1_keep" }
    -- no number in (0.002, 86400]: an accepted _wait blocks 2 ms at most
    local POOL = { nil, NAN, -1, 0, 0.001, 100000, 2 ^ 53, 2 ^ 63, -2 ^ 63, INF, -INF, 1e300,
                   H.INT64_MIN, H.INT64_MAX, "", "x", "a:b", "{", "}", ("k"):rep(5000),
                   ("t"):rep(70), ("e"):rep(64), "acquire", "extend", {}, { 1, 2 }, { "a", "b" },
                   { [3] = "c" }, { ("x"):rep(2000) }, { "" }, { a = 1 }, true, false, print }
    local NPOOL = 34
    local rng = 11
    local function pick()
      rng = (rng * 1103515245 + 12345) % 2147483648
      return POOL[rng % NPOOL + 1]
    end
    local function check(name, ...)
      local ok, err = pcall(c[name], c, ...)
      if not ok then assert(type(err) == "string", name .. " raised a non-string: " .. tostring(err)) end
    end
    for _, name in ipairs(PRIVATE) do
      assert.is_function(c[name], name)
      for _ = 1, 300 do
        local args, n = {}, rng % 8
        for i = 1, n do args[i] = pick() end
        check(name, H.unpack(args, 1, n))
      end
    end
    local names = c:_names("k")
    for _ = 1, 50 do pcall(names.epoch_wake, pick()) end
    -- keys shorter than the namespace, empty ones, long ones
    for _, k in ipairs { "", "b", "bad", "bad:", "bad:1", ("z"):rep(1300) } do
      check("_invalidate_full", { k })
      check("_visible", { k })
    end
    -- what used to pass unchecked
    assert.matches("bad argument #1 to '_visible' %(full keys must be a list",
                   raises(function() return (c:_visible { [1] = "a", [3] = "b" }) end))
    assert.matches("bad argument #1 to '_visible' %(full keys expected%)",
                   raises(function() return (c:_visible { 5 }) end))
    assert.matches("bad argument #3 to '_entry'", raises(function() return (c:_entry(1, 1, -1)) end))
    assert.matches("bad argument #2 to '_entry'", raises(function() return (c:_entry(1, -5, 0)) end))
    assert.matches("bad argument #5 to '_entry' %(a token per tag",
                   raises(function() return (c:_entry(1, nil, nil, { "t" }, {})) end))
    assert.matches("bad argument #4 to '_keep' %(milliseconds out of range%)",
                   raises(function() return (c:_keep("k", "tok", "ep", I62)) end))
    assert.matches("bad argument #5 to '_fill' %(milliseconds",
                   raises(function() return (c:_fill("k", "tok", "ep", "b", -1)) end))
    assert.matches("bad argument #3 to '_watch' %(ttl out of range%)",
                   raises(function() return (c:_watch("k", "v", I62)) end))
    -- the cache still works
    assert.is_true(c:set("after", 1))
    assert.equal(1, c:get("after"))
  end)

  it("10: ttl reports the time to the soft expiry of a get_or_set entry with a stale window", function()
    c:get_or_set("gs", function() return "v" end, { ttl = 10, stale = 5 })
    local pttl = H.admin():command("PTTL", c:_key("gs"))
    assert.is_true(pttl > 14000, "hard TTL " .. pttl)          -- the key lives ttl + stale
    local t = c:ttl("gs")
    assert.is_true(t > 9 and t <= 10, tostring(t))
    -- past the soft expiry (a stale value): the smallest time left, not 0 ("no expiry")
    c:get_or_set("soon", function() return "v" end, { ttl = 0.1, stale = 5 })
    posix.sleep(0.2)
    assert.equal(0.001, c:ttl("soon"))
    -- entries without an envelope: the key's TTL, as before
    c:set("plain", 1, 10)
    t = c:ttl("plain")
    assert.is_true(t > 9 and t <= 10, tostring(t))
    c:get_or_set("gs0", function() return "v" end, { ttl = 10 })
    t = c:ttl("gs0")
    assert.is_true(t > 9 and t <= 10, tostring(t))
  end)

  it("11: values django-redis wrote with pickle or zlib name their likely source", function()
    local admin = H.admin()
    local py = "/usr/bin/python3 -c 'import sys, pickle, zlib, gzip; sys.stdout.buffer.write(%s)'"
    local pickled = shell_out(py:format('pickle.dumps({"a": 1}, protocol=4)'))
    local zlibbed = shell_out(py:format('zlib.compress(b"\\x81\\xa1a\\x01")'))
    local gzipped = shell_out(py:format('gzip.compress(b"\\x81\\xa1a\\x01")'))
    assert.equal("\x80\x04", pickled:sub(1, 2))
    assert.equal("x", zlibbed:sub(1, 1))
    admin:command("SET", c:_key("pickle"), pickled)
    admin:command("SET", c:_key("zlib"), zlibbed)
    admin:command("SET", c:_key("gzip"), gzipped)
    admin:command("SET", c:_key("lz4"), "\x04\x22\x4d\x18\x64\x40\xa7\x04\x00\x00\x80\x81\xa1\x61\x01\x00\x00\x00\x00")
    local v, err = c:get("pickle")
    assert.is_nil(v)
    assert.equal("decode error: value looks like a Python pickle (configure django-redis with "
                 .. "django_redis.serializers.msgpack.MSGPackSerializer)", err)
    v, err = c:get("zlib")
    assert.is_nil(v)
    assert.equal("decode error: value looks like zlib-compressed data (hicache reads zstd; configure "
                 .. "django-redis with django_redis.compressors.zstd.ZStdCompressor)", err)
    assert.matches("looks like gzip%-compressed data", select(2, c:get("gzip")))
    assert.matches("looks like lz4%-compressed data", select(2, c:get("lz4")))
    local got, errs = c:get_many { "pickle", "zlib" }
    assert.same({}, got)
    assert.matches("Python pickle", errs.pickle)
    assert.matches("zlib", errs.zlib)
    -- a JSON cache points at django-redis' JSON serializer
    local j = H.cache { prefix = "bad", serializer = "json" }
    assert.matches("JSONSerializer", select(2, j:get("pickle")))
    -- other undecodable bytes keep their message
    admin:command("SET", c:_key("junk"), "\x01\x02")
    assert.equal("decode error: trailing bytes after the value", select(2, c:get("junk")))
  end)

  it("12: the long-key error points at hicache.keys", function()
    local err = raises(function() return (c:set(("x"):rep(1025), 1)) end)
    assert.matches("bad argument #1 to 'set' %(key longer than 1024 bytes", err)
    assert.matches("hicache.keys", err)
    assert.matches("max_length", err)
    assert.matches("keys.hashed", err)
    assert.is_nil(err:find("later release"))
  end)
end)
