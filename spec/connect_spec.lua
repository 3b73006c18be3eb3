local H = require "helper"
local hicache, posix = H.hicache, H.posix

describe("connecting", function()
  it("works over TCP", function()
    local c = H.cache()
    assert.equal("PONG", c:command("PING"))
    c:close()
  end)

  it("works over a unix socket, by path and by url", function()
    local c = H.cache { path = H.socket }
    assert.equal("PONG", c:command("PING"))
    local info = assert(c:command("CLIENT", "INFO"))
    assert.matches("laddr=" .. H.socket, info, 1, true)
    local u = H.cache { url = "unix://" .. H.socket }
    assert.equal("PONG", u:command("PING"))
  end)

  it("authenticates an ACL user (AUTH user pass)", function()
    local admin = H.admin()
    assert.equal("OK", admin:command("ACL", "SETUSER", "hc_alice", "reset", "on", ">alice-pw", "~*", "&*", "+@all"))
    finally(function() admin:command("ACL", "DELUSER", "hc_alice") end)
    local c = H.cache { url = ("redis://hc_alice:alice-pw@%s:%d"):format(H.host, H.port) }
    assert.equal("hc_alice", c:command("ACL", "WHOAMI"))
    local t = H.cache { username = "hc_alice", password = "alice-pw", path = H.socket }
    assert.equal("hc_alice", t:command("ACL", "WHOAMI"))
  end)

  it("sends passwords binary-safe (spaces, CR/LF, percent-escaped in urls)", function()
    local admin = H.admin()
    local pw = "p w:@/\r\n%x"
    assert.equal("OK", admin:command("ACL", "SETUSER", "hc_carol", "reset", "on", ">" .. pw, "~*", "+@all"))
    finally(function() admin:command("ACL", "DELUSER", "hc_carol") end)
    local c = H.cache { username = "hc_carol", password = pw }
    assert.equal("hc_carol", c:command("ACL", "WHOAMI"))
    local escaped = pw:gsub("[^%w]", function(ch) return ("%%%02X"):format(ch:byte()) end)
    local u = H.cache { url = ("redis://hc_carol:%s@%s:%d"):format(escaped, H.host, H.port) }
    assert.equal("hc_carol", u:command("ACL", "WHOAMI"))
  end)

  it("reports a wrong password clearly, without the password", function()
    local admin = H.admin()
    admin:command("ACL", "SETUSER", "hc_bob", "reset", "on", ">bob-pw", "~*", "+@all")
    finally(function() admin:command("ACL", "DELUSER", "hc_bob") end)
    local c = H.cache { username = "hc_bob", password = "Wr0ng-Secret" }
    local v, err = c:command("PING")
    assert.is_nil(v)
    assert.matches("^auth failed: WRONGPASS", err)
    assert.is_nil(err:find("Wr0ng-Secret", 1, true))
    assert.is_nil(tostring(c):find("Wr0ng-Secret", 1, true))
    assert.equal(0, c:pool_stats().in_use)
  end)

  it("supports password-only AUTH (requirepass)", function()
    local admin = H.admin()
    -- the admin connection is already authenticated; keep it in use
    assert.equal("OK", admin:command("CONFIG", "SET", "requirepass", "only-pw"))
    finally(function() assert.equal("OK", admin:command("CONFIG", "SET", "requirepass", "")) end)
    local ok = H.cache { password = "only-pw" }
    assert.equal("PONG", ok:command("PING"))
    local none = H.cache()
    local v, err = none:command("GET", "x")
    assert.is_nil(v)
    assert.matches("^NOAUTH", err)
    local bad = H.cache { password = "nope" }
    v, err = bad:command("PING")
    assert.is_nil(v)
    assert.matches("^auth failed: WRONGPASS", err)
  end)

  it("selects the database once per connection and isolates it", function()
    local d0, d3 = H.cache(), H.cache { db = 3 }
    local u3 = H.cache { url = "unix://" .. H.socket .. "?db=3" }
    assert.equal("OK", d3:command("SET", "sel:k", "in-3"))
    assert.equal(H.null, d0:command("GET", "sel:k"))
    assert.equal("in-3", d3:command("GET", "sel:k"))
    assert.equal("in-3", u3:command("GET", "sel:k"))
    assert.matches("db=3", d3:command("CLIENT", "INFO"), 1, true)
    d3:command("DEL", "sel:k")
  end)

  it("reports a database out of range", function()
    local c = H.cache { db = 999999 }
    local v, err = c:command("PING")
    assert.is_nil(v)
    assert.matches("^select failed: ERR DB index is out of range", err)
  end)

  it("times out connecting to an address that never answers", function()
    local port, fds = posix.blackhole()
    finally(function() for _, fd in ipairs(fds) do posix.close(fd) end end)
    local c = H.cache { port = port, connect_timeout = 0.3 }
    local t0 = posix.now()
    local v, err = c:command("PING")
    local elapsed = posix.now() - t0
    assert.is_nil(v)
    assert.equal("timeout", err)
    assert.is_true(elapsed >= 0.25, "returned before the timeout: " .. elapsed)
    assert.is_true(elapsed < 3, "did not honour connect_timeout: " .. elapsed)
  end)

  it("times out a slow command and replaces the connection", function()
    local c = H.cache { timeout = 0.2 }
    local id = H.client_id(c)
    local v, err = c:command("DEBUG", "SLEEP", "0.6")
    assert.is_nil(v)
    assert.equal("timeout", err)
    local st = c:pool_stats()
    assert.equal(0, st.idle)          -- the timed-out connection was not kept
    assert.equal(1, st.closed)
    posix.sleep(0.6)                  -- let the server finish sleeping
    assert.equal("PONG", c:command("PING"))
    assert.are_not.equal(id, H.client_id(c))
  end)

  it("reports connection refused and a missing socket file", function()
    local c = H.cache { port = 1 }
    assert.same({ nil, "connection refused" }, { c:command("PING") })
    local u = H.cache { path = H.dir .. "/nope.sock" }
    assert.same({ nil, "no such socket" }, { u:command("PING") })
  end)

  it("backs off exponentially after connect failures", function()
    local c = H.cache { port = 1, pool = { backoff_base = 0.3, backoff_max = 1.2 } }
    assert.same({ nil, "connection refused" }, { c:command("PING") })
    assert.equal(1, c:pool_stats().errors)
    -- inside the backoff window: the last error at once, no new attempt
    assert.same({ nil, "connection refused" }, { c:command("PING") })
    assert.equal(1, c:pool_stats().errors)
    posix.sleep(0.4)
    c:command("PING")
    assert.equal(2, c:pool_stats().errors)
    -- the second delay is doubled (0.6): still inside it after 0.3 s
    posix.sleep(0.3)
    c:command("PING")
    assert.equal(2, c:pool_stats().errors)
  end)
end)
