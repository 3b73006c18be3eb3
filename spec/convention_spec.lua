-- One return convention for get_or_set and memoize (value, err, status),
-- and what they do when Redis is unreachable or times out: fn is called
-- and its value returned ("bypass"), unless the caller opts out. A fill
-- function's `nil, err` is a failed computation; whatever fails after
-- the lease was taken gives the lease back.
local H = require "helper"
local posix = H.posix

-- A TCP port that accepts connections (the kernel's backlog) and never
-- answers: every command times out. Returns port, stop().
local function silent_server()
  local f = assert(io.popen([[exec /usr/bin/python3 -c '
import socket, os, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], os.getpid()); sys.stdout.flush(); time.sleep(120)' ]]))
  local port, pid = f:read("l"):match("^(%d+) (%d+)$")
  return tonumber(port), function()
    os.execute("kill " .. pid .. " 2>/dev/null")
    f:close()
  end
end

local function down_cache(opts)
  opts = opts or {}
  opts.port, opts.prefix = 1, "conv"   -- nothing listens on port 1: refused
  opts.pool = { backoff_base = 0, backoff_max = 0 }
  return H.cache(opts)
end

describe("get_or_set returns value, err, status", function()
  local c, admin
  setup(function()
    c = H.cache { prefix = "conv" }
    admin = H.admin()
  end)
  after_each(function() c:clear() end)

  it("hit and miss: err is nil, status says which", function()
    assert.same({ "v", nil, "miss" }, { c:get_or_set("a", function() return "v" end) })
    assert.same({ "v", nil, "hit" }, { c:get_or_set("a", error) })
    -- a nil result is not cached (without neg_ttl): a miss, no error
    assert.same({ nil, nil, "miss" }, { c:get_or_set("n", function() return nil end) })
    assert.is_false(c:has_key("n"))
  end)

  it("fn returning nil, err is a failed computation: nil, err, nothing stored, the lease released", function()
    local runs = 0
    local v, err, st = c:get_or_set("f", function() runs = runs + 1; return nil, "db down" end)
    assert.is_nil(v)
    assert.equal("db down", err)
    assert.is_nil(st)
    assert.is_false(c:has_key("f"))
    assert.equal(0, admin:command("EXISTS", c:_names("f").lease))
    -- not "fn returned an invalid ttl"; the next caller computes again
    assert.same({ "ok", nil, "miss" }, { c:get_or_set("f", function() runs = runs + 1; return "ok" end) })
    assert.equal(2, runs)
    -- an error object that is not a string counts too
    local e = { code = 503 }
    assert.same({ nil, e }, { c:get_or_set("g", function() return nil, e end) })
  end)

  it("fn returning nil, err with a stale value and stale_if_error serves the stale value", function()
    local events = {}
    local sc = H.cache { prefix = "conv", on_event = function(ev) events[#events + 1] = ev end }
    sc:get_or_set("s", function() return "old" end, { ttl = 0.05, stale_if_error = 30 })
    posix.sleep(0.1)
    local v, err, st = sc:get_or_set("s", function() return nil, "db down" end, { ttl = 0.05, stale_if_error = 30 })
    assert.same({ "old", nil, "stale_error" }, { v, err, st })
    assert.equal("db down", events[#events].err)
    assert.equal(0, admin:command("EXISTS", sc:_names("s").lease))
  end)

  it("fn returning a value that cannot be encoded raises at the caller's line and releases the lease", function()
    local ok, err = pcall(function() return c:get_or_set("e", function() return { f = print } end) end)
    assert.is_false(ok)
    assert.matches("^spec/convention_spec.lua:%d+: get_or_set: fn returned a value that cannot be stored", err)
    assert.equal(0, admin:command("EXISTS", c:_names("e").lease))
    -- an invalid ttl likewise
    ok, err = pcall(function() return c:get_or_set("e", function() return 1, -5 end) end)
    assert.is_false(ok)
    assert.matches("invalid ttl", err)
    assert.equal(0, admin:command("EXISTS", c:_names("e").lease))
    -- a waiter does not wait for a lease left behind
    assert.same({ "fine", nil, "miss" },
      { c:get_or_set("e", function() return "fine" end, { wait = 0.2, on_wait_timeout = "error" }) })
  end)

  it("fn raising: the lease is released and fn's error propagates unchanged", function()
    local ok, err = pcall(c.get_or_set, c, "r", function() error({ mine = true }) end)
    assert.is_false(ok)
    assert.same({ mine = true }, err)
    assert.equal(0, admin:command("EXISTS", c:_names("r").lease))
  end)

  it("a wait that times out with on_wait_timeout = \"error\" returns nil, \"timeout\"", function()
    assert(admin:command("SET", c:_names("busy").lease, "someone", "PX", 5000)) -- held
    assert.same({ nil, "timeout" },
      { c:get_or_set("busy", error, { wait = 0.05, on_wait_timeout = "error" }) })
    -- "compute": fn's value, not stored; its nil, err is a failure too
    assert.same({ 3, nil, "miss" }, { c:get_or_set("busy", function() return 3 end, { wait = 0.05 }) })
    assert.same({ nil, "no" }, { c:get_or_set("busy", function() return nil, "no" end, { wait = 0.05 }) })
    admin:command("DEL", c:_names("busy").lease)
  end)
end)

describe("when Redis is unreachable", function()
  it("get_or_set calls fn and returns its value with status bypass; the error is observed", function()
    local events = {}
    local c = down_cache { on_event = function(ev) events[#events + 1] = ev end }
    local runs = 0
    local v, err, st = c:get_or_set("k", function() runs = runs + 1; return "computed" end)
    assert.same({ "computed", nil, "bypass" }, { v, err, st })
    assert.equal(1, runs)
    local ev = events[#events]
    assert.equal("get_or_set", ev.op)
    assert.equal("error", ev.status)
    assert.matches("refused", ev.err)
    assert.equal(1, c:stats().errors)
    -- fn's own failure still wins
    assert.same({ nil, "db down" }, { c:get_or_set("k", function() return nil, "db down" end) })
  end)

  it("opting out (bypass = false) returns nil, err without calling fn", function()
    local c = down_cache()
    local runs = 0
    local v, err, st = c:get_or_set("k", function() runs = runs + 1; return 1 end, { bypass = false })
    assert.is_nil(v)
    assert.matches("refused", err)
    assert.is_nil(st)
    assert.equal(0, runs)
  end)

  it("memoize calls fn and returns all its results; bypass = false returns nil, err", function()
    local c = down_cache()
    local runs = 0
    local m = c:memoize(function(a, b) runs = runs + 1; return a + b, "sum" end, { name = "add" })
    assert.same({ 5, "sum" }, { m(2, 3) })
    assert.same({ 5, "sum" }, { m(2, 3) })
    assert.equal(2, runs)
    local strict = c:memoize(function() runs = runs + 1; return 1 end, { name = "strict", bypass = false })
    local v, err = strict()
    assert.is_nil(v)
    assert.matches("refused", err)
    assert.equal(2, runs)
  end)

  it("a command timeout bypasses too", function()
    local port, stop = silent_server()
    finally(stop)
    local c = H.cache { port = port, prefix = "conv", timeout = 0.1, connect_timeout = 0.5 }
    assert.same({ "t", nil, "bypass" }, { c:get_or_set("k", function() return "t" end) })
    local v, err = c:get_or_set("k", function() return "t" end, { bypass = false })
    assert.is_nil(v)
    assert.equal("timeout", err)
  end)

  it("Redis failing while fn runs: fn's value is returned, status bypass, nothing stored", function()
    local c = H.cache { prefix = "conv", timeout = 0.2 }
    local admin = H.admin()
    local v, err, st = c:get_or_set("mid", function()
      admin:command("CLIENT", "PAUSE", "600", "ALL") -- the store times out
      return "mine"
    end)
    assert.same({ "mine", nil, "bypass" }, { v, err, st })
    posix.sleep(0.7)
    assert.is_nil(c:get("mid"))
  end)
end)

describe("memoize keeps fn's convention", function()
  it("fn's nil, err is returned as is and never cached", function()
    local c = H.cache { prefix = "conv" }
    local runs = 0
    local m = c:memoize(function(id)
      runs = runs + 1
      if runs == 1 then return nil, "db down" end
      return { id = id }
    end, { name = "load", neg_ttl = 60 })
    assert.same({ nil, "db down" }, { m(1) })
    assert.same({ id = 1 }, m(1))
    assert.same({ id = 1 }, m(1))
    assert.equal(2, runs)
    c:clear()
  end)

  it("several results and a nil first result with a number second are results, not errors", function()
    local c = H.cache { prefix = "conv" }
    local m = c:memoize(function() return nil, 5 end, { name = "pair" })
    assert.same({ nil, 5 }, { m() })
    assert.same({ nil, 5 }, { m() })
    c:clear()
  end)
end)

describe("a value get_or_set cannot decode", function()
  it("is replaced by fn's value instead of bypassing the cache forever", function()
    local c = H.cache { prefix = "conv" }
    local admin = H.admin()
    admin:command("SET", c:_key("bad"), "\128\4\149.") -- a pickle, as django-redis writes by default
    assert.matches("^decode error", select(2, c:get("bad")))
    local runs = 0
    local function load() runs = runs + 1; return "fresh" end
    assert.same({ "fresh", nil, "miss" }, { c:get_or_set("bad", load) })
    assert.same({ "fresh", nil, "hit" }, { c:get_or_set("bad", load) })
    assert.equal(1, runs)
    c:clear()
  end)
end)
