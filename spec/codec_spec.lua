local H = require "helper"
local null = H.null

local function roundtrip(c, v)
  local bytes = c:encode(v)
  local back, err = c:decode(bytes)
  assert(err == nil, err)
  return back, bytes
end

describe("codec (msgpack)", function()
  local c
  before_each(function() c = H.cache() end)

  it("keeps nil, booleans, integers and floats distinct", function()
    for _, v in ipairs { true, false, 0, 3, -1, 3.0, -0.5, 1e300, 2^53, math.pi } do
      local back = roundtrip(c, v)
      assert.equal(v, back)
      assert.equal(H.mtype(v), H.mtype(back))
    end
    assert.is_nil((roundtrip(c, nil)))
  end)

  it("handles the 64-bit integer edges", function()
    -- the int64 edges as MessagePack integers inside a one-element array
    local MSGPACK = {
      ["9223372036854775807"] = "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff",
      ["-9223372036854775808"] = "\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
      ["9223372036854775806"] = "\xcf\x7f\xff\xff\xff\xff\xff\xff\xfe",
      ["-9223372036854775807"] = "\xd3\x80\x00\x00\x00\x00\x00\x00\x01",
    }
    for _, s in ipairs { "9223372036854775807", "-9223372036854775808", "9223372036854775806",
                         "-9223372036854775807", "2147483648", "-2147483649", "255", "256", "-32", "-33",
                         "65535", "65536", "4294967296" } do
      local v = H.int(s) -- LuaJIT: the string s beyond 2^53
      if MSGPACK[s] then assert.same({ v }, c:decode("\x91" .. MSGPACK[s])) end
      if type(v) == "string" then
        -- LuaJIT: such an integer is read back as its decimal string, and
        -- a string is stored as a string
        assert.equal(v, c:decode(s))
        assert.equal("string", type((roundtrip(c, v))))
      else
        local back = roundtrip(c, v)
        assert.equal(v, back)
        assert.equal("integer", H.mtype(back))
        -- and inside a container, where they are MessagePack integers
        assert.same({ v }, (roundtrip(c, { v })))
      end
    end
  end)

  it("stores top-level integers as decimal text (INCRBY works, like django-redis)", function()
    assert.equal("42", c:encode(42))
    assert.equal("-9223372036854775808", c:encode(math.mininteger or -2 ^ 63)) -- (exact as a double)
    assert.equal(3.0, c:decode(c:encode(3.0)))            -- a float is not text
    assert.are_not.equal("3.0", c:encode(3.0))
    assert.same({ nil, "decode error: integer out of range" }, { c:decode("9223372036854775808") })
  end)

  it("round-trips NaN and infinities", function()
    local nan = roundtrip(c, 0 / 0)
    assert.is_true(nan ~= nan)
    assert.equal(math.huge, (roundtrip(c, math.huge)))
    assert.equal(-math.huge, (roundtrip(c, -math.huge)))
  end)

  it("is binary-safe for strings (NUL, invalid UTF-8, all bytes)", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    for _, s in ipairs { "", "a\0b", "\255\254", table.concat(all), "héllo wörld ✓" } do
      assert.equal(s, (roundtrip(c, s)))
    end
    -- valid UTF-8 is a msgpack str (0xa5), other bytes a bin (0xc4)
    assert.equal(0xa5, c:encode("hello"):byte(1))
    assert.equal(0xc4, c:encode("\255"):byte(1))
  end)

  it("encodes nested tables as arrays or maps", function()
    local v = { list = { 1, 2, { 3, "x" } }, map = { a = 1, [10] = "ten", [true] = "yes", [1.5] = "f" },
                empty = {}, deep = { { { { "end" } } } } }
    assert.same(v, (roundtrip(c, v)))
    assert.equal(0x90 + 3, c:encode({ 1, 2, 3 }):byte(1))   -- fixarray
    assert.equal(0x80, c:encode({}):byte(1))                -- empty table: empty map
  end)

  it("encodes sparse arrays as maps with integer keys", function()
    local sparse = { [1] = "a", [3] = "c", [10] = "j" }
    assert.equal(0x83, c:encode(sparse):byte(1))            -- fixmap of 3
    assert.same(sparse, (roundtrip(c, sparse)))
  end)

  it("maps hicache.null to nil inside containers and back", function()
    local back = roundtrip(c, { 1, null, 3 })
    assert.same({ 1, null, 3 }, back)
    assert.equal(null, back[2])
  end)

  it("round-trips a 10 MB value", function()
    local big = string.rep("0123456789abcdef", 10 * 1024 * 1024 / 16)
    assert.equal(big, (roundtrip(c, big)))
    local t = {}
    for i = 1, 100000 do t[i] = i end
    assert.same(t, (roundtrip(c, t)))
  end)

  it("refuses values it cannot cache, naming the path", function()
    local function err_of(v)
      local ok, err = pcall(function() local b = c:encode(v); return b end)
      assert.is_false(ok)
      return err
    end
    assert.matches("value: cannot cache a function", err_of(print), 1, true)
    assert.matches("value.items[3].cb: cannot cache a function",
      err_of { items = { 1, 2, { cb = function() end } } }, 1, true)
    assert.matches("value.co: cannot cache a thread", err_of { co = coroutine.create(print) }, 1, true)
    assert.matches("value[1]: cannot cache a userdata", err_of { io.stdout }, 1, true)
    assert.matches('value["not an identifier"]: cannot cache a function',
      err_of { ["not an identifier"] = print }, 1, true)
    assert.matches("cannot use a table as a key", err_of { [{}] = 1 }, 1, true)
    local cyc = { a = {} }
    cyc.a.back = cyc
    assert.matches("value.a.back: cannot cache a cyclic table", err_of(cyc), 1, true)
    local deep = {}
    local t = deep
    for _ = 1, 100 do t[1] = {}; t = t[1] end
    assert.matches("nested too deeply", err_of(deep), 1, true)
    -- a table referenced twice (not a cycle) is fine
    local shared = { 1 }
    assert.same({ shared, shared }, (roundtrip(c, { shared, shared })))
  end)

  it("rejects truncated, random and malicious input without crashing", function()
    local cases = {
      "", "\xc1", "\x92\x01", "\xcb\x00\x00", "\xd9\x05abc", "\xdd\xff\xff\xff\xff",
      "\xdf\xff\xff\xff\xff", "\xdb\xff\xff\xff\xff", "\xc6\x7f\xff\xff\xff",
      "\x81\xc0\x01", "\x81\x90\x01", "\xc7\x01\x05x", "\xa1a\x00", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
      string.rep("\x91", 1000) .. "\x01",
    }
    for _, bytes in ipairs(cases) do
      local v, err = c:decode(bytes)
      assert.is_nil(v)
      assert.matches("^decode error: ", err)
    end
    math.randomseed(42)
    for _ = 1, 2000 do
      local n = math.random(0, 64)
      local b = {}
      for i = 1, n do b[i] = string.char(math.random(0, 255)) end
      local ok = pcall(c.decode, c, table.concat(b))
      assert.is_true(ok)   -- returns a value or nil, err: never raises
    end
  end)

  it("enforces the element and depth limits on decode", function()
    local small = H.cache { limits = { elements = 10, depth = 3 } }
    assert.same({ nil, "decode error: too many elements" }, { small:decode(c:encode({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 })) })
    assert.same({ nil, "decode error: nested too deeply" }, { small:decode(c:encode({ { { { 1 } } } })) })
    assert.same({ 1, 2 }, small:decode(c:encode({ 1, 2 })))
    -- the same depth rule for json, and for encoding: 3 levels pass, 4 do not
    local sj = H.cache { serializer = "json", limits = { depth = 3 } }
    assert.same({ { { 1 } } }, sj:decode("[[[1]]]"))
    assert.same({ nil, "decode error: nested too deeply" }, { sj:decode("[[[[1]]]]") })
    assert.equal("[[[1]]]", sj:encode({ { { 1 } } }))
    assert.has_error(function() sj:encode({ { { { 1 } } } }) end)
    assert.same({ { { 1 } } }, small:decode(small:encode({ { { 1 } } })))
    assert.has_error(function() small:encode({ { { { 1 } } } }) end)
  end)
end)

