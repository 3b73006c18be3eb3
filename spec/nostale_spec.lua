-- The no-stale mechanism, path by path, deterministically: the writer's
-- work is done inside a fill's fn, so the write lands while the fill is in
-- flight. Every write and invalidation path must revoke the fill (its
-- value is returned to its own caller but never stored), and wake the
-- waiters of the lease it revokes. The multi-process race is race_spec.
local H = require "helper"
local posix = H.posix

-- path, the write (done inside fn), what a get returns afterwards
local function paths(c)
  return {
    { "set", function(k) assert.is_true(c:set(k, "new")) end, "new" },
    { "set with tags", function(k) assert.is_true(c:set(k, "new", 60, { tags = { "t2" } })) end, "new" },
    { "set nx", function(k) assert.is_true(c:set(k, "new", nil, { nx = true })) end, "new" },
    { "set xx (nothing to replace)", function(k) assert.is_false(c:set(k, "new", nil, { xx = true })) end, nil },
    { "add", function(k) assert.is_true(c:add(k, "new")) end, "new" },
    { "set_many", function(k) assert.same({}, c:set_many({ [k] = "new" })) end, "new" },
    { "incr (no such key)", function(k) assert.same({ nil, "not found" }, { c:incr(k) }) end, nil },
    { "decr (no such key)", function(k) assert.same({ nil, "not found" }, { c:decr(k) }) end, nil },
    { "delete", function(k) assert.is_false(c:delete(k)) end, nil },
    { "delete_many", function(k) assert.equal(0, c:delete_many({ k })) end, nil },
    { "invalidate", function(k) assert.is_true(c:invalidate(k)) end, nil },
    { "delete_pattern", function(k) assert.equal(0, c:delete_pattern(k:sub(1, 3) .. "*")) end, nil },
    { "clear", function() assert.equal(0, c:clear()) end, nil },
    { "incr_version (no such key)", function(k) assert.same({ nil, "not found" }, { c:incr_version(k) }) end, nil },
    { "batch:commit", function(k) assert.equal(0, c:batch():invalidate(k):commit()) end, nil },
    { "on_write", function(k)
        assert.equal("done", c:on_write(function() return "done" end, { keys = function() return k end })())
      end, nil },
  }
end

describe("a fill that started before a write is not stored after it", function()
  local c
  before_each(function() c = H.cache { prefix = "ns" } end)
  after_each(function()
    c:clear()
    c:invalidate_tag { "t", "t2" }
  end)

  for _, kind in ipairs { "plain", "tagged", "enveloped" } do
    local opts = ({ plain = {}, tagged = { tags = { "t" } }, enveloped = { stale = 30 } })[kind]
    for i, p in ipairs(paths(H.cache { prefix = "ns" })) do
      it(p[1] .. " (" .. kind .. " fill)", function()
        local key = "key" .. i
        local write = paths(c)[i][2]
        local v, _, st = c:get_or_set(key, function()
          write(key)
          return "old"
        end, opts)
        assert.equal("old", v)           -- the filler still gets what it computed
        assert.equal("miss", st)
        assert.equal(p[3], c:get(key))   -- but it was not stored
      end)
    end
  end

  it("invalidate_tag during a tagged fill, also its first", function()
    local v = c:get_or_set("k", function()
      assert.is_true(c:invalidate_tag("t"))
      return "old"
    end, { tags = { "t" } })
    assert.equal("old", v)
    assert.is_nil(c:get("k"))
    assert.is_nil(c:get("k", nil, { tags = { "t" } }))
  end)

  it("memoize:invalidate, with and without tags", function()
    for _, tags in ipairs { false, { "t" } } do
      local f
      f = c:memoize(function(x)
        assert.is_true(f:invalidate(x))
        return "old"
      end, { name = tags and "mt" or "m", tags = tags or nil })
      assert.equal("old", f("a"))
      assert.is_nil(f:peek("a"))
    end
  end)

  it("a read that starts after the write sees the write, on every read path", function()
    c:get_or_set("r", function()
      c:set("r", "new", 60, { tags = { "t" } })
      return "old"
    end, { tags = { "t" } })
    assert.equal("new", c:get("r"))
    assert.equal("new", c:get("r", nil, { tags = { "t" } }))
    assert.same({ r = "new" }, c:get_many({ "r" }))
    assert.same({ r = "new" }, c:get_many({ "r" }, { tags = { "t" } }))
    assert.same({ "new", nil, "hit" }, { c:get_or_set("r", error, { tags = { "t" } }) })
  end)
end)

