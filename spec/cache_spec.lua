local H = require "helper"
local posix = H.posix

-- Calls of one command name in the server, from INFO commandstats.
local function calls(name)
  local info = H.admin():command("INFO", "commandstats")
  return tonumber(info:match("cmdstat_" .. name:lower() .. ":calls=(%d+)")) or 0
end

describe("cache API", function()
  local c
  before_each(function() c = H.cache { prefix = "api" } end)
  after_each(function() c:clear() end)

  it("uses Django's prefix:version:key layout", function()
    assert.is_true(c:set("k", "v"))
    assert.equal(1, H.admin():command("EXISTS", "api:1:k"))
    local d = H.cache()  -- Django's default KEY_PREFIX is ""
    d:set("k2", 1)
    assert.equal("1", H.admin():command("GET", ":1:k2"))
    d:delete("k2")
  end)

  it("get returns the default on a miss, never an error", function()
    assert.is_nil(c:get("missing"))
    assert.equal("dflt", c:get("missing", "dflt"))
    c:set("present", false)
    assert.is_false(c:get("present", "dflt"))
  end)

  it("set with nx / xx, and add", function()
    assert.is_true(c:set("a", 1, nil, { nx = true }))
    assert.is_false(c:set("a", 2, nil, { nx = true }))
    assert.equal(1, c:get("a"))
    assert.is_false(c:set("b", 1, nil, { xx = true }))
    assert.is_nil(c:get("b"))
    assert.is_true(c:set("a", 3, nil, { xx = true }))
    assert.is_false(c:add("a", 4))
    assert.is_true(c:add("c", 5))
    assert.equal(3, c:get("a"))
    assert.has_error(function() c:set("a", 1, nil, { nx = true, xx = true }) end)
  end)

  it("TTL: nil is the default, 0 never expires, fractions are milliseconds", function()
    local d = H.cache { prefix = "api", ttl = 50 }
    d:set("def", 1)
    local t = d:ttl("def")
    assert.is_true(t > 49 and t <= 50, tostring(t))
    c:set("forever", 1, 0)
    assert.equal(0, c:ttl("forever"))
    c:set("frac", 1, 0.25)
    t = c:ttl("frac")
    assert.is_true(t > 0.1 and t <= 0.25, tostring(t))
    posix.sleep(0.3)
    assert.is_nil(c:get("frac"))
    assert.is_nil(c:ttl("frac"))      -- missing key
  end)

  it("refuses negative, NaN and non-number TTLs", function()
    for _, bad in ipairs { -1, 0 / 0, "10", {} } do
      local ok, err = pcall(function() local r = c:set("k", 1, bad); return r end)
      assert.is_false(ok)
      assert.matches("bad argument #3 to 'set' %(ttl must be", err)
    end
    assert.is_nil(c:get("k"))
  end)

  it("get_many is one MGET and returns a map of hits", function()
    c:set_many({ a = 1, b = "two", c = { 3 } })
    local before = calls("mget")
    local got = c:get_many({ "a", "b", "c", "nope" })
    assert.equal(before + 1, calls("mget"))
    assert.same({ a = 1, b = "two", c = { 3 } }, got)
    assert.same({}, c:get_many({}))
  end)

  it("get_many reports undecodable foreign values separately", function()
    c:set("ok", 1)
    H.admin():command("SET", "api:1:bad", "\xc1")
    local got, errs = c:get_many({ "ok", "bad" })
    assert.same({ ok = 1 }, got)
    assert.matches("^decode error", errs.bad)
  end)

  it("set_many is one round trip and returns the keys that failed", function()
    local map = {}
    for i = 1, 100 do map["k" .. i] = { i = i } end
    local before = calls("set")
    local failed = assert(c:set_many(map, 60))
    assert.same({}, failed)
    assert.equal(before + 100, calls("set"))
    assert.same({ i = 42 }, c:get("k42"))
    local t = c:ttl("k42")
    assert.is_true(t > 59 and t <= 60)
    local ok, err = pcall(function() local r = c:set_many({ good = 1, bad = print }); return r end)
    assert.is_false(ok)
    assert.matches("key 'bad'", err, 1, true)
    assert.is_nil(c:get("good"))   -- nothing stored when a value cannot be encoded
  end)

  it("delete, delete_many and has_key", function()
    c:set_many({ a = 1, b = 2, c = 3 })
    assert.is_true(c:has_key("a"))
    assert.is_true(c:delete("a"))
    assert.is_false(c:delete("a"))
    assert.is_false(c:has_key("a"))
    assert.equal(2, c:delete_many({ "b", "c", "zz" }))
    assert.equal(0, c:delete_many({}))
  end)

  it("incr / decr are atomic, keep the TTL, and report errors", function()
    c:set("n", 10, 100)
    assert.equal(15, c:incr("n", 5))
    assert.equal(14, c:decr("n"))
    assert.equal(4, c:decr("n", 10))
    local t = c:ttl("n")
    assert.is_true(t > 99 and t <= 100, "TTL kept: " .. tostring(t))
    assert.same({ nil, "not found" }, { c:incr("missing") })
    assert.is_nil(c:get("missing"))       -- not created
    c:set("s", "text")
    assert.same({ nil, "not an integer" }, { c:incr("s") })
    c:set("f", 1.5)
    assert.same({ nil, "not an integer" }, { c:incr("f") })
    assert.is_true(H.set_int(c, "big", "9223372036854775807"))
    assert.same({ nil, "overflow" }, { c:incr("big") })
    assert.equal(H.INT64_MAX, c:get("big"))
    assert.has_error(function() c:incr("n", 1.5) end)
  end)

  it("incr recovers when the script cache is flushed (NOSCRIPT)", function()
    c:set("n", 1)
    assert.equal(2, c:incr("n"))
    H.admin():command("SCRIPT", "FLUSH")
    assert.equal(3, c:incr("n"))
  end)

  it("many processes incr one key concurrently without losing updates", function()
    c:set("ctr", 0, 0)
    local code = ([[
      package.path = %q; package.cpath = %q
      local c = require("hicache").new{host=%q, port=%d, prefix="api"}
      for _ = 1, 200 do assert(c:incr("ctr")) end
    ]]):format(package.path, package.cpath, H.host, H.port)
    local path = H.dir .. "/incr.lua"
    local f = assert(io.open(path, "w")); f:write(code); f:close()
    local procs = {}
    -- (the exit status in the output: LuaJIT's close of a popen'ed file has none)
    for i = 1, 8 do procs[i] = io.popen(H.lua_bin .. " " .. path .. " 2>&1; echo exit $?") end
    for i = 1, 8 do assert.equal("exit 0\n", procs[i]:read("a")); assert.is_true(procs[i]:close()) end
    assert.equal(1600, c:get("ctr"))
  end)

  it("ttl / expire / touch / persist", function()
    assert.is_nil(c:ttl("none"))
    assert.is_false(c:expire("none", 10))
    c:set("k", 1, 0)
    assert.equal(0, c:ttl("k"))
    assert.is_true(c:expire("k", 20))
    assert.is_true(c:ttl("k") > 19)
    assert.is_true(c:persist("k"))
    assert.equal(0, c:ttl("k"))
    assert.is_false(c:persist("k"))
    assert.is_true(c:touch("k"))            -- the default ttl (300)
    assert.is_true(c:ttl("k") > 299)
    assert.is_true(c:expire("k", 0))        -- 0: never expires
    assert.equal(0, c:ttl("k"))
  end)

  it("stores and reads back every value type through Redis, 10 MB included", function()
    -- int_max and int_min come back as H.int gives them (LuaJIT: strings)
    local ints = { int_max = "9223372036854775807", int_min = "-9223372036854775808" }
    local values = {
      int_max = H.INT64_MAX, int_min = H.INT64_MIN, float = 0.1, whole = 3.0,
      nan = 0 / 0, inf = math.huge, yes = true, no = false, empty = {}, nul = "a\0b",
      sparse = { [1] = "a", [5] = "e" }, nested = { list = { 1, "two", { 3.5 } }, map = { k = H.null } },
      big = string.rep("0123456789", 1024 * 1024),
    }
    for k, v in pairs(values) do
      if ints[k] then assert.is_true(H.set_int(c, k, ints[k])) else assert.is_true(c:set(k, v)) end
    end
    for k, v in pairs(values) do
      local got = c:get(k)
      if v ~= v then
        assert.is_true(got ~= got, k)
      else
        assert.same(v, got, k)
        assert.equal(H.mtype(v), H.mtype(got), k)
      end
    end
    assert.equal(10 * 1024 * 1024, #c:get("big"))
    assert.equal("9223372036854775807", H.admin():command("GET", "api:1:int_max"))
  end)

  it("keys are strings or numbers, binary-safe, at most 1024 bytes", function()
    c:set(42, "n")
    assert.equal("n", c:get("42"))
    c:set("a\0b:c", "bin")
    assert.equal("bin", c:get("a\0b:c"))
    c:set(string.rep("k", 1024), 1)
    local ok, err = pcall(function() local r = c:get(string.rep("k", 1025)); return r end)
    assert.is_false(ok)
    assert.matches("key longer than 1024 bytes: build it with hicache.keys", err, 1, true)
    ok, err = pcall(function() local r = c:get({}); return r end)
    assert.is_false(ok)
    assert.matches("key must be a string or a number", err, 1, true)
  end)

  it("a foreign value that cannot be decoded is an error and is left alone", function()
    H.admin():command("SET", "api:1:foreign", "\xc1garbage")
    local v, err = c:get("foreign")
    assert.is_nil(v)
    assert.matches("^decode error: ", err)
    assert.equal("\xc1garbage", H.admin():command("GET", "api:1:foreign"))
  end)

  it("keys() iterates this namespace only", function()
    c:set_many({ x1 = 1, x2 = 2, y = 3 })
    H.admin():command("SET", "api:2:x3", 1)         -- another version
    H.admin():command("SET", "apiX:1:x4", 1)        -- another prefix
    local seen = {}
    for k in c:keys("x*") do seen[#seen + 1] = k end
    table.sort(seen)
    assert.same({ "x1", "x2" }, seen)
    H.admin():command("DEL", "api:2:x3", "apiX:1:x4")
  end)

  it("delete_pattern deletes 100k keys with SCAN + UNLINK, never KEYS", function()
    local n = H.valgrind and 5000 or 100000
    local cmds = {}
    for i = 1, n do cmds[#cmds + 1] = { "SET", "api:1:bulk:" .. i, "1" } end
    assert(H.admin():pipeline(cmds))
    H.admin():command("SET", "other:1:bulk:1", "keep")
    local keys_before = calls("keys")
    assert.equal(n, c:delete_pattern("bulk:*"))
    assert.equal(keys_before, calls("keys"))
    assert.equal("keep", H.admin():command("GET", "other:1:bulk:1"))
    assert.equal(0, c:delete_pattern("bulk:*"))
    H.admin():command("DEL", "other:1:bulk:1")
  end)

  it("escapes the namespace so a pattern cannot reach outside it", function()
    local g = H.cache { prefix = "g*[x]" }
    g:set("k", 1)
    H.admin():command("SET", "gZx:1:k", "other")
    H.admin():command("SET", "g*[x]:1:k2", "mine")
    assert.equal(2, g:delete_pattern("*"))
    assert.equal("other", H.admin():command("GET", "gZx:1:k"))
    H.admin():command("DEL", "gZx:1:k")
  end)

  it("clear() removes only this cache's namespace, never FLUSHDB", function()
    local other = H.cache { prefix = "other" }
    c:set_many({ a = 1, b = 2 })
    other:set("a", 1)
    H.admin():command("SET", "unprefixed", "stay")
    local flush = calls("flushdb") + calls("flushall")
    assert.equal(2, c:clear())
    assert.is_nil(c:get("a"))
    assert.equal(1, other:get("a"))
    assert.equal("stay", H.admin():command("GET", "unprefixed"))
    assert.equal(flush, calls("flushdb") + calls("flushall"))
    other:clear()
    H.admin():command("DEL", "unprefixed")
  end)

  it("incr_version moves an entry to the next version, with its TTL", function()
    c:set("v", "one", 100)
    assert.equal(2, c:incr_version("v"))
    assert.is_nil(c:get("v"))
    local v2 = c:with_version(2)
    assert.equal("one", v2:get("v"))
    assert.is_true(v2:ttl("v") > 99)
    assert.same({ nil, "not found" }, { c:incr_version("v") })
    v2:clear()
  end)

  it("runtime failures return nil, err", function()
    local down = H.cache { port = 1, prefix = "api" }
    assert.same({ nil, "connection refused" }, { down:get("k") })
    assert.same({ nil, "connection refused" }, { down:set("k", 1) })
    c:close()
    assert.same({ nil, "closed" }, { c:get("k") })
    c = H.cache { prefix = "api" }
  end)
end)
