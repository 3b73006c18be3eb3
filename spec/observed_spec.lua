-- Every public operation is observed: its stats move, the on_event hook
-- and testing.record see it — tagged or not, filled by get_or_set or set.
local H = require "helper"
local testing = require "hicache.testing"

-- name, the op it counts as, setup(c) (not observed), the call
local OPS = {
  { "get", "get", nil, function(c) return c:get("k") end },
  { "get with tags", "get", nil, function(c) return c:get("t", nil, { tags = { "x" } }) end },
  { "get_many", "get_many", nil, function(c) return c:get_many { "k", "j" } end },
  { "get_many with tags", "get_many", nil, function(c) return c:get_many({ "t" }, { tags = { "x" } }) end },
  { "set", "set", nil, function(c) return c:set("k", 1) end },
  { "set with tags", "set", nil, function(c) return c:set("t", 1, 60, { tags = { "x" } }) end },
  { "add", "set", nil, function(c) return c:add("a", 1) end },
  { "set_many", "set_many", nil, function(c) return c:set_many { m = 1 } end },
  { "incr", "incr", function(c) c:set("n", 1) end, function(c) return c:incr("n") end },
  { "decr", "incr", function(c) c:set("n", 1) end, function(c) return c:decr("n") end },
  { "delete", "delete", nil, function(c) return c:delete("k") end },
  { "delete_many", "delete", nil, function(c) return c:delete_many { "k" } end },
  { "has_key", "has_key", nil, function(c) return c:has_key("k") end },
  { "ttl", "ttl", nil, function(c) return c:ttl("k") end },
  { "expire", "expire", nil, function(c) return c:expire("k", 5) end },
  { "touch", "expire", nil, function(c) return c:touch("k", 5) end },
  { "persist", "expire", nil, function(c) return c:persist("k") end },
  { "invalidate", "invalidate", nil, function(c) return c:invalidate("k") end },
  { "invalidate_tag", "invalidate", nil, function(c) return c:invalidate_tag("x") end },
  { "incr_version", "invalidate", nil, function(c) return c:incr_version("k") end },
  { "get_or_set fill", "get_or_set", nil, function(c) return c:get_or_set("g", function() return 1 end) end },
  { "get_or_set hit", "get_or_set", function(c) c:set("g", 1) end, function(c) return c:get_or_set("g", error) end },
  { "get_or_set with tags", "get_or_set", nil,
    function(c) return c:get_or_set("gt", function() return 1 end, { tags = { "x" } }) end },
  { "memoized call", "get_or_set", nil, function(c) return c:memoize(function() return 1 end, { name = "m" })() end },
  { "lock", "lock", nil, function(c) local l = c:lock("L"); l:release(); return l end },
  { "with_lock", "lock", nil, function(c) return c:with_lock("W", nil, function() return 1 end) end },
  { "batch commit", "invalidate", nil, function(c) return c:batch():invalidate("k"):commit() end },
  { "delete_pattern", "delete", function(c) c:set("p1", 1) end, function(c) return c:delete_pattern("p*") end },
  { "clear", "delete", nil, function(c) return c:clear() end },
}

describe("every operation is observed", function()
  for _, case in ipairs(OPS) do
    it(case[1], function()
      local cache = testing.cache()
      if case[3] then case[3](cache) end
      local rec = testing.record(cache)
      local before = cache:stats().ops[case[2]]
      before = before and before.count or 0
      case[4](cache)
      local st = cache:stats()
      assert.is_truthy(st.ops[case[2]], "no stats for op " .. case[2])
      assert.equal(before + 1, st.ops[case[2]].count)
      local seen = false
      for _, ev in ipairs(rec.events) do seen = seen or ev.op == case[2] end
      assert.is_true(seen, "no event for " .. case[2])
    end)
  end

  it("a get_or_set fill counts in sets and bytes_out, like a set", function()
    local a, b = testing.cache(), testing.cache()
    a:get_or_set("k", function() return ("x"):rep(100) end)
    b:set("k", ("x"):rep(100))
    local sa, sb = a:stats(), b:stats()
    assert.equal(1, sa.sets)
    assert.equal(sb.sets, sa.sets)
    assert.equal(sb.bytes_out, sa.bytes_out)
    assert.is_true(sa.bytes_out > 100)
    -- with tags too
    local c = testing.cache()
    c:get_or_set("t", function() return 1 end, { tags = { "x" } })
    assert.equal(1, c:stats().sets)
    assert.is_true(c:stats().bytes_out > 0)
  end)

  it("a tagged hit counts bytes_in like a plain hit", function()
    local c = testing.cache()
    c:set("t", ("y"):rep(50), 60, { tags = { "x" } })
    c:get("t", nil, { tags = { "x" } })
    local st = c:stats()
    assert.equal(1, st.hits)
    assert.is_true(st.bytes_in >= 50)
  end)
end)
