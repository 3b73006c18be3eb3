-- The protocol core without a socket (src/core/hc_proto.c, hc_xio.c,
-- hc_lproto.c): commands to bytes, bytes in any pieces to replies, and
-- whole cache operations driven by a connection written in Lua
-- (hicache.transport over LuaSocket, feeding the reply one byte at a time)
-- giving the same results, stats and events as the blocking path.
local H = require "helper"
local core = require "hicache.core"
local transport = require "hicache.transport"
local socket = require "socket"

-- A LuaSocket connection to the test server that hands the reply over in
-- pieces of `piece` bytes (1: one byte at a time).
local function lua_conn(piece)
  local s = assert(socket.tcp())
  s:settimeout(2)
  assert(s:connect(H.host, H.port))
  s:settimeout(0) -- receive() returns what has arrived (after select says something has)
  local buf = ""
  local conn = { sends = 0, sock = s }
  function conn:send(bytes)
    self.sends = self.sends + 1
    return s:send(bytes)
  end
  function conn:receive()
    if buf == "" then
      local r = socket.select({ s }, nil, 2)
      if not r[1] then return nil, "timeout" end
      local data, err, partial = s:receive(65536)
      data = data or partial
      if not data or data == "" then return nil, err end
      buf = data
    end
    local out = buf:sub(1, piece)
    buf = buf:sub(piece + 1)
    return out
  end
  function conn:close() s:close() end
  return conn
end

describe("core.format and core.reader", function()
  it("formats commands as RESP, one after the other", function()
    assert.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv\0\r\n*1\r\n$4\r\nPING\r\n",
      core.format { { "SET", "k", "v\0" }, { "PING" } })
    assert.equal("*2\r\n$3\r\nGET\r\n$2\r\n42\r\n", core.format { { "GET", 42 } })
    assert.equal("", core.format {})
    assert.has_error(function() core.format { { "GET", {} } } end)
  end)

  it("writes the same bytes as hiredis's redisFormatCommandArgv (random commands)", function()
    math.randomseed(42)
    for _ = 1, 500 do
      local args = {}
      for i = 1, math.random(1, 12) do
        local len = ({ 0, 1, 9, 10, 99, 100, 1000, math.random(0, 70000) })[math.random(1, 8)]
        local piece = string.char(math.random(0, 255), math.random(0, 255), 13, 10, math.random(0, 255))
        args[i] = string.rep(piece, math.floor(len / 5) + 1):sub(1, len)
      end
      assert.equal(H.posix.hiredis_format(H.unpack(args)), core.format { args })
    end
    local a, b = { "SET", "k", "v" }, { "GET", "k" }
    assert.equal(H.posix.hiredis_format(H.unpack(a)) .. H.posix.hiredis_format(H.unpack(b)),
      core.format { a, b })
  end)

  it("parses replies fed one byte at a time", function()
    local bytes = "+OK\r\n:42\r\n$-1\r\n*3\r\n$1\r\na\r\n*1\r\n:7\r\n$0\r\n\r\n-ERR boom\r\n"
    local r = core.reader()
    local got = {}
    for i = 1, #bytes do
      assert.is_true(r:feed(bytes:sub(i, i)))
      while true do
        local ok, v = r:next()
        if ok == false then break end
        got[#got + 1] = ok == nil and { "error", v } or v
      end
    end
    assert.same({ "OK", 42, core.null, { "a", { 7 }, "" }, { "error", "ERR boom" } }, got)
    assert.is_false(r:next())
  end)

  it("a protocol error is nil, err, and the reader stays failed", function()
    local r = core.reader()
    assert.is_true(r:feed("?what\r\n"))
    assert.same({ nil, "protocol error" }, { r:next() })
    assert.same({ nil, "protocol error" }, { r:feed("+OK\r\n") })
  end)
end)

