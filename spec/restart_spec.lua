local H = require "helper"

describe("a Redis restart between two calls", function()
  it("the call after the restart succeeds on a new connection", function()
    local c = H.cache { pool = { size = 2 } }
    local tcp = H.cache { path = H.socket }
    assert.equal("OK", c:command("SET", "rst:k", "before"))
    assert.equal("PONG", tcp:command("PING"))
    local id = H.client_id(c)
    H.restart_redis()
    assert.equal(H.null, c:command("GET", "rst:k"))   -- no persistence: data gone
    assert.equal("PONG", tcp:command("PING"))
    assert.are_not.equal(id, H.client_id(c))
    assert.equal(1, c:pool_stats().closed)
  end)
end)
