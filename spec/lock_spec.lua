local H = require "helper"
local posix = H.posix

describe("locks", function()
  local c, admin
  before_each(function()
    c = H.cache { prefix = "lk" }
    admin = H.admin()
  end)

  it("acquire gives a random token, a fence and a TTL; release frees it", function()
    local l = assert(c:lock("a", { ttl = 5 }))
    assert.matches("^%x+$", l.token)
    assert.equal(32, #l.token)
    assert.equal(l.token, admin:command("GET", "lk:lock:{a}"))
    local pttl = admin:command("PTTL", "lk:lock:{a}")
    assert.is_true(pttl > 4000 and pttl <= 5000)
    assert.equal("integer", H.mtype(l.fence))
    assert.is_true(l:owned())
    local r = l:remaining()   -- seconds, like every other duration
    assert.is_true(r > 4.8 and r <= 5 - 0.052, tostring(r))   -- drift margin: 1% + 2 ms
    assert.same({ nil, "timeout" }, { c:lock("a", { wait = 0 }) })
    assert.is_true(l:release())
    assert.is_true(l:release())        -- idempotent
    assert.is_false(l:owned())
    assert.equal(0, l:remaining())
    assert.equal(0, admin:command("EXISTS", "lk:lock:{a}"))
    local l2 = assert(c:lock("a"))
    assert.is_true(l2.fence > l.fence)
    assert(l2:release())
  end)

  it("fences never go back, also when the fence key is lost; the fence key expires", function()
    local l1 = assert(c:lock("fl"))
    l1:release()
    admin:command("DEL", "lk:lock:{fl}:fence")   -- a restart without persistence, an eviction
    local l2 = assert(c:lock("fl"))
    l2:release()
    assert.is_true(l2.fence > l1.fence, l2.fence .. " after " .. l1.fence)
    local pttl = admin:command("PTTL", "lk:lock:{fl}:fence")
    assert.is_true(pttl > 0 and pttl <= 86400000)
  end)

  it("two lock tokens never repeat", function()
    local seen = {}
    for _ = 1, 200 do
      local l = assert(c:lock("tok"))
      assert.is_nil(seen[l.token])
      seen[l.token] = true
      l:release()
    end
  end)

  it("release by a non-owner and release after expiry fail with 'not owned'", function()
    local l = assert(c:lock("b", { ttl = 0.15 }))
    local thief = setmetatable({}, { __index = l })
    thief.token = "0123456789abcdef0123456789abcdef"
    thief.released = nil
    assert.same({ nil, "not owned" }, { l.release(thief) })
    assert.is_true(l:owned())
    posix.sleep(0.25)                               -- it expires
    local other = assert(c:lock("b", { ttl = 5 }))  -- and someone else takes it
    assert.same({ nil, "not owned" }, { l:release() })
    assert.is_true(other:owned())                   -- untouched by the late release
    assert.same({ nil, "not owned" }, { l:extend(10) })
    assert(other:release())
  end)

  it("mutual exclusion: 20 processes x 50 non-atomic increments = 1,000", function()
    admin:command("SET", "lk:counter", 0)
    admin:command("DEL", "lk:fences")
    local codes = H.fork_all(20, function()
      local cc = H.cache { prefix = "lk" }
      local a = H.cache()
      for _ = 1, 50 do
        assert(cc:with_lock("ctr", { ttl = 10, wait = 60 }, function(counter)
          local v = tonumber(a:command("GET", counter))   -- read
          posix.sleep(0.001)                               -- be slow
          a:command("SET", counter, v + 1)                 -- write
          -- while we hold the lock, the fence counter is our grant's fence
          a:command("RPUSH", "lk:fences", posix.getpid() .. " " .. a:command("GET", "lk:lock:{ctr}:fence"))
          return true
        end, "lk:counter") == true)
      end
    end)
    H.all_zero(codes)
    assert.equal("1000", admin:command("GET", "lk:counter"))
    -- fences strictly increase across processes, in the order of the grants
    local fences = admin:command("LRANGE", "lk:fences", 0, -1)
    assert.equal(1000, #fences)
    local prev = -1
    for _, f in ipairs(fences) do
      local fence = tonumber(f:match(" (%d+)$"))
      assert.is_true(fence > prev, "fence " .. fence .. " after " .. prev)
      prev = fence
    end
    admin:command("DEL", "lk:counter", "lk:fences")
  end)

  it("with_lock passes arguments and results, and releases on error", function()
    assert.same({ 5, "x" }, { c:with_lock("w", nil, function(a, b) return a + b, "x" end, 2, 3) })
    local ok, err = pcall(function() c:with_lock("w", nil, function() error("inside") end) end)
    assert.is_false(ok)
    assert.matches("inside", err)
    assert.equal(0, admin:command("EXISTS", "lk:lock:{w}"))
    local held = assert(c:lock("w"))
    assert.same({ nil, "timeout" }, { c:with_lock("w", { wait = 0.05 }, function() return 1 end) })
    held:release()
  end)

  it("extend keeps a lock past its ttl", function()
    local l = assert(c:lock("e", { ttl = 0.2 }))
    assert.is_true(l:extend(0.5))          -- adds to what is left
    local pttl = admin:command("PTTL", "lk:lock:{e}")
    assert.is_true(pttl > 500 and pttl <= 700, tostring(pttl))
    assert.is_true(l:extend(2, { replace = true }))
    pttl = admin:command("PTTL", "lk:lock:{e}")
    assert.is_true(pttl > 1900 and pttl <= 2000, tostring(pttl))
    posix.sleep(0.3)
    assert.is_true(l:owned())
    l:release()
  end)

  it("renew keeps a lock past its ttl while the holder lives", function()
    local l = assert(c:lock("r", { ttl = 0.3, renew = true }))
    posix.sleep(1)
    assert.is_true(l:owned())
    local n, lost = l:renewals()
    assert.is_true(n >= 2, "renewals: " .. n)
    assert.is_false(lost)
    assert.is_true(l:release())
    assert.equal(0, admin:command("EXISTS", "lk:lock:{r}"))
  end)

  it("a renewing holder that exits lets the lock expire", function()
    local pid = posix.fork()
    if pid == 0 then
      local cc = H.cache { prefix = "lk" }
      local l = cc:lock("gone", { ttl = 0.3, renew = true })
      posix.sleep(l and 0.6 or 0)
      -- renewed past its 0.3 s ttl while the holder lives
      local held = l and l:owned() and H.cache():command("PTTL", "lk:lock:{gone}") > 0
      posix._exit(held and 0 or 1)       -- exits holding the lock
    end
    assert.equal(0, posix.waitpid(pid))
    local gone = false
    for _ = 1, 100 do                     -- then it expires (within its ttl)
      if admin:command("EXISTS", "lk:lock:{gone}") == 0 then gone = true; break end
      posix.sleep(0.05)
    end
    assert.is_true(gone)
  end)

  it("garbage collection stops the watchdog", function()
    do local _ = c:lock("gc", { ttl = 0.2, renew = true }) end
    collectgarbage(); collectgarbage()
    posix.sleep(0.35)
    assert.equal(0, admin:command("EXISTS", "lk:lock:{gc}"))
  end)

  it("a waiter is woken by the release, not by polling", function()
    local holder = assert(c:lock("wk", { ttl = 10 }))
    local pid = posix.fork()
    if pid == 0 then
      posix.sleep(0.3)
      holder:release()
      posix._exit(0)
    end
    local t0 = posix.now()
    local l = assert(c:lock("wk", { ttl = 5, wait = 5 }))
    local waited = posix.now() - t0
    assert.equal(0, posix.waitpid(pid))
    assert.is_true(waited < 4, "waited for the TTL instead of the release: " .. waited)
    assert.is_true(l.commands <= 4, "commands issued by the waiter: " .. l.commands)
    l:release()
  end)

  it("lock keys live outside the data namespace", function()
    local l = assert(c:lock("ns"))
    c:set("data", 1)
    c:clear()
    c:delete_pattern("*")
    assert.is_true(l:owned())
    l:release()
  end)

  it("checks its arguments", function()
    assert.has_error(function() c:lock("") end)
    assert.has_error(function() c:lock("x", { ttl = 0 }) end)
    assert.has_error(function() c:lock("x", { ttl = math.huge }) end)
    assert.has_error(function() c:lock("x", { wait = -1 }) end)
    assert.has_error(function() c:lock("x", { tll = 1 }) end)
    assert.has_error(function() c:with_lock("x", nil, "nope") end)
  end)
end)
