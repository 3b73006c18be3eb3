-- The methods between the C core and the Lua layer (_record, _key,
-- _lease, ...) are reachable from user code: called with any arguments
-- they return or raise a clean Lua error, never read or write out of
-- bounds (run under `make test-asan` too), never block without a bound.
local H = require "helper"

local PRIVATE = { "_key", "_namespace", "_names", "_tag_name", "_lock_names", "_scan_pattern", "_entry",
                  "_read", "_visible", "_invalidate_full", "_bump_epoch", "_lease", "_keep", "_fill",
                  "_release", "_wait", "_wake", "_eval", "_record", "_block", "_l1_keep", "_seal_family",
                  "_decode_at" }

-- Garbage of every kind; no number in (0.01, 86400], so a _wait that is
-- accepted blocks for a millisecond at most.
local POOL = { nil, 0 / 0, -1, 0, 0.001, 2 ^ 53, 2 ^ 63, -2 ^ 63, math.huge, -math.huge, 1e300,
               H.INT64_MIN, H.INT64_MAX, "", "x", "a:b", "{", "}", ("k"):rep(5000),
               ("t"):rep(70), "get", "acquire", {}, { 1, 2 }, { "a", "b" }, { [3] = "c" }, { ("x"):rep(2000) },
               true, false, print, 2.5e5, 1e6 }
local NPOOL = 34

describe("private methods refuse garbage cleanly", function()
  local c
  setup(function() c = H.cache { prefix = "priv" } end)
  teardown(function() c:clear() end)

  for _, name in ipairs(PRIVATE) do
    it(name, function()
      local rng = 7
      local function pick() -- a small deterministic generator
        rng = (rng * 1103515245 + 12345) % 2147483648
        return POOL[rng % NPOOL + 1]
      end
      local f = c[name]
      assert.is_function(f)
      for _ = 1, 400 do
        local args, n = {}, (rng % 7) + 1
        for i = 1, n do args[i] = pick() end
        local ok, err = pcall(f, c, H.unpack(args, 1, n))
        if not ok then assert(type(err) == "string", name .. " raised a non-string: " .. tostring(err)) end
      end
      -- the cache still works afterwards
      assert.is_true(c:set("after", 1))
      assert.equal(1, c:get("after"))
    end)
  end

  it("_record refuses what would index its histograms out of range", function()
    for _, args in ipairs {
      { "get", 1, nil, -math.huge }, { "get", 1, nil, 0 / 0 }, { "get", 1, nil, math.huge },
      { "get", -1, nil, 0 }, { "get", 1099511627776, nil, 0 }, { "nope", 1, nil, 0 },
    } do
      assert.has_error(function() c:_record(H.unpack(args, 1, 4)) end)
    end
    local before = c:stats().ops.get and c:stats().ops.get.count or 0
    c:_record("get", 1, "priv:1:x", H.hicache.now())
    assert.equal(before + 1, c:stats().ops.get.count)
  end)

  it("an event for a key shorter than the namespace reads nothing beyond it", function()
    local events = {}
    local e = H.cache { prefix = "a-rather-long-prefix", on_event = function(ev) events[#events + 1] = ev end }
    e:_record("get", 1, "ab", H.hicache.now())
    e:_record("get", 1, "", H.hicache.now())
    assert.equal("ab", events[1].key)
  end)
end)
