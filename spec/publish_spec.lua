-- stats_publish (lua/hicache/publish.lua, the trigger in hc_client.c): a
-- cache's counters published as the hash <prefix>:stats:<host>:<pid>:<id>
-- (docs/FORMAT.md). Checked: the fields against cache:stats(), the TTL,
-- real processes with their own hit rates, the interval (by counts:
-- one publish for many operations), failures that never reach the
-- operation (a user without HSET, a stopped server, an on_event that
-- raises), the option errors, and the key deleted on close (but not by a
-- forked child's close).
local H = require "helper"
local hicache = H.hicache
local core = require "hicache.core"
local posix = H.posix

local n = 0
local function fresh_prefix()
  n = n + 1
  return ("pub%d-%d-%d"):format(posix.getpid(), n, math.random(1e6))
end

-- The published hashes under prefix: { [key] = {field = value} }, and their number.
local function published(prefix)
  local admin = H.admin()
  local keys = assert(admin:command("KEYS", prefix .. ":stats:*"))
  local out = {}
  for _, k in ipairs(keys) do
    local flat = assert(admin:command("HGETALL", k))
    local h = {}
    for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
    out[k] = h
  end
  return out, #keys
end

local function only(prefix)
  local all, count = published(prefix)
  assert.equal(1, count)
  for k, h in pairs(all) do return h, k end
end

local function hostname()
  return (assert(H.shell("hostname")):gsub("%s+$", ""))
end

describe("stats_publish", function()
  it("writes every integer counter of stats() with the contract's fields, and a TTL of 3 x interval", function()
    local prefix = fresh_prefix()
    local c = H.cache { prefix = prefix, stats_publish = { interval = 7 } }
    c:set("user:1", { name = "a" })
    c:get("user:1")
    c:get("user:2")
    c:get("page:1")
    c:get_or_set("page:2", function() return 2 end)
    c:get("nofamily")
    local before = core.time_ms()
    assert.is_true(c:stats_publish())
    local after = core.time_ms()
    local st = c:stats() -- includes the publish just made (it is recorded after its write)
    local h, key = only(prefix)
    assert.equal(("%s:stats:%s:%d:"):format(prefix, hostname(), posix.getpid()), key:sub(1, #key - 8))
    assert.matches("^%x%x%x%x%x%x%x%x$", key:sub(-8))
    assert.equal(hostname(), h.host)
    assert.equal(tostring(posix.getpid()), h.pid)
    assert.equal(prefix, h.prefix)
    assert.equal("7", h.interval)
    assert.equal(hicache._VERSION, h.hicache)
    local updated = assert(tonumber(h.updated))
    assert.is_true(updated >= before and updated <= after, "updated is the publish's Unix ms")
    assert.is_true(tonumber(h.started) <= math.floor(after / 1000) and tonumber(h.started) > 1.6e9)
    -- every integer counter, in total and per family; hit_rate is not published
    local checked = 0
    local function same(pre, c0)
      for k, v in pairs(c0) do
        if type(v) == "number" and k ~= "hit_rate" then
          assert.equal(("%d"):format(v), h[pre .. k], pre .. k)
          checked = checked + 1
        end
      end
      assert.is_nil(h[pre .. "hit_rate"])
    end
    same("total.", st)
    for fam, c0 in pairs(st.families) do same("family." .. fam .. ".", c0) end
    assert.is_true(checked >= 3 * 12, "totals and two families, each with all counters")
    assert.equal("1", h["family.user.hits"])
    assert.equal("1", h["family.user.misses"])
    assert.equal("2", h["family.page.misses"])
    assert.equal("1", h["family.page.computes"])
    -- the ops the table has (publish's own op is recorded after the write)
    for op, o in pairs(st.ops) do
      if op ~= "publish" then
        assert.equal(("%d"):format(o.count), h["op." .. op .. ".count"], op)
        assert.matches("^%d+$", h["op." .. op .. ".sum_us"])
      end
    end
    assert.equal("4", h["op.get.count"])
    -- nothing but these fields
    for field in pairs(h) do
      assert.is_truthy(field:match("^total%.[%w_]+$") or field:match("^family%.[%w_]+%.[%w_]+$")
        or field:match("^op%.[%w_]+%.[%a_]+$") or ({ host = 1, pid = 1, started = 1, updated = 1, interval = 1,
          hicache = 1, prefix = 1 })[field], field)
    end
    local pttl = H.admin():command("PTTL", key)
    assert.is_true(pttl > 0 and pttl <= 21000, "PEXPIRE 3 x interval")
    c:close()
  end)

  it("three processes publish one hash each, with their own hit rates per family", function()
    local prefix = fresh_prefix()
    local pids = {}
    for i = 1, 3 do
      local out, code = H.lua(([[
        local hicache = require "hicache"
        local c = assert(hicache.new { host = %q, port = %d, prefix = %q, stats_publish = { interval = 3600 } })
        c:set("user:1", 1)
        for _ = 1, %d do assert(c:get("user:1") == 1) end   -- hits
        for j = 1, %d do assert(c:get("user:no" .. j) == nil) end -- misses
        for j = 1, %d do c:get("page:" .. j) end             -- misses
        assert(c:stats_publish())
        io.write(require("hctest").getpid())
      ]]):format(H.host, H.port, prefix, i * 10, 10 - i, i * 3))
      assert.equal(0, code, out)
      pids[i] = assert(tonumber(out), out)
    end
    local all, count = published(prefix)
    assert.equal(3, count)
    local seen = {}
    for key, h in pairs(all) do
      local i
      for j, pid in ipairs(pids) do
        if tostring(pid) == h.pid then i = j end
      end
      assert.is_not_nil(i, "a hash of one of the processes: " .. key)
      assert.is_nil(seen[i])
      seen[i] = true
      assert.truthy(key:find(":" .. pids[i] .. ":", 1, true))
      assert.equal(tostring(i * 10), h["family.user.hits"])
      assert.equal(tostring(10 - i), h["family.user.misses"])
      assert.equal("0", h["family.page.hits"])
      assert.equal(tostring(i * 3), h["family.page.misses"])
      assert.equal(tostring(i * 10), h["total.hits"])
      assert.equal(tostring(10 - i + i * 3), h["total.misses"])
      assert.equal("1", h["total.sets"])
      local pttl = H.admin():command("PTTL", key)
      assert.is_true(pttl > 3 * 3600 * 1000 - 60000 and pttl <= 3 * 3600 * 1000)
    end
  end)

  it("two caches of one process do not overwrite each other", function()
    local prefix = fresh_prefix()
    local a = H.cache { prefix = prefix, stats_publish = true }
    local b = H.cache { prefix = prefix, stats_publish = true }
    a:get("x:1")
    b:set("y:1", 1)
    b:get("y:1")
    assert.is_true(a:stats_publish())
    assert.is_true(b:stats_publish())
    local all, count = published(prefix)
    assert.equal(2, count)
    local ids = {}
    for key, h in pairs(all) do
      ids[#ids + 1] = key:sub(-8)
      assert.equal("10", h.interval) -- stats_publish = true: every 10 s
      if h["family.x.misses"] then
        assert.equal("1", h["total.misses"])
        assert.is_nil(h["family.y.hits"])
      else
        assert.equal("1", h["family.y.hits"])
        assert.equal("0", h["total.misses"])
      end
    end
    assert.are_not.equal(ids[1], ids[2])
    a:close()
    b:close()
  end)

  it("publishes at the first operation, then not again before the interval has passed (counted)", function()
    local prefix = fresh_prefix()
    local c = H.cache { prefix = prefix, stats_publish = { interval = 3600 } }
    assert.same({}, (published(prefix)))
    c:get("user:1")
    local h = only(prefix)
    assert.equal("1", h["op.get.count"]) -- written right after the first operation
    for _ = 1, 300 do c:get("user:1") end
    c:set("user:1", 1)
    h = only(prefix)
    assert.equal("1", h["op.get.count"]) -- not rewritten by the 301 operations since
    assert.equal(1, c:stats().ops.publish.count)
    assert.is_true(c:stats_publish()) -- the explicit call publishes at once
    h = only(prefix)
    assert.equal("301", h["op.get.count"])
    assert.equal("1", h["op.set.count"])
    assert.equal(2, c:stats().ops.publish.count)
    c:close()
  end)

  it("publishes again once the interval has passed: never more often than elapsed / interval + 1", function()
    local prefix = fresh_prefix()
    local c = H.cache { prefix = prefix, stats_publish = { interval = 1 } }
    local t0 = hicache.now()
    local count = 0
    repeat
      c:get("user:1")
      posix.sleep(0.005)
      count = c:stats().ops.publish.count
    until count >= 3 or hicache.now() - t0 > 60
    local elapsed = hicache.now() - t0
    assert.equal(3, count) -- a publish once per interval while operations go on
    assert.is_true(count <= math.floor(elapsed / 1) + 1, "at most one publish per interval")
    local h = only(prefix)
    assert.equal(tostring(c:stats().ops.get.count), h["op.get.count"]) -- written by the last get
    c:close()
  end)

  describe("failures never reach the operation", function()
    it("a user without HSET: operations succeed, publishes count as errors of op 'publish' and go to on_event",
      function()
      local prefix = fresh_prefix()
      local user = "nohset" .. posix.getpid()
      local admin = H.admin()
      assert.equal("OK", admin:command("ACL", "SETUSER", user, "reset", "on", ">pw-" .. user, "~*", "&*", "+@all",
        "-hset"))
      finally(function() admin:command("ACL", "DELUSER", user) end)
      local events = {}
      local c = H.cache { prefix = prefix, username = user, password = "pw-" .. user,
        stats_publish = { interval = 3600 },
        on_event = function(ev) if ev.op == "publish" then events[#events + 1] = ev end end }
      assert.is_true(c:set("user:1", 42))
      assert.equal(42, c:get("user:1"))
      local st = c:stats()
      assert.equal(1, st.ops.publish.count)
      assert.equal(1, st.errors) -- the publish's, counted in the totals
      assert.equal(1, #events)
      assert.equal("error", events[1].status)
      assert.matches("NOPERM", events[1].err)
      local ok, err = c:stats_publish()
      assert.is_nil(ok)
      assert.matches("NOPERM", err)
      assert.equal(2, #events)
      assert.equal(2, c:stats().errors) -- the two publishes; the set and the get succeeded
      assert.same({}, (published(prefix)))
      c:close()
    end)

    it("a stopped server: the operation returns its own error, the publish counts as failed", function()
      local server = H.start_redis()
      finally(function() server.stop() end)
      local prefix = fresh_prefix()
      local events = {}
      local c = H.cache { port = server.port, prefix = prefix, stats_publish = { interval = 3600 },
        breaker = false, on_event = function(ev) events[#events + 1] = ev.op .. ":" .. ev.status end }
      server.stop()
      local v, err = c:get("user:1")
      assert.is_nil(v)
      assert.is_string(err)
      assert.same({ "get:error", "publish:error" }, events)
      local st = c:stats()
      assert.equal(1, st.ops.publish.count)
      assert.equal(2, st.errors)
      local ok, perr = c:stats_publish()
      assert.is_nil(ok)
      assert.is_string(perr)
      c:close()
    end)

    it("an on_event that raises for the publish: the operation still returns its value", function()
      local prefix = fresh_prefix()
      local c = H.cache { prefix = prefix, stats_publish = { interval = 3600 },
        on_event = function(ev) if ev.op == "publish" then error("boom from on_event") end end }
      assert.is_true(c:set("user:1", 5))
      assert.equal(5, c:get("user:1"))
      assert.equal(1, c:stats().ops.publish.count)
      assert.equal(1, select(2, published(prefix)))
      c:close()
    end)
  end)

  describe("the option", function()
    local function refused(opts, msg)
      local ok, err = pcall(function() local c = hicache.new(opts); return c end)
      assert.is_false(ok)
      assert.matches("^spec/publish_spec.lua:%d+: ", err) -- at the caller's line
      assert.equal(msg, (tostring(err):gsub("^[^:]*:%d+: ", "")))
    end
    local function tcp(o)
      o.host, o.port = H.host, H.port
      return o
    end

    it("is validated with option errors at the caller's line", function()
      refused(tcp { stats_publish = "yes" },
        "invalid option 'stats_publish': must be a table {interval = seconds} or a boolean")
      refused(tcp { stats_publish = { interval = 0.5 } }, "invalid option 'stats_publish.interval': must be >= 1")
      refused(tcp { stats_publish = { interval = 3601 } },
        "invalid option 'stats_publish.interval': must be finite and at most 3600")
      refused(tcp { stats_publish = { interval = "10" } },
        "invalid option 'stats_publish.interval': must be a number of seconds")
      refused(tcp { stats_publish = { every = 10 } }, "unknown option 'stats_publish.every'")
      refused(tcp { stats_publish = 10 },
        "invalid option 'stats_publish': must be a table {interval = seconds} or a boolean")
    end)

    it("is refused with stats = false and with the memory backend", function()
      refused(tcp { stats = false, stats_publish = true },
        "invalid option 'stats_publish': publishes cache:stats(): it cannot be used with stats = false")
      refused({ backend = "memory", stats_publish = true },
        'invalid option \'stats_publish\': cannot be used with backend = "memory" (no other process could read it)')
    end)

    it("is off by default and with false: no key, stats_publish() says so", function()
      local prefix = fresh_prefix()
      for _, opt in ipairs { false, nil } do
        local c = H.cache { prefix = prefix, stats_publish = opt }
        c:get("user:1")
        assert.same({ nil, "stats_publish is off" }, { c:stats_publish() })
        assert.is_nil(c:stats().ops.publish)
        c:close()
      end
      assert.same({}, (published(prefix)))
    end)
  end)

  it("close() deletes the key; a forked child's close does not delete its parent's", function()
    local prefix = fresh_prefix()
    local c = H.cache { prefix = prefix, stats_publish = { interval = 3600 } }
    c:get("user:1")
    local _, key = only(prefix)
    for _, publishes in ipairs { false, true } do
      local pid = posix.fork()
      if pid == 0 then
        local ok = pcall(function()
          if publishes then
            assert(c:stats_publish()) -- the child's own hash (its pid)
            assert(select(2, published(prefix)) == 2)
          end
          c:close() -- deletes the child's hash if any, never the parent's
        end)
        posix._exit(ok and 0 or 1)
      end
      assert.equal(0, posix.waitpid(pid))
    end
    local _, left = only(prefix)
    assert.equal(key, left)
    assert.is_true(c:close())
    assert.same({}, (published(prefix)))
    -- a cache that never published deletes nothing (and needs no server)
    local d = H.cache { port = 1, prefix = prefix, stats_publish = true }
    assert.is_true(d:close())
  end)

  it("works over TLS", function()
    local prefix = fresh_prefix()
    local c = H.cache { url = "rediss://127.0.0.1:" .. H.tls_port .. "/0", tls = { ca_file = H.tls_dir .. "/ca.crt" },
      prefix = prefix, stats_publish = true }
    c:set("user:1", 1)
    assert.equal(1, c:get("user:1"))
    assert.is_true(c:stats_publish())
    local h = only(prefix)
    assert.equal("1", h["family.user.hits"])
    c:close()
    assert.same({}, (published(prefix)))
  end)
end)
