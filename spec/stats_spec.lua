local H = require "helper"
local keys = require "hicache.keys"

describe("observability", function()
  it("counts a scripted sequence exactly, in total and per key family", function()
    local c = H.cache { prefix = "st" }
    local profile = keys.define("profile", { "id" })
    c:set(profile { id = 1 }, { name = "a" })        -- set
    c:get(profile { id = 1 })                          -- hit
    c:get(profile { id = 2 })                          -- miss
    c:get("plain")                                     -- miss, no family
    c:set_many({ a = 1, b = 2 })                       -- 2 sets
    c:get_many({ "a", "b", "zz" })                     -- 2 hits, 1 miss
    c:delete("a")                                      -- delete
    c:invalidate(profile { id = 1 })                   -- invalidation
    c:get_or_set("gos:1", function() return 1 end)     -- miss + compute
    c:get_or_set("gos:1", function() return 1 end)     -- hit
    c:incr("b")
    local down = H.cache { port = 1, prefix = "st" }
    down:get("x")                                      -- error
    local st = c:stats()
    assert.equal(4, st.hits)
    assert.equal(4, st.misses)
    assert.equal(0.5, st.hit_rate)
    assert.equal(4, st.sets)        -- set, set_many's 2, get_or_set's fill
    assert.equal(1, st.deletes)
    assert.equal(1, st.invalidations)
    assert.equal(1, st.computes)
    assert.equal(0, st.errors)
    assert.equal(3, st.ops.get.count)
    assert.equal(2, st.ops.get_or_set.count)
    assert.equal(1, st.ops.incr.count)
    assert.is_true(st.bytes_in > 0 and st.bytes_out > 0)
    assert.is_true(st.ops.get.p50 > 0 and st.ops.get.p50 <= st.ops.get.p99)
    local fam = st.families.profile
    assert.equal(1, fam.hits)
    assert.equal(1, fam.misses)
    assert.equal(1, fam.sets)
    assert.equal(1, fam.invalidations)
    assert.equal(1, st.families.gos.computes)
    assert.equal(1, down:stats().errors)
    c:stats_reset()
    assert.equal(0, c:stats().hits)
    c:clear()
  end)

  it("counts stale serves, waits and lock waits", function()
    local c = H.cache { prefix = "st2" }
    c:get_or_set("s", function() return 1 end, { ttl = 0.05, stale = 30 })
    H.posix.sleep(0.1)
    H.admin():command("SET", "{st2:1:s}:lease", "other", "PX", 5000)   -- someone else refreshes
    local _, _, status = c:get_or_set("s", function() return 2 end, { ttl = 0.05, stale = 30 })
    assert.equal("stale", status)
    local held = assert(c:lock("l", { ttl = 0.2 }))
    assert.same({ nil, "timeout" }, { c:lock("l", { wait = 0.05 }) })
    held:release()
    local st = c:stats()
    assert.equal(1, st.stale)
    assert.equal(1, st.lock_waits)
    H.admin():command("DEL", "{st2:1:s}:lease")
    c:clear()
  end)

  it("on_event receives {op, key, family, status, ms, err}; logger logs hits and misses", function()
    local events, lines = {}, {}
    local c = H.cache { prefix = "st3", on_event = function(ev) events[#events + 1] = ev end,
                        logger = function(line) lines[#lines + 1] = line end }
    c:set("user:1", "x")
    c:get("user:1")
    c:get("user:2")
    assert.equal(3, #events)
    assert.same({ "set", "get", "get" }, { events[1].op, events[2].op, events[3].op })
    assert.same({ "set", "hit", "miss" }, { events[1].status, events[2].status, events[3].status })
    assert.equal("user:1", events[2].key)
    assert.equal("user", events[2].family)
    assert.is_true(events[2].ms >= 0)
    assert.equal(2, #lines)
    assert.matches("^hicache get hit key=user:1 family=user", lines[1])
    local down = H.cache { port = 1, on_event = function(ev) events[#events + 1] = ev end }
    down:get("k")
    assert.equal("error", events[#events].status)
    assert.equal("connection refused", events[#events].err)
    c:clear()
  end)

  it("stats_text renders the Prometheus text format", function()
    local c = H.cache { prefix = "st4" }
    c:set("fam:1", 1)
    c:get("fam:1")
    local text = c:stats_text()
    assert.matches("# TYPE hicache_hits_total counter\n", text, 1, true)
    assert.matches('hicache_hits_total{prefix="st4"} 1\n', text, 1, true)
    assert.matches('hicache_hits_total{prefix="st4",family="fam"} 1\n', text, 1, true)
    assert.matches('hicache_latency_seconds{prefix="st4",op="get",quantile="0.99"} ', text, 1, true)
    for line in text:gmatch("[^\n]+") do
      assert.is_truthy(line:match("^# TYPE %S+ %a+$") or line:match("^# HELP %S+ .+$")
        or line:match("^[%w_]+{[^}]*} [%d.e+-]+$"), line)
    end
    c:clear()
  end)

  it("stats = false turns the counters off", function()
    local c = H.cache { stats = false }
    c:get("x")
    assert.same({ nil, "stats are off" }, { c:stats() })
  end)
end)
