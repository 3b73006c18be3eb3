local H = require "helper"
local posix = H.posix

describe("cache:command", function()
  local c
  before_each(function() c = H.cache() end)
  after_each(function() c:command("DEL", "cmd:a", "cmd:b", "cmd:list", "cmd:z", "cmd:big") end)

  it("maps replies like lua-resty-redis", function()
    assert.equal("OK", c:command("SET", "cmd:a", "1"))                -- status
    local n = c:command("INCR", "cmd:a")
    assert.equal(2, n)
    assert.equal("integer", H.mtype(n))                              -- integer
    assert.equal("2", c:command("GET", "cmd:a"))                      -- bulk
    assert.equal(H.null, c:command("GET", "cmd:missing"))             -- nil
    assert.equal(H.hicache.null, H.null)
    c:command("RPUSH", "cmd:list", "x", "y")
    assert.same({ "x", "y" }, c:command("LRANGE", "cmd:list", 0, -1)) -- array
    c:command("SET", "cmd:b", "x")
    assert.same({ "x", H.null }, c:command("MGET", "cmd:b", "cmd:nope"))  -- nil inside array
    assert.same({ 1, { "a", { 2 } }, H.null },
      c:command("EVAL", "return {1, {'a', {2}}, false}", 0))          -- nested
  end)

  it("returns nil, err on a server error and keeps the connection", function()
    local id = H.client_id(c)
    c:command("RPUSH", "cmd:z", "q")
    local v, err = c:command("INCR", "cmd:z")
    assert.is_nil(v)
    assert.matches("^WRONGTYPE", err)
    v, err = c:command("NOSUCHCMD", 1)
    assert.is_nil(v)
    assert.matches("^ERR unknown command", err)
    assert.equal(id, H.client_id(c))
    assert.equal(0, c:pool_stats().closed)
  end)

  it("is binary-safe for keys and values", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local v = table.concat(bytes) .. "\r\n$-1\r\n\0tail"
    local k = "cmd:b\0\r\n key"
    assert.equal("OK", c:command("SET", k, v))
    assert.equal(v, c:command("GET", k))
    assert.equal(1, c:command("DEL", k))
    assert.equal("OK", c:command("SET", "cmd:a", ""))
    assert.equal("", c:command("GET", "cmd:a"))
  end)

  it("converts numbers exactly", function()
    -- (LuaJIT: the int64 edges that a double holds exactly)
    for _, n in ipairs { 0, -7, math.maxinteger or 2 ^ 63 - 1024, math.mininteger or -2 ^ 63,
                         0.1, 1 / 3, -2.5e-300, 1e300 } do
      c:command("SET", "cmd:a", n)
      local got = c:command("GET", "cmd:a")
      assert.equal(n, tonumber(got))
      assert.equal(H.mtype(n), H.mtype(tonumber(got)))
    end
    assert.equal(1, c:command("ZADD", "cmd:z", math.huge, "top"))
    assert.equal("inf", c:command("ZSCORE", "cmd:z", "top"))
  end)

  it("raises on arguments it cannot send, naming the argument", function()
    local function err_of(...)
      local args = H.pack(...)
      local ok, err = pcall(function() local r = c:command(H.unpack(args, 1, args.n)); return r end)
      assert.is_false(ok)
      return err
    end
    assert.matches("bad argument #3 to 'command' %(string or number expected, got boolean%)",
      err_of("SET", "k", true))
    assert.matches("bad argument #2 .-got table", err_of("GET", {}))
    assert.matches("bad argument #3 .-got nil", err_of("SET", "k", nil))
    assert.matches("NaN", err_of("SET", "k", 0 / 0))
    assert.matches("command name expected", err_of())
    assert.matches("command_spec.lua", err_of("SET", "k", true))
    assert.equal(0, c:pool_stats().in_use)
  end)

  it("sends commands with many arguments", function()
    local args = {}
    for i = 1, 1000 do args[i] = i end
    assert.equal(1000, c:command("RPUSH", "cmd:big", H.unpack(args)))
    local all = c:command("LRANGE", "cmd:big", 0, -1)
    assert.equal(1000, #all)
    assert.equal("1000", all[1000])
  end)

  it("frees the reply when converting it to Lua raises (out of memory)", function()
    local items = {}
    for i = 1, 1000 do items[i] = string.rep("v", 100) .. i end
    for _ = 1, 20 do c:command("RPUSH", "cmd:big", H.unpack(items)) end -- 20k items
    collectgarbage()
    local function attempt()
      return posix.with_alloc_limit(64 * 1024, function()
        return c:command("LRANGE", "cmd:big", 0, -1)
      end)
    end
    local ok, err = attempt()
    assert.is_false(ok)
    assert.matches("not enough memory", err)
    collectgarbage()
    local before = posix.heap()
    for _ = 1, 30 do assert.is_false((attempt())) end
    collectgarbage()
    local grown = posix.heap() - before
    if not (H.asan or H.valgrind) then -- their allocators hide mallinfo; they check leaks themselves
      -- each leaked reply would be > 2.5 MB (20k redisReply + strings)
      assert.is_true(grown < 4 * 1024 * 1024, "heap grew by " .. grown)
    end
    -- and the connection went back to the pool in a usable state
    assert.equal(0, c:pool_stats().in_use)
    assert.equal(20000, #c:command("LRANGE", "cmd:big", 0, -1))
  end)
end)

describe("cache:pipeline", function()
  local c
  before_each(function() c = H.cache() end)

  it("returns replies in order, errors as {false, msg}", function()
    local id = H.client_id(c)
    local r = assert(c:pipeline {
      { "SET", "pl:a", 1 },
      { "INCR", "pl:a" },
      { "HSET", "pl:a", "f", "v" },   -- fails in the middle: WRONGTYPE
      { "INCRBY", "pl:a", 10 },
      { "GET", "pl:nope" },
      { "DEL", "pl:a" },
    })
    assert.equal(6, #r)
    assert.equal("OK", r[1])
    assert.equal(2, r[2])
    assert.is_false(r[3][1])
    assert.matches("^WRONGTYPE", r[3][2])
    assert.equal(12, r[4])
    assert.equal(H.null, r[5])
    assert.equal(1, r[6])
    assert.equal(id, H.client_id(c))
  end)

  it("sends the whole pipeline in one round trip", function()
    local cmds = {}
    for i = 1, 500 do cmds[i] = { "INCR", "pl:cnt" } end
    local r = assert(c:pipeline(cmds))
    assert.equal(500, #r)
    assert.equal(500, r[500])
    c:command("DEL", "pl:cnt")
  end)

  it("accepts an empty list", function()
    assert.same({}, c:pipeline {})
  end)

  it("raises on a malformed command list, naming the command", function()
    local function err_of(cmds)
      local ok, err = pcall(function() local r = c:pipeline(cmds); return r end)
      assert.is_false(ok)
      return err
    end
    assert.matches("table expected", err_of("GET"))
    assert.matches("command #2 is not a table", err_of { { "PING" }, "GET" })
    assert.matches("command #1 is empty", err_of { {} })
    assert.matches("command #2, argument #3: string or number expected, got boolean",
      err_of { { "PING" }, { "SET", "k", false } })
    assert.equal(0, c:pool_stats().in_use)
  end)
end)
