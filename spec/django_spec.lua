-- Values are shared both ways between hicache and Django's cache framework
-- with django-redis and its msgpack serializer (spec/helpers/django_peer.py,
-- run with the system python3: Debian's python3-django, python3-django-redis
-- and python3-msgpack). Both sides use prefix "dj", version 1: dj:1:key.
local H = require "helper"
local null = H.null

local PYTHON = "/usr/bin/python3"
-- 2^62 as a number (a double holds it exactly: LuaJIT writes it as an
-- integer too), and as hicache reads it back (LuaJIT: beyond 2^53, its
-- decimal string)
local INT_2_62 = math.tointeger and math.tointeger(2 ^ 62) or 2 ^ 62
local INT_2_62_READ = H.int("4611686018427387904")
local PEER = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "helpers/django_peer.py"

-- Runs the peer; returns its output (stdout and stderr) and exit code.
local function peer(args)
  return H.shell(PYTHON .. " " .. PEER .. " " .. args)
end

-- The values both sides write, in order; django_peer.py has the Python
-- equivalents under the same names. "none" is a top-level nil (Python None).
local VALUES = {
  { "str_ascii", "hello, world" },
  { "str_utf8", "h\u{e9}llo w\u{f6}rld \u{2713} \u{65e5}\u{672c}\u{8a9e} \u{1f389}" },
  { "str_empty", "" },
  { "bytes", "\255\0\254 raw" },                 -- not UTF-8: msgpack bin, Python bytes
  { "int_pos", 42 },
  { "int_neg", -7 },
  { "int_zero", 0 },
  { "int_2_62", INT_2_62 },
  { "float_1_5", 1.5 },
  { "float_neg", -0.25 },
  { "float_1e300", 1e300 },
  { "float_integral", 2.0 },                     -- stays a float both ways
  { "true", true },
  { "false", false },
  { "none", null },   -- a null is stored as hicache.null (set refuses nil)
  { "nested", { a = { 1, 2, { b = "c" } }, n = null } },
  { "list", { 1, "two", 3.5, null, true, -1099511627776 } },   -- -2^40
  { "empty_dict", {} },                          -- Lua {} is an empty map: Python {}
}

