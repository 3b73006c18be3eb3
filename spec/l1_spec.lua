-- The L1 near cache (l1 = {...}): hits without I/O, consistency through
-- Redis client-side caching (CLIENT TRACKING ... REDIRECT to one
-- subscribed connection per pool), and what it does when that breaks.
local H = require("spec.helper")
local posix = H.posix

-- Polls fn every 10 ms for up to `seconds`; returns its first truthy result.
local function eventually(seconds, fn)
  local deadline = os.time() + seconds + 1
  repeat
    local v = fn()
    if v then return v end
    posix.sleep(0.01)
  until os.time() > deadline
  return fn()
end

local function calls(cmd)
  local info = assert(H.admin():command("INFO", "commandstats"))
  return tonumber(info:match("cmdstat_" .. cmd:lower() .. ":calls=(%d+)")) or 0
end

local function l1stats(c) return assert(c:pool_stats()).l1 end

local function tracking_up(c)
  return eventually(5, function() return l1stats(c).tracking end)
end

describe("l1", function()
  local c, admin
  before_each(function()
    c = H.cache { prefix = "l1s", l1 = { ttl = 30 } }
    admin = H.admin()
    assert.is_true(tracking_up(c))
  end)
  after_each(function() c:close() end)

  it("serves a second get from L1 without a command to Redis", function()
    assert(c:set("k", { a = 1, b = "two" }))
    assert.same({ a = 1, b = "two" }, c:get("k")) -- the fill
    local before = calls("get")
    for _ = 1, 50 do assert.same({ a = 1, b = "two" }, c:get("k")) end
    assert.equal(before, calls("get"))
    assert.is_true(l1stats(c).hits >= 50)
  end)

  it("drops its copy at once when this process writes the key", function()
    assert(c:set("w", "old"))
    assert.equal("old", c:get("w"))
    assert(c:set("w", "new"))
    assert.equal("new", c:get("w"))
    assert(c:delete("w"))
    assert.is_nil(c:get("w"))
    assert(c:set("n", 1))
    assert.equal(1, c:get("n"))
    assert.equal(5, c:incr("n", 4))
    assert.equal(5, c:get("n"))
    assert(c:command("SET", c:_key("n"), "7"))
    assert.equal(7, c:get("n"))
  end)

  it("stops serving a key another client wrote (tracking invalidation)", function()
    assert(c:set("x", "v1"))
    assert.equal("v1", c:get("x"))
    local other = H.cache { prefix = "l1s" } -- no L1: another process's writes look like this
    assert(other:set("x", "v2"))
    assert.equal("v2", eventually(3, function() local v = c:get("x"); return v == "v2" and v end))
    assert.is_true(l1stats(c).invalidations >= 1)
    other:close()
  end)

  it("keeps no copy past the key's own TTL in Redis", function()
    -- no active expiry: Redis would not report the key's expiry by itself
    assert(admin:command("DEBUG", "SET-ACTIVE-EXPIRE", "0"))
    local ok, err = pcall(function()
      assert(c:set("short", "s", 0.2))
      assert.equal("s", c:get("short"))
      posix.sleep(0.3)
      assert.is_nil(c:get("short"))
    end)
    assert(admin:command("DEBUG", "SET-ACTIVE-EXPIRE", "1"))
    assert(ok, err)
  end)

  it("flushes on FLUSHDB's null invalidation", function()
    assert(c:set("f", "v"))
    assert.equal("v", c:get("f"))
    assert(admin:command("FLUSHDB"))
    assert.is_true(eventually(3, function() return c:get("f") == nil end))
  end)

  it("trusts nothing filled before its invalidation connection was killed", function()
    assert(c:set("kk", "before"))
    assert.equal("before", c:get("kk"))
    local subs = l1stats(c).subscriptions
    assert(admin:command("CLIENT", "KILL", "TYPE", "pubsub"))
    -- written while nobody listens: no invalidation will ever come for it
    local other = H.cache { prefix = "l1s" }
    assert(other:command("SET", c:_key("kk"), other:encode("after")))
    assert.is_true(eventually(5, function() return l1stats(c).subscriptions > subs end))
    assert.equal("after", c:get("kk"))
    other:close()
  end)

  it("trusts nothing filled through a pooled connection the server closed", function()
    assert(c:set("pk", "before"))
    assert.equal("before", c:get("pk"))
    -- the pool's connections go (the subscription, type pubsub, stays):
    -- Redis forgets what they tracked, so no invalidation will come
    assert(admin:command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
    local other = H.cache { prefix = "l1s" }
    assert(other:command("SET", c:_key("pk"), other:encode("after")))
    posix.sleep(0.05) -- past the 10 ms between checks of idle connections
    assert.equal("after", c:get("pk"))
    other:close()
  end)

  it("keeps only the families it is told to", function()
    local f = H.cache { prefix = "l1s", l1 = { ttl = 30, families = { "user" } } }
    assert.is_true(tracking_up(f))
    assert(f:set("user:1", "u"))
    assert(f:set("post:1", "p"))
    assert.equal("u", f:get("user:1"))
    assert.equal("p", f:get("post:1"))
    local before = calls("get")
    assert.equal("u", f:get("user:1"))
    assert.equal("p", f:get("post:1"))
    assert.equal(before + 1, calls("get"))
    f:close()
  end)

  it("with bcast, sees writes through a connection of its own that must stay", function()
    local b = H.cache { prefix = "l1bc", l1 = { ttl = 30, bcast = true } }
    assert.is_true(tracking_up(b))
    assert(b:set("k", "v1"))
    -- (the broadcast of our own set may arrive after the first fill and
    -- drop it: a miss, never a stale value)
    assert.is_true(eventually(3, function()
      local before = calls("get")
      return b:get("k") == "v1" and calls("get") == before
    end))
    local other = H.cache { prefix = "l1bc" }
    assert(other:set("k", "v2"))
    assert.equal("v2", eventually(3, function() local v = b:get("k"); return v == "v2" and v end))
    -- the pool's connections carry no tracking: killing them loses nothing;
    -- killing every normal connection (the L1 thread's BCAST one too)
    -- makes the thread resubscribe and distrust what it had
    assert.equal("v2", b:get("k"))
    local subs = l1stats(b).subscriptions
    assert(admin:command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"))
    other:close()
    other = H.cache { prefix = "l1bc" }
    assert(other:command("SET", b:_key("k"), other:encode("v3")))
    assert.is_true(eventually(5, function() return l1stats(b).subscriptions > subs end))
    assert.equal("v3", eventually(3, function() local v = b:get("k"); return v == "v3" and v end))
    other:close()
    b:close()
  end)

  it("refuses bad options at the caller's line", function()
    local hicache = require("hicache")
    for _, bad in ipairs {
      { l1 = 3 }, { l1 = { ttl = -1 } }, { l1 = { nope = 1 } }, { l1 = { families = { "a:b" } } },
      { l1 = { families = { "a" }, prefixes = { "b" } } }, { l1 = { max_bytes = 10 } },
      { breaker = { failures = 0 } }, { breaker = { probe = 0 } }, { breaker = "x" },
    } do
      local ok, err = pcall(hicache.new, bad)
      assert.is_false(ok)
      assert.matches("l1_spec.lua", err, 1, true)
    end
  end)
end)

describe("breaker and fallback", function()
  local server, c, events

  local function restart() H.restart(server) end -- same port; server.stop stops the new one

  before_each(function()
    server = H.start_redis()
    events = {}
    c = H.cache {
      port = server.port, timeout = 0.2, connect_timeout = 0.2,
      l1 = { ttl = 30, stale_if_error = 60, local_ttl = 5 },
      on_event = function(ev) if ev.op == "breaker" then events[#events + 1] = ev.status end end,
    }
    assert.is_true(tracking_up(c))
  end)
  after_each(function()
    c:close()
    server.stop()
  end)

  it("opens after consecutive failures, fails fast, closes when Redis is back", function()
    server.stop()
    local errs = {}
    for i = 1, 6 do
      local _, err = c:get("nokey" .. i)
      errs[#errs + 1] = err
      posix.sleep(0.06)
    end
    assert.matches("^circuit open: ", errs[#errs])
    assert.equal("open", c:pool_stats().breaker)
    local created = c:pool_stats().created
    for _ = 1, 20 do assert.is_nil((c:get("x"))) end
    assert.equal(created, c:pool_stats().created) -- no connect attempted by callers
    restart()
    assert.is_true(eventually(5, function() return select(2, c:get("y")) == nil end))
    assert.equal("closed", c:pool_stats().breaker)
    assert.is_true(c:set("y", 1))
    assert.same({ "open", "closed" }, events)
  end)

  it("serves a stale copy while Redis is down, never after a failed write", function()
    assert(c:set("s", "kept"))
    assert.equal("kept", c:get("s"))
    server.stop()
    local v, err = c:get("s")
    assert.equal("kept", v, err)
    -- a write that fails drops the local copy: the caller was told it failed
    local ok, werr = c:set("s", "lost")
    assert.is_nil(ok)
    assert.is_string(werr)
    local v2, err2 = c:get("s")
    assert.is_nil(v2)
    assert.is_string(err2)
    restart()
  end)

  it("serves no copy while Redis is down without stale_if_error", function()
    local d = H.cache { port = server.port, timeout = 0.2, connect_timeout = 0.2, l1 = { ttl = 30 } }
    assert.is_true(tracking_up(d))
    assert(d:set("s0", "kept"))
    assert.equal("kept", d:get("s0"))
    server.stop()
    assert.is_true(eventually(5, function() return not l1stats(d).tracking end)) -- the thread saw it
    local v, err = d:get("s0")
    assert.is_nil(v)
    assert.is_string(err)
    d:close()
  end)

  it("get_or_set computes once and keeps it locally while Redis is down", function()
    server.stop()
    for i = 1, 4 do c:get("warm" .. i) end -- open the breaker
    local n = 0
    local function fn() n = n + 1; return "computed" end
    assert.equal("computed", (c:get_or_set("g", fn)))
    assert.equal("computed", (c:get_or_set("g", fn)))
    assert.equal(1, n)
    restart()
    assert.is_true(eventually(5, function() return select(2, c:get("zz")) == nil end))
    -- back: Redis has no such key, so the local copy goes, and Redis
    -- failing again does not bring it back
    assert.is_nil((c:get("g")))
    server.stop()
    assert.equal("computed", (c:get_or_set("g", fn)))
    assert.equal(2, n)
    restart()
    assert.is_true(eventually(5, function() return select(2, c:get("zz")) == nil end))
    -- and once Redis answers, get_or_set fills it there (never serves the local value)
    local v, err, status = c:get_or_set("g", fn)
    assert.equal("computed", v, err)
    assert.equal("miss", status)
    assert.equal(3, n)
  end)
end)
