-- Every key hicache creates either expires, or is removed by the
-- operations that own its namespace, or is one of the documented
-- exceptions (an entry stored without a TTL, and the tag keys of such an
-- entry). docs/FORMAT.md lists every key and its lifetime.
local H = require "helper"
local testing = require "hicache.testing"

describe("key lifetimes", function()
  it("after a workload, only entries stored without a TTL and their tags persist", function()
    local admin = H.admin()
    local c = testing.cache()
    local prefix = c:_namespace():match("^(.*):1:$")
    c:set("a", 1, 60)
    c:set("forever", 1, 0)
    c:set("t", 1, 60, { tags = { "x", "y" } })
    c:set("tf", 1, 0, { tags = { "perm" } })
    c:get_or_set("g", function() return 1 end, { tags = { "x" }, stale = 5 })
    c:get_or_set("g2", function() return 1 end)
    c:get_or_set("none", function() return nil end)            -- the lease is given back
    assert(c:lock("l")):release()
    assert(c:lock("held", { ttl = 5 }))                        -- left to expire
    c:with_lock("l3", nil, function() end)
    c:memoize(function() return 1 end, { name = "m", tags = { "z" } })()
    c:invalidate_tag("y")
    c:delete("a")
    c:incr_version("g2")
    assert(c:clear())                                          -- also moves the epoch on
    c:set("forever2", 1, 0)
    local persistent, cursor = {}, "0"
    repeat
      local r = admin:command("SCAN", cursor, "MATCH", "*" .. prefix .. "*", "COUNT", 1000)
      cursor = r[1]
      for _, k in ipairs(r[2]) do
        local pttl = admin:command("PTTL", k)
        if pttl == -1 then persistent[#persistent + 1] = k end
        assert.is_true(pttl == -1 or pttl <= 86400000, k)      -- nothing lives longer than a day
      end
    until cursor == "0"
    table.sort(persistent)
    assert.same({ prefix .. ":1:forever2", prefix .. ":tag:{perm}" }, persistent)
    testing.cleanup()
  end)
end)