-- A value with every number replaced by its math.type (H.mtype) and exact digits,
-- so that assert.same also tells 2 from 2.0 (Lua's 2 == 2.0 is true).
local function shape(v)
  local t = type(v)
  if t == "number" then return H.mtype(v) .. " " .. string.format("%.17g", v) end
  if t == "table" then
    local r = {}
    for k, x in pairs(v) do r[k] = shape(x) end
    return r
  end
  if v == null then return "null" end
  return t .. " " .. tostring(v)
end

local function write_lua_values(c)
  for _, e in ipairs(VALUES) do
    assert.is_true(c:set("interop:lua:" .. e[1], e[2], 0))
  end
end

describe("Django interop (django-redis msgpack serializer)", function()
  local c

  setup(function()
    c = H.cache { prefix = "dj", version = 1 }
    assert(c:delete_pattern("interop:*"))
  end)

  teardown(function()
    assert(c:delete_pattern("interop:*"))
    assert.is_nil((c:keys("interop:*")()))
  end)

  it("has a working peer that knows the same value names", function()
    local out, code = peer("names")
    assert.equal(0, code, out)
    local want = {}
    for _, e in ipairs(VALUES) do want[#want + 1] = e[1] end
    assert.equal(table.concat(want, "\n") .. "\n", out)
  end)

  it("reads what Django wrote", function()
    local out, code = peer("write")
    assert.equal(0, code, out)
    assert.equal("wrote " .. #VALUES .. "\n", out)
    for _, e in ipairs(VALUES) do
      local name, want = e[1], e[2]
      if name == "none" then want = nil end -- a top-level None reads as nil (a miss looks the same)
      if name == "int_2_62" then want = INT_2_62_READ end
      local got, err = c:get("interop:py:" .. name)
      assert.is_nil(err, name)
      assert.same(want, got, name)
      assert.same(shape(want), shape(got), name)
    end
    -- the numbers by type, spelled out
    local ints = { "int_pos", "int_neg", "int_zero" }
    if not H.luajit then ints[#ints + 1] = "int_2_62" end -- LuaJIT: its decimal string (below)
    for _, name in ipairs(ints) do
      assert.equal("integer", H.mtype(c:get("interop:py:" .. name)), name)
    end
    -- (float_integral: its own test below, pending on LuaJIT)
    for _, name in ipairs { "float_1_5", "float_neg", "float_1e300" } do
      assert.equal("float", H.mtype(c:get("interop:py:" .. name)), name)
    end
    assert.equal(INT_2_62_READ, c:get("interop:py:int_2_62"))
    assert.equal(1e300, c:get("interop:py:float_1e300"))
    -- None inside containers is hicache.null
    local nested = c:get("interop:py:nested")
    assert.equal(null, nested.n)
    assert.equal(null, c:get("interop:py:list")[4])
    -- Python bytes are the same bytes; Python str is UTF-8
    assert.equal("\255\0\254 raw", c:get("interop:py:bytes"))
    assert.equal("h\195\169llo", c:get("interop:py:str_utf8"):sub(1, 6))
    -- ints are stored as decimal text by django-redis, as by hicache
    assert.equal("4611686018427387904", c:command("GET", "dj:1:interop:py:int_2_62"))
  end)

  it("reads a float that Django wrote with an integral value (2.0) as a float", function()
    if H.luajit then return pending("LuaJIT: no integer subtype, Django's 2.0 reads as the number 2") end
    local out, code = peer("write")
    assert.equal(0, code, out)
    assert.equal(2.0, c:get("interop:py:float_integral"))
    assert.equal("float", H.mtype(c:get("interop:py:float_integral")))
  end)

  it("reads a top-level None as nil, which is a hit and not a miss", function()
    local out, code = peer("write")
    assert.equal(0, code, out)
    assert.equal("\192", c:command("GET", "dj:1:interop:py:none"))   -- msgpack nil
    local r = H.pack(c:get("interop:py:none"))
    assert.same({ n = 1 }, r)                       -- nil, and no error
    -- get's default is returned on a miss only: a stored None gives nil
    assert.is_nil(c:get("interop:py:none", "MISS"))
    assert.equal("MISS", c:get("interop:py:no-such-key", "MISS"))
    assert.is_true(c:has_key("interop:py:none"))
  end)

  it("writes what Django reads", function()
    write_lua_values(c)
    local out, code = peer("check")
    if H.luajit then
      -- LuaJIT has no float subtype: the float 2.0 is the integer 2, and
      -- is stored as one (by design); every other value matches
      assert.equal("MISMATCH float_integral: want float 2.0, got int 2 (stored b'2')\n", out)
      assert.equal(1, code, out)
    else
      assert.equal("checked " .. #VALUES .. "\n", out)
      assert.equal(0, code, out)
    end
    -- a hicache.null set by hicache is a None that Django finds (not a miss)
    out, code = peer("get interop:lua:none")
    assert.equal(0, code, out)
    assert.equal("NoneType None\n", out)
  end)

  it("is checked strictly by the peer (types, not just ==)", function()
    write_lua_values(c)
    -- in Python True == 1 and 2.0 == 2; the peer must still flag these
    c:set("interop:lua:true", 1, 0)
    c:set("interop:lua:float_integral", 2, 0)
    c:set("interop:lua:str_utf8", "\255", 0)       -- bin: bytes, not str
    c:delete("interop:lua:none")
    local out, code = peer("check")
    assert.equal(1, code, out)
    assert.matches("MISMATCH true: want bool True, got int 1", out, 1, true)
    assert.matches("MISMATCH float_integral: want float 2.0, got int 2", out, 1, true)
    assert.matches("MISMATCH str_utf8: want str", out, 1, true)
    assert.matches("MISMATCH none: missing", out, 1, true)
    local _, lines = out:gsub("\n", "")
    assert.equal(4, lines, out)
  end)

  it("lets Django incr an integer that hicache set", function()
    assert.is_true(c:set("interop:counter_lua", 41, 0))
    local out, code = peer("incr interop:counter_lua 1")
    assert.equal(0, code, out)
    assert.equal("42\n", out)
    out, code = peer("incr interop:counter_lua -50")
    assert.equal(0, code, out)
    assert.equal("-8\n", out)
    local v = c:get("interop:counter_lua")
    assert.equal(-8, v)
    assert.equal("integer", H.mtype(v))
    assert.equal("-8", c:command("GET", "dj:1:interop:counter_lua"))  -- still text
    assert.equal(0, c:ttl("interop:counter_lua"))                    -- still no expiry
  end)

  it("incrs an integer that Django set", function()
    local out, code = peer("set-int interop:counter_py 100")
    assert.equal(0, code, out)
    assert.equal("100", c:command("GET", "dj:1:interop:counter_py"))
    assert.equal(105, c:incr("interop:counter_py", 5))
    assert.equal(-100, c:decr("interop:counter_py", 205))
    out, code = peer("get interop:counter_py")
    assert.equal(0, code, out)
    assert.equal("int -100\n", out)
    -- and the next Django incr continues from there
    out, code = peer("incr interop:counter_py 1")
    assert.equal(0, code, out)
    assert.equal("-99\n", out)
    assert.equal(-99, c:get("interop:counter_py"))
  end)
end)