describe("codec (zstd compression)", function()
  it("compresses above min_size and is detected on read", function()
    local z = H.cache { compress = { min_size = 100, level = 3 } }
    local plain = H.cache()
    local v = { text = string.rep("compressible ", 500) }
    local bytes = z:encode(v)
    assert.equal("\x28\xb5\x2f\xfd", bytes:sub(1, 4))           -- zstd magic
    assert.is_true(#bytes < #plain:encode(v) / 5)
    assert.same(v, z:decode(bytes))
    assert.same(v, plain:decode(bytes))                          -- detected whatever the settings
    assert.equal(0x81, z:encode({ a = "short" }):byte(1))        -- small values stay plain
    assert.equal("12345", z:encode(12345))                       -- integers never compressed
  end)

  it("rejects corrupt frames and frames over the size limit", function()
    local z = H.cache { compress = { min_size = 10 }, limits = { bytes = 1000 } }
    local bytes = H.cache { compress = { min_size = 10 } }:encode(string.rep("x", 5000))
    assert.same({ nil, "decode error: decompressed size 5003 over the limit" }, { z:decode(bytes) })
    local v, err = z:decode(bytes:sub(1, 4) .. "\0\0\0\0garbage")
    assert.is_nil(v)
    assert.matches("^decode error: .*zstd", err)
  end)
end)

describe("codec (json and raw)", function()
  it("json keeps integers and floats distinct and maps null", function()
    local j = H.cache { serializer = "json" }
    local v = { i = 3, f = 3.0, s = "é", b = false, list = { 1, 2.5, "x" }, none = null }
    local bytes = j:encode(v)
    local back = j:decode(bytes)
    assert.same(v, back)
    assert.equal("integer", H.mtype(back.i))
    assert.equal("float", H.mtype(back.list[2]))
    assert.equal('{"a":[1,2.5]}', j:encode({ a = { 1, 2.5 } }))
    assert.equal("7", j:encode(7))
  end)

  it("json keeps a whole float (3.0) a float", function()
    if H.luajit then return pending("LuaJIT: no integer subtype, 3.0 is the integer 3 (stored as 3)") end
    local j = H.cache { serializer = "json" }
    local back = j:decode(j:encode({ f = 3.0 }))
    assert.equal(3.0, back.f)
    assert.equal("float", H.mtype(back.f))
  end)

  it("json refuses what JSON cannot hold", function()
    local j = H.cache { serializer = "json" }
    local function err_of(v)
      local ok, err = pcall(function() local b = j:encode(v); return b end)
      assert.is_false(ok)
      return err
    end
    assert.matches("value.x: NaN and infinity cannot be stored as JSON", err_of { x = 0 / 0 }, 1, true)
    assert.matches("value[5]: JSON object keys must be strings", err_of { [5] = 1, a = 2 }, 1, true)
    assert.matches("JSON strings must be UTF-8", err_of { "\255" }, 1, true)
    assert.matches("^decode error: invalid JSON", select(2, j:decode("{nope")))
  end)

  it("raw stores strings byte-exact and nothing else", function()
    local r = H.cache { serializer = "raw" }
    assert.equal("\0\1\2", r:encode("\0\1\2"))
    assert.equal("42", r:decode("42"))      -- raw bytes, not an integer
    assert.equal("string", type(r:decode("42")))
    local ok, err = pcall(function() local b = r:encode(42); return b end)
    assert.is_false(ok)
    assert.matches("raw serializer stores strings only", err)
  end)
end)
