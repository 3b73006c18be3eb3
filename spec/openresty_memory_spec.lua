-- backend = "memory" inside a real nginx (spec/nginx_harness.lua, one
-- worker, the handlers of spec/openresty_memory/app.lua): the store is the
-- worker's, nothing tries a cosocket, and waiting for a fill or a lock
-- yields (ngx.sleep) instead of blocking the worker -- the request that
-- fills or releases runs in that same worker.
local nginx = require "nginx_harness"
local socket = require "socket"

local null = require("cjson").null

describe("OpenResty: backend = \"memory\"", function()
  local srv
  lazy_setup(function()
    srv = nginx.start { workers = 1, app_dir = os.getenv("PWD") .. "/spec/openresty_memory" }
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("runs the API in the worker's own store, which starts empty", function()
    local r = srv:call("basic")
    assert.is_true(r.kind)
    assert.is_true(r.set)
    assert.same({ n = 1 }, r.get)
    assert.same({ true, 3 }, r.incr)
    assert.same({ "computed", null, "miss" }, { r.gos[1], r.gos[2] or null, r.gos[3] })
    assert.same({ "computed", null, "hit" }, { r.gos2[1], r.gos2[2] or null, r.gos2[3] })
    assert.is_true(r.init_set) -- stored by the master in init_by_lua ...
    assert.same({}, r.from_master) -- ... which the forked worker does not see
    assert.equal(3, r.clear)
    assert.not_matches("%[error%]", srv:error_log())
  end)

  it("a get_or_set waiter yields: the filler in the same worker completes and wakes it", function()
    local key = "k" .. math.random(1e9)
    local a = srv:send_request(("/t/fill?key=%s&sleep=0.5"):format(key))
    socket.sleep(0.1)
    local b = srv:send_request("/t/wait?key=" .. key)
    socket.sleep(0.1)
    assert.same({ pong = true }, srv:call("ping")) -- the worker serves others meanwhile
    local ra, rb = srv:finish(a), srv:finish(b)
    assert.same({ v = "filled", status = "miss" }, { v = ra.v, status = ra.status })
    assert.same({ v = "filled", status = "waited" }, { v = rb.v, status = rb.status })
  end)

  it("a lock waiter yields until the holder in the same worker releases", function()
    local name = "L" .. math.random(1e9)
    local a = srv:send_request(("/t/lock_hold?name=%s&sleep=0.4"):format(name))
    socket.sleep(0.1)
    local b = srv:send_request("/t/lock_wait?name=" .. name)
    local ra, rb = srv:finish(a), srv:finish(b)
    assert.is_nil(rb.err)
    assert.is_true(rb.fence > ra.fence)
  end)
end)
