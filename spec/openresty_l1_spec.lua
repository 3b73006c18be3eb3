-- The L1 near cache inside a real nginx, on cosockets: hits without I/O,
-- and another client's write invalidating this worker's copy (the C
-- invalidation thread, BCAST).
local nginx = require "nginx_harness"
local H = require "spec.helper"

local function calls()
  local info = assert(H.admin():command("INFO", "commandstats"))
  return tonumber(info:match("cmdstat_get:calls=(%d+)")) or 0
end

describe("OpenResty L1", function()
  local srv
  lazy_setup(function()
    srv = nginx.start { workers = 1, app_dir = os.getenv("PWD") .. "/spec/openresty_l1" }
  end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("serves hits from L1 and sees other clients' writes", function()
    local up = srv:call("up")
    assert.is_true(up.up)
    assert.equal("cosocket", up.transport)
    assert.is_true(srv:call("set?k=a&v=one").ok)
    assert.equal("one", srv:call("get?k=a").v) -- the fill, over a cosocket
    local before = calls()
    local r = srv:call("get?k=a&n=100")
    assert.equal("one", r.v)
    assert.equal(100, r.hits, require("cjson").encode(r.st))
    assert.equal(before, calls())
    local other = H.cache { prefix = "orl1" }
    assert(other:set("a", "two"))
    local v
    for _ = 1, 300 do
      v = srv:call("get?k=a").v
      if v == "two" then break end
      H.posix.sleep(0.01)
    end
    assert.equal("two", v)
    assert.is_true(srv:call("stats").invalidations >= 1)
    other:close()
  end)
end)