describe("cache operations over a connection written in Lua", function()
  local c, ref, conn
  before_each(function()
    c = H.cache { prefix = "px" }
    ref = H.cache { prefix = "px" }
    conn = lua_conn(1)
  end)
  after_each(function()
    conn:close()
    c:clear()
  end)

  local function run(method, ...)
    return transport.run(c, conn, method, ...)
  end

  local value = { name = "ada", tags = { "x", "y" }, n = 42, ok = true }

  it("set, get, get_many, set_many, delete: the same as the blocking path", function()
    assert.is_true(run("set", "a", value))
    assert.same(value, ref:get("a"))
    assert.same(value, run("get", "a"))
    assert.same({ nil, nil }, { run("get", "missing") })
    assert.same({}, run("set_many", { b = 1, c = "two" }))
    assert.same({ a = value, b = 1, c = "two" }, run("get_many", { "a", "b", "c", "zz" }))
    assert.is_true(run("delete", "a"))
    assert.is_nil(ref:get("a"))
    assert.same(ref:get_many { "b", "c" }, run("get_many", { "b", "c" }))
  end)

  it("add, incr, decr, has_key, ttl, expire, persist", function()
    assert.is_true(run("add", "n", 10, 100))
    assert.is_false(run("add", "n", 11))
    assert.equal(15, run("incr", "n", 5))
    assert.equal(13, run("decr", "n", 2))
    assert.is_true(run("has_key", "n"))
    local t = run("ttl", "n")
    assert.is_true(t > 99 and t <= 100)
    assert.is_true(run("expire", "n", 500))
    assert.is_true(run("ttl", "n") > 499)
    assert.is_true(run("persist", "n"))
    assert.equal(0, run("ttl", "n"))
  end)

  it("tagged entries: a read of two round trips, invalidate_tag", function()
    assert.is_true(run("set", "t", "v", nil, { tags = { "team:1" } }))
    assert.equal("v", run("get", "t"))
    assert.equal("v", ref:get("t"))
    assert.is_true(run("invalidate_tag", "team:1"))
    assert.is_nil(run("get", "t"))
    assert.is_nil(ref:get("t"))
  end)

  it("loads a script the cache has not loaded yet, and again after SCRIPT FLUSH", function()
    local fresh = H.cache { prefix = "px" }
    assert.is_true(transport.run(fresh, conn, "set", "s", 1))
    H.admin():command("SCRIPT", "FLUSH")
    assert.is_true(transport.run(fresh, conn, "set", "s", 2))
    assert.equal(2, ref:get("s"))
  end)

  it("records each operation once in stats and calls on_event once", function()
    local events = {}
    local o = H.cache { prefix = "px", on_event = function(ev) events[#events + 1] = ev.op .. ":" .. ev.status end }
    assert.is_true(transport.run(o, conn, "set", "e", "v", nil, { tags = { "g" } }))
    assert.equal("v", transport.run(o, conn, "get", "e"))
    assert.is_nil(transport.run(o, conn, "get", "nope"))
    assert.same({ "set:set", "get:hit", "get:miss" }, events)
    local st = o:stats()
    assert.equal(2, st.ops.get.count)
    assert.equal(1, st.hits)
    assert.equal(1, st.misses)
  end)

  it("reply pieces of any size give the same result", function()
    assert.is_true(ref:set("big", string.rep("x", 100000)))
    for _, piece in ipairs { 1, 7, 4096, 1e6 } do
      local cc = lua_conn(piece)
      assert.equal(100000, #transport.run(c, cc, "get", "big"))
      cc:close()
    end
  end)

  it("argument errors raise as on the blocking path; a connection failure is nil, err", function()
    local _, blocking = pcall(c.get, c, nil)
    local _, driven = pcall(run, "get", nil)
    assert.matches("bad argument #1 to 'get'", driven, 1, true)
    assert.matches("proto_spec.lua:%d+:", driven)   -- at the caller's line
    assert.equal(blocking:match("%(.*"), driven:match("%(.*"))
    local line = debug.getinfo(1, "l").currentline
    local okr, er = pcall(function() run("no_such_op") end)
    assert.is_false(okr)
    assert.equal("spec/proto_spec.lua:" .. (line + 1)
      .. ": bad argument #3 to 'run' ('no_such_op' is not an operation of the C core)", er)
    -- Lua-level functions call several C operations: not run this way
    local ok, e = pcall(run, "get_or_set", "k", function() end)
    assert.is_false(ok)
    assert.matches("bad argument #3 to 'run' ('get_or_set' is not an operation of the C core)", e, 1, true)
    local dead = { send = function() return nil, "closed" end, receive = function() return nil, "closed" end }
    assert.same({ nil, "closed" }, { transport.run(c, dead, "get", "a") })
    local mute = { send = function() return true end, receive = function() return nil, "timeout" end }
    assert.same({ nil, "timeout" }, { transport.run(c, mute, "set", "a", 1) })
  end)

  it("xio:fail ends the operation through its error path; xio:reset reuses an xio", function()
    local step, PENDING = core.step, core.PENDING
    assert.is_true(c:set("f", "v"))
    c:stats_reset()
    local x = core.xio()
    assert.equal(PENDING, step(c, x, "get", "f"))
    assert.is_true(x:retryable()) -- a GET only reads, no reply byte yet
    assert.is_true(x:fail("timeout"))
    assert.same({ nil, "timeout" }, { step(c, x, "get", "f") })
    assert.equal(1, c:stats().errors)
    -- the same xio, made new: a whole operation again
    x:reset()
    assert.equal(PENDING, step(c, x, "get", "f"))
    local req = x:request()
    conn:send(req)
    local done
    repeat done = x:feed(assert(conn:receive(0))) until done
    assert.equal("v", step(c, x, "get", "f"))
    assert.equal(1, c:stats().hits)
    -- a write's round is not retryable
    x:reset()
    assert.equal(PENDING, step(c, x, "set", "f", "w"))
    assert.is_false(x:retryable())
    -- the state a round leaves its connection in (hc_cmd_track)
    x:reset()
    assert.equal(0, x:state())
    assert.equal(PENDING, step(c, x, "command", "MULTI"))
    assert.equal(1, x:state()) -- MULTI
    x:reset()
    assert.equal(1, x:state(1)) -- starts inside MULTI
    assert.equal(PENDING, step(c, x, "command", "EXEC"))
    assert.equal(0, x:state()) -- EXEC ends it
    x:reset()
    assert.equal(PENDING, step(c, x, "command", "SELECT", "1"))
    assert.equal(4, x:state()) -- DIRTY: close, never pool
    -- fail/feed need a pending round
    x:reset()
    assert.has_error(function() x:fail("x") end)
  end)

  it("sends one request per round trip", function()
    assert.is_true(run("set", "r", 1))  -- loads the WRITE script: 2 rounds
    local before = conn.sends
    assert.equal(1, run("get", "r"))
    assert.is_true(run("set", "r", 2))
    assert.equal(before + 2, conn.sends)
  end)
end)
