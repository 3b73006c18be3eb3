local H = require "helper"
local posix = H.posix

describe("after fork()", function()
  it("the child opens its own connection; the parent's stays healthy", function()
    local c = H.cache { pool = { size = 1 } }
    local parent_id = H.client_id(c)
    local pid = posix.fork()
    if pid == 0 then
      -- child: must not touch the parent's socket
      local code = 0
      local ok, err = pcall(function()
        local id = H.client_id(c)
        local st = c:pool_stats()
        if id == parent_id then code = 10 end
        if st.created ~= 1 or st.in_use ~= 0 or st.idle ~= 1 then code = 11 end
        assert(c:command("SET", "fork:child", id) == "OK")
        for i = 1, 100 do assert(c:command("INCR", "fork:count") == i) end
      end)
      if not ok then io.stderr:write(tostring(err), "\n"); code = 12 end
      posix._exit(code)
    end
    assert.equal(0, posix.waitpid(pid))
    local child_id = tonumber(c:command("GET", "fork:child"))
    assert.are_not.equal(parent_id, child_id)
    -- the parent's pooled connection is still the same, usable one
    assert.equal(parent_id, H.client_id(c))
    assert.equal("100", c:command("GET", "fork:count"))
    local st = c:pool_stats()
    assert.equal(1, st.created)
    assert.equal(0, st.closed)
    c:command("DEL", "fork:child", "fork:count")
  end)

  it("a connection reserved before the fork is refused in the child", function()
    local c = H.cache { pool = { size = 2 } }
    local conn = assert(c:reserve())
    local parent_id = H.client_id(conn)
    local pid = posix.fork()
    if pid == 0 then
      local v, err = conn:command("PING")
      conn:release()
      local code = (v == nil and err == "connection belongs to parent process") and 0 or 20
      if c:pool_stats().in_use ~= 0 then code = 21 end
      if c:command("PING") ~= "PONG" then code = 22 end
      posix._exit(code)
    end
    assert.equal(0, posix.waitpid(pid))
    assert.equal(parent_id, H.client_id(conn))
    conn:release()
    assert.equal(0, c:pool_stats().closed)
  end)

  it("many children hammer the cache concurrently with their own connections", function()
    local c = H.cache { pool = { size = 2 } }
    c:command("DEL", "fork:many")
    c:command("PING")
    local pids = {}
    for i = 1, 8 do
      local pid = posix.fork()
      if pid == 0 then
        local ok = pcall(function()
          for _ = 1, 200 do assert(c:command("INCR", "fork:many")) end
        end)
        posix._exit(ok and 0 or 30)
      end
      pids[i] = pid
    end
    for _, pid in ipairs(pids) do assert.equal(0, posix.waitpid(pid)) end
    assert.equal("1600", c:command("GET", "fork:many"))
    assert.equal(1, c:pool_stats().created)
    c:command("DEL", "fork:many")
  end)
end)
