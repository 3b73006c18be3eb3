local H = require "helper"
local posix = H.posix

describe("the pool", function()
  it("never exceeds its size: 50 coroutines each reserve a connection", function()
    local c = H.cache { pool = { size = 5, wait = 0.05 } }
    local got, refused, max_in_use = {}, {}, 0
    local cos = {}
    for i = 1, 50 do
      cos[i] = coroutine.create(function()
        local conn, err = c:reserve()
        if not conn then refused[#refused + 1] = err; return end
        got[#got + 1] = conn
        max_in_use = math.max(max_in_use, c:pool_stats().in_use)
        coroutine.yield()
        assert.equal("PONG", conn:command("PING"))
        conn:release()
      end)
    end
    local t0 = posix.now()
    for i = 1, 50 do assert(coroutine.resume(cos[i])) end
    local waited = posix.now() - t0
    assert.equal(5, #got)
    assert.equal(45, #refused)
    for _, err in ipairs(refused) do assert.equal("pool exhausted", err) end
    assert.equal(5, max_in_use)
    local st = c:pool_stats()
    assert.equal(5, st.in_use)
    assert.equal(5, st.created)
    assert.equal(45, st.exhausted)
    assert.equal(45, st.waits)
    assert.is_true(waited >= 45 * 0.05 * 0.9, "refusals came before pool.wait: " .. waited)
    for i = 1, 50 do
      if coroutine.status(cos[i]) == "suspended" then assert(coroutine.resume(cos[i])) end
    end
    st = c:pool_stats()
    assert.equal(0, st.in_use)
    assert.equal(5, st.idle)
    assert.equal(5, st.created)
  end)

  it("refuses at once with pool.wait = 0", function()
    local c = H.cache { pool = { size = 1, wait = 0 } }
    local held = assert(c:reserve())
    assert.same({ nil, "pool exhausted" }, { c:command("PING") })
    held:release()
    assert.equal("PONG", c:command("PING"))
  end)

  it("is shared by caches with identical settings, not by different ones", function()
    local opts = function() return { host = H.host, port = H.port, timeout = 0.777, pool = { size = 3 } } end
    local caches = {}
    for i = 1, 20 do caches[i] = assert(H.hicache.new(opts())) end
    for i = 1, 20 do assert.equal("PONG", caches[i]:command("PING")) end
    local st = caches[1]:pool_stats()
    assert.equal(20, st.caches)
    assert.equal(1, st.created)
    local other = opts()
    other.timeout = 0.778
    local d = assert(H.hicache.new(other))
    assert.equal("PONG", d:command("PING"))
    assert.equal(1, d:pool_stats().caches)
    assert.equal(1, d:pool_stats().created)
    assert.equal(20, caches[20]:pool_stats().caches)
    caches[20]:close()
    assert.equal(19, caches[1]:pool_stats().caches)
    assert.same({ nil, "closed" }, { caches[20]:command("PING") })
  end)

  it("replaces a connection broken by CLIENT KILL transparently", function()
    local c = H.cache { pool = { size = 1 } }
    local id = H.client_id(c)
    assert.equal(1, H.admin():command("CLIENT", "KILL", "ID", id))
    assert.equal("PONG", c:command("PING"))
    local id2 = H.client_id(c)
    assert.are_not.equal(id, id2)
    local st = c:pool_stats()
    assert.equal(2, st.created)
    assert.equal(1, st.closed)
  end)

  it("pings a connection idle longer than pool.idle_check", function()
    local c = H.cache { pool = { idle_check = 0.1 } }
    c:command("PING")
    c:command("PING")
    assert.equal(0, c:pool_stats().health_checks)
    posix.sleep(0.15)
    c:command("PING")
    assert.equal(1, c:pool_stats().health_checks)
  end)

  it("closes connections older than pool.lifetime", function()
    local c = H.cache { pool = { lifetime = 0.2 } }
    local id = H.client_id(c)
    assert.equal(id, H.client_id(c))
    posix.sleep(0.25)
    assert.are_not.equal(id, H.client_id(c))
    assert.equal(1, c:pool_stats().closed)
  end)

  it("runs AUTH and SELECT once per connection, not per use", function()
    local c = H.cache { db = 2 }
    c:command("PING")
    local before = H.admin():command("INFO", "commandstats")
    for _ = 1, 10 do c:command("PING") end
    local after = H.admin():command("INFO", "commandstats")
    local sel = function(s) return tonumber(s:match("cmdstat_select:calls=(%d+)")) end
    assert.equal(sel(before), sel(after))
  end)
end)

describe("cache:reserve", function()
  it("pins one connection for MULTI/EXEC", function()
    local c = H.cache()
    local conn = assert(c:reserve())
    assert.matches("^hicache.conn", tostring(conn))
    assert.equal("OK", conn:command("MULTI"))
    assert.equal("QUEUED", conn:command("SET", "rs:a", 1))
    assert.equal("QUEUED", conn:command("INCR", "rs:a"))
    assert.equal("QUEUED", conn:command("HSET", "rs:a", "f", 1))
    local r = conn:command("EXEC")
    assert.equal("OK", r[1])
    assert.equal(2, r[2])
    assert.is_false(r[3][1])
    assert.matches("^WRONGTYPE", r[3][2])
    local p = assert(conn:pipeline { { "GET", "rs:a" }, { "DEL", "rs:a" } })
    assert.same({ "2", 1 }, p)
    assert.is_true(conn:release())
    assert.is_true(conn:release())   -- idempotent
    assert.same({ nil, "released" }, { conn:command("PING") })
    assert.equal(0, c:pool_stats().in_use)
  end)

  it("DISCARDs a connection left in MULTI and reuses it", function()
    local c = H.cache { pool = { size = 1 } }
    local conn = assert(c:reserve())
    local id = H.client_id(conn)
    conn:command("MULTI")
    conn:command("SET", "rs:multi", "leaked")
    conn:release()
    assert.equal(H.null, c:command("GET", "rs:multi"))  -- never executed
    assert.equal(id, H.client_id(c))                     -- same connection, reset
    assert.equal(0, c:pool_stats().closed)
  end)

  it("UNWATCHes a connection left in WATCH", function()
    local c = H.cache { pool = { size = 1 } }
    local conn = assert(c:reserve())
    conn:command("WATCH", "rs:w")
    conn:release()
    H.admin():command("SET", "rs:w", "changed")  -- would abort a still-watching EXEC
    local again = assert(c:reserve())
    again:command("MULTI")
    again:command("SET", "rs:w", "mine")
    assert.same({ "OK" }, again:command("EXEC"))
    again:release()
    assert.equal("mine", c:command("GET", "rs:w"))
    assert.equal(0, c:pool_stats().closed)
  end)

  it("closes a connection whose state cannot be reset (SELECT)", function()
    local c = H.cache { pool = { size = 1 } }
    local conn = assert(c:reserve())
    assert.equal("OK", conn:command("SELECT", 5))
    conn:release()
    assert.equal(1, c:pool_stats().closed)
    assert.matches("db=0", c:command("CLIENT", "INFO"), 1, true)
  end)

  it("unpinned commands that leave state behind are reset too", function()
    local c = H.cache { pool = { size = 1 } }
    assert.equal("OK", c:command("MULTI"))
    assert.equal("PONG", c:command("PING"))   -- not QUEUED: the MULTI was discarded
    assert.equal("OK", c:command("SELECT", 4))
    assert.matches("db=0", c:command("CLIENT", "INFO"), 1, true)
  end)

  it("is released by the garbage collector", function()
    local c = H.cache { pool = { size = 2 } }
    do local conn = assert(c:reserve()); conn:command("PING") end
    do local conn = assert(c:reserve()); conn:command("MULTI") end
    assert.equal(2, c:pool_stats().in_use)
    collectgarbage(); collectgarbage()
    local st = c:pool_stats()
    assert.equal(0, st.in_use)
    assert.equal(1, st.idle)     -- the clean one is kept
    assert.equal(1, st.closed)   -- the one in MULTI is closed (no I/O in __gc)
  end)

  it("set_timeout applies to the pinned connection only", function()
    local c = H.cache { timeout = 0.2, pool = { size = 1 } }
    local conn = assert(c:reserve())
    assert.is_true(conn:set_timeout(3))
    assert.equal("OK", conn:command("DEBUG", "SLEEP", "0.4"))
    conn:release()
    assert.same({ nil, "timeout" }, { c:command("DEBUG", "SLEEP", "0.4") })
    posix.sleep(0.4)
    local ok = pcall(function() local conn2 = assert(c:reserve()); conn2:set_timeout(0) end)
    assert.is_false(ok)
  end)

  it("reports I/O failure on a pinned connection as nil, err", function()
    local c = H.cache { pool = { size = 1 } }
    local conn = assert(c:reserve())
    H.admin():command("CLIENT", "KILL", "ID", H.client_id(conn))
    local v, err = conn:command("PING")
    assert.is_nil(v)
    assert.equal("connection closed", err)
    assert.same({ nil, "connection closed" }, { conn:command("PING") })
    conn:release()
    assert.equal(1, c:pool_stats().closed)
    assert.equal("PONG", c:command("PING"))
  end)
end)
