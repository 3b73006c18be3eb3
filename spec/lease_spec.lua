local H = require "helper"
local posix = H.posix

local function sleep(s) posix.sleep(s) end

describe("get_or_set", function()
  local c, admin
  before_each(function()
    c = H.cache { prefix = "gos" }
    admin = H.admin()
  end)
  after_each(function() c:clear() end)

  it("hit path: the stored value with status hit; a miss computes once", function()
    local runs = 0
    local v, _, st = c:get_or_set("k", function() runs = runs + 1; return { n = 1 } end)
    assert.same({ n = 1 }, v)
    assert.equal("miss", st)
    v, _, st = c:get_or_set("k", function() runs = runs + 1; return { n = 2 } end)
    assert.same({ n = 1 }, v)
    assert.equal("hit", st)
    assert.equal(1, runs)
    assert.same({ n = 1 }, c:get("k"))   -- plain entries stay django-redis compatible
  end)

  it("50 processes on one cold key compute exactly once and all get the value", function()
    admin:command("DEL", "gos:runs", "gos:results")
    local codes = H.fork_all(50, function()
      local cc = H.cache { prefix = "gos" }
      local v, err, st = cc:get_or_set("cold", function()
        admin:command("INCR", "gos:runs")
        sleep(0.2)
        return "value-" .. posix.getpid()
      end, { ttl = 60 })
      assert(v, err)
      H.admin():command("RPUSH", "gos:results", st .. " " .. v)
    end)
    H.all_zero(codes)
    assert.equal("1", admin:command("GET", "gos:runs"))
    local results = admin:command("LRANGE", "gos:results", 0, -1)
    assert.equal(50, #results)
    local value, statuses = nil, {}
    for _, r in ipairs(results) do
      local st, v = r:match("^(%S+) (.*)$")
      value = value or v
      assert.equal(value, v)
      statuses[st] = (statuses[st] or 0) + 1
    end
    assert.equal(1, statuses.miss)
    assert.equal(49, (statuses.waited or 0) + (statuses.hit or 0))
    admin:command("DEL", "gos:runs", "gos:results")
  end)

  it("an invalidation race never leaves an older version cached (1,000 rounds)", function()
    admin:command("SET", "gosdb:ver", 0)
    admin:command("SET", "gosdb:floor", 0)
    admin:command("DEL", "gosdb:violations", "gosdb:reads")
    admin:command("SET", "gosdb:done", 0)
    local rounds = H.valgrind and 200 or 1000
    local writers, readers = 2, 4
    local codes = H.fork_all(writers + readers, function(i)
      local cc = H.cache { prefix = "gos" }
      local a = H.cache()
      math.randomseed(posix.getpid())
      if i <= writers then
        -- always count this writer as done, so readers stop even if it fails
        local ok, err = pcall(function()
        for _ = 1, math.floor(rounds / writers) do
          local ver = a:command("INCR", "gosdb:ver")          -- the write
          assert(cc:invalidate("rec"))                        -- then invalidate
          -- from now on no read may return less than ver
          a:command("EVAL", "if tonumber(redis.call('GET', KEYS[1])) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end",
            1, "gosdb:floor", ver)
          if math.random() < 0.5 then sleep(math.random() * 0.002) end
        end
        end)
        a:command("INCR", "gosdb:done")
        assert(ok, err)
      else
        while tonumber(a:command("GET", "gosdb:done")) < writers do
          local floor = tonumber(a:command("GET", "gosdb:floor"))
          local v, err = cc:get_or_set("rec", function()
            local ver = tonumber(a:command("GET", "gosdb:ver"))  -- read the "database"
            sleep(math.random() * 0.003)                          -- then be slow
            return ver
          end, { ttl = 60, lease_ttl = 5 })
          assert(v, "get_or_set failed: " .. tostring(err))
          a:command("INCR", "gosdb:reads")
          if v < floor then a:command("RPUSH", "gosdb:violations", v .. "<" .. floor) end
        end
      end
    end)
    H.all_zero(codes)
    assert.equal(tostring(rounds), admin:command("GET", "gosdb:ver"))
    assert.is_true(tonumber(admin:command("GET", "gosdb:reads")) > 0)
    assert.same({}, admin:command("LRANGE", "gosdb:violations", 0, -1))
    -- and the last cached value (if any) is the last version
    local last = c:get("rec")
    assert.is_true(last == nil or last == rounds, tostring(last))
    admin:command("DEL", "gosdb:ver", "gosdb:floor", "gosdb:done", "gosdb:violations", "gosdb:reads")
  end)

  it("a fill that started before an invalidation is not stored after it", function()
    local v, _, st = c:get_or_set("slow", function()
      c:invalidate("slow")              -- an invalidation lands mid-computation
      return "old"
    end)
    assert.equal("old", v)              -- the filler still gets its value
    assert.equal("miss", st)
    assert.is_nil(c:get("slow"))        -- but it is not stored
  end)

  it("fn raising: nothing cached, lease released, the next caller computes at once", function()
    local ok, err = pcall(function()
      local v = c:get_or_set("err", function() error("db down") end)
      return v
    end)
    assert.is_false(ok)
    assert.matches("db down", err)
    assert.is_nil(c:get("err"))
    assert.equal(0, admin:command("EXISTS", "{gos:1:err}:lease"))
    local t0 = posix.now()
    local v, _, st = c:get_or_set("err", function() return "fine" end)
    assert.equal("fine", v)
    assert.equal("miss", st)
    assert.is_true(posix.now() - t0 < 1, "the next caller did not wait for a lease")
  end)

  it("fn returning a value that cannot be cached: raises, and the lease is released", function()
    local ok, err = pcall(c.get_or_set, c, "enc", function() return { f = print } end)
    assert.is_false(ok)
    assert.matches("cannot cache a function", err)
    assert.equal(0, admin:command("EXISTS", c:_names("enc").lease))
    assert.same({ "fine", nil, "miss" }, { c:get_or_set("enc", function() return "fine" end, { wait = 0.5, on_wait_timeout = "error" }) })
  end)

  it("a filler killed with SIGKILL: a waiter computes after the lease TTL", function()
    local pid = posix.fork()
    if pid == 0 then
      local cc = H.cache { prefix = "gos" }
      cc:get_or_set("dead", function() sleep(30); return "never" end, { lease_ttl = 1 })
      posix._exit(0)
    end
    for _ = 1, 200 do
      if admin:command("EXISTS", "{gos:1:dead}:lease") == 1 then break end
      sleep(0.01)
    end
    assert.equal(1, admin:command("EXISTS", "{gos:1:dead}:lease"))
    posix.kill(pid, 9)
    posix.waitpid(pid)
    local v, _, st = c:get_or_set("dead", function() return "rescued" end, { lease_ttl = 1 })
    assert.equal("rescued", v)
    assert.equal("miss", st)
    assert.equal("rescued", c:get("dead"))
  end)

  it("caches nil only with neg_ttl", function()
    local runs = 0
    local function fn() runs = runs + 1; return nil end
    assert.same({ nil, nil, "miss" }, { c:get_or_set("nil", fn) })
    assert.same({ nil, nil, "miss" }, { c:get_or_set("nil", fn) })
    assert.equal(2, runs)
    assert.same({ nil, nil, "miss" }, { c:get_or_set("neg", fn, { neg_ttl = 30 }) })
    assert.same({ nil, nil, "hit" }, { c:get_or_set("neg", fn, { neg_ttl = 30 }) })
    assert.equal(3, runs)
    local t = c:ttl("neg")
    assert.is_true(t > 29 and t <= 30)
  end)

  it("fn may return a ttl", function()
    c:get_or_set("fttl", function() return "v", 42 end)
    local t = c:ttl("fttl")
    assert.is_true(t > 41 and t <= 42)
  end)

  it("stale-while-revalidate: exactly one recompute while the others get stale", function()
    c:get_or_set("swr", function() return "v1" end, { ttl = 0.2, stale = 30 })
    sleep(0.3)
    admin:command("DEL", "gos:swr:runs", "gos:swr:results")
    local codes = H.fork_all(10, function()
      local cc = H.cache { prefix = "gos" }
      local v, _, st = cc:get_or_set("swr", function()
        H.admin():command("INCR", "gos:swr:runs")
        sleep(0.3)
        return "v2"
      end, { ttl = 0.2, stale = 30 })
      H.admin():command("RPUSH", "gos:swr:results", st .. " " .. tostring(v))
    end)
    H.all_zero(codes)
    assert.equal("1", admin:command("GET", "gos:swr:runs"))
    local counts = {}
    for _, r in ipairs(admin:command("LRANGE", "gos:swr:results", 0, -1)) do counts[r] = (counts[r] or 0) + 1 end
    assert.same({ ["miss v2"] = 1, ["stale v1"] = 9 }, counts)
    assert.equal("v2", c:get("swr"))
    admin:command("DEL", "gos:swr:runs", "gos:swr:results")
  end)

  it("stale_if_error serves the stale value and reports the error", function()
    c:get_or_set("sie", function() return "good" end, { ttl = 0.1, stale_if_error = 30 })
    sleep(0.2)
    local events = {}
    local sc = H.cache { prefix = "gos", on_event = function(ev) events[#events + 1] = ev end }
    local v, err, st = sc:get_or_set("sie", function() error("backend 500") end, { ttl = 0.1, stale_if_error = 30 })
    assert.equal("good", v)
    assert.equal("stale_error", st)
    assert.is_nil(err)                       -- a value is served: no error
    assert.matches("backend 500", events[#events].err) -- the error is reported
    -- without a stale value the error is raised
    assert.has_error(function() c:get_or_set("sie2", function() error("x") end, { stale_if_error = 30 }) end)
  end)

  it("XFetch recomputes before expiry under a steady request loop", function()
    local computed_at = {}
    local function fn()
      computed_at[#computed_at + 1] = posix.now()
      sleep(0.1)                       -- delta = 100 ms
      return #computed_at
    end
    local t0 = posix.now()
    c:get_or_set("xf", fn, { ttl = 1, early = 2 })
    local soft_expiry = t0 + 1
    local early = false
    while posix.now() < soft_expiry - 0.02 do
      local _, _, st = c:get_or_set("xf", fn, { ttl = 1, early = 2 })
      if st == "miss" then early = true; break end
      sleep(0.01)
    end
    assert.is_true(early, "no early recomputation before the soft expiry")
    assert.is_true(computed_at[2] < soft_expiry)
  end)

  it("wait with on_wait_timeout = error / compute", function()
    admin:command("SET", "{gos:1:busy}:lease", "someone", "PX", 5000)
    local t0 = posix.now()
    assert.same({ nil, "timeout" }, { c:get_or_set("busy", function() return 1 end, { wait = 0.2, on_wait_timeout = "error" }) })
    assert.is_true(posix.now() - t0 >= 0.18)
    assert.same({ 7, nil, "miss" }, { c:get_or_set("busy", function() return 7 end, { wait = 0.1 }) })
    assert.is_nil(c:get("busy"))    -- computed without the lease: not stored
    admin:command("DEL", "{gos:1:busy}:lease")
  end)

  it("checks its arguments", function()
    assert.has_error(function() c:get_or_set("k", "not a function") end)
    assert.has_error(function() c:get_or_set("k", print, { ttl = -1 }) end)
    assert.has_error(function() c:get_or_set("k", print, { on_wait_timeout = "later" }) end)
    assert.has_error(function() c:get_or_set("k", print, { lease_tll = 1 }) end)
  end)
end)