describe("waiters are woken by every path that revokes a lease", function()
  local admin
  local wakeups = {}
  setup(function() admin = H.admin() end)
  teardown(function()
    io.write("\nwaiter woken after the write (lease_ttl 60 s, filler still running):\n")
    for _, w in ipairs(wakeups) do io.write(("  %-16s %6.1f ms, then %s\n"):format(w[1], w[2] * 1000, w[3])) end
  end)

  local writes = {
    { "set", function(c, k) return c:set(k, "new") end },
    { "add", function(c, k) return c:add(k, "new") end },
    { "set_many", function(c, k) return c:set_many({ [k] = "new" }) end },
    { "incr", function(c, k) return c:incr(k) end },
    { "delete", function(c, k) return c:delete(k) end },
    { "invalidate", function(c, k) return c:invalidate(k) end },
    { "incr_version", function(c, k) return c:incr_version(k) end },
    { "batch:commit", function(c, k) return c:batch():invalidate(k):commit() end },
    { "delete_pattern", function(c, k) return c:delete_pattern(k) end },
    { "clear", function(c) return c:clear() end },
  }
  for i, w in ipairs(writes) do
    it(w[1], function()
      local c = H.cache { prefix = "nsw" }
      local key = "w" .. i
      admin:command("DEL", "nsw:result", "nsw:started")
      -- a filler that takes 30 s under a 60 s lease
      local filler = posix.fork()
      if filler == 0 then
        H.cache { prefix = "nsw" }:get_or_set(key, function()
          H.cache():command("RPUSH", "nsw:started", "1")
          posix.sleep(30)
          return "slow"
        end, { lease_ttl = 60 })
        posix._exit(0)
      end
      assert.is_table(admin:command("BLPOP", "nsw:started", 5), "the filler did not start")
      -- a waiter: at most 10 s, then "timeout"
      local waiter = posix.fork()
      if waiter == 0 then
        local v, st = H.cache { prefix = "nsw" }:get_or_set(key, function() return "fresh" end,
          { lease_ttl = 60, wait = 10, on_wait_timeout = "error" })
        H.cache():command("RPUSH", "nsw:result", tostring(v) .. " " .. tostring(st) .. " " .. posix.now())
        posix._exit(0)
      end
      posix.sleep(0.3)                    -- the waiter blocks on the lease
      local t0 = posix.now()
      w[2](c, key)
      posix.waitpid(waiter)
      posix.kill(filler, 9)
      posix.waitpid(filler)
      local r = admin:command("BLPOP", "nsw:result", 1)
      local v, st, t1 = r[2]:match("^(%S+) (%S+) (%S+)$")
      assert.are_not.equal("timeout", st, "the waiter slept out its wait")
      -- woken, not back by itself after its 10 s wait (a woken waiter takes milliseconds)
      assert.is_true(tonumber(t1) - t0 < 5, "the waiter was not woken: " .. (tonumber(t1) - t0) .. " s")
      assert.is_truthy(v == "new" or v == "fresh", v)
      wakeups[#wakeups + 1] = { w[1], tonumber(t1) - t0, st .. " " .. v }
      c:clear()
    end)
  end
end)

describe("a fill longer than lease_ttl", function()
  it("is kept alive by the keeper: computed once, stored, waiters get it", function()
    local c = H.cache { prefix = "nsl" }
    local admin = H.admin()
    admin:command("DEL", "nsl:runs", "nsl:out")
    local codes = H.fork_all(3, function(i)
      local cc = H.cache { prefix = "nsl" }
      if i > 1 then posix.sleep(0.2) end  -- the first one fills
      local v, _, st = cc:get_or_set("long", function()
        H.cache():command("INCR", "nsl:runs")
        posix.sleep(1.2)                  -- four times the lease
        return "computed"
      end, { lease_ttl = 0.3, wait = 5 })
      H.cache():command("RPUSH", "nsl:out", st .. " " .. tostring(v))
    end)
    H.all_zero(codes)
    assert.equal("1", admin:command("GET", "nsl:runs"))
    local out = admin:command("LRANGE", "nsl:out", 0, -1)
    table.sort(out)
    assert.same({ "miss computed", "waited computed", "waited computed" }, out)
    assert.equal("computed", c:get("long"))
    admin:command("DEL", "nsl:runs", "nsl:out")
    c:clear()
  end)

  it("a lock with renew = true and a lease share the keeper: both extended", function()
    local c = H.cache { prefix = "nsl" }
    local l = assert(c:lock("kept", { ttl = 0.3, renew = true }))
    local v = c:get_or_set("k2", function()
      posix.sleep(0.7)
      return H.cache():command("PTTL", c:_names("k2").lease)
    end, { lease_ttl = 0.3 })
    assert.is_true(v > 0, "the lease was still alive after twice its ttl")
    assert.is_true(l:owned())
    assert.is_true(l:renewals() >= 2)
    l:release()
    c:clear()
  end)
end)
