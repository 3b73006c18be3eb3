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

  it("_record (reachable by users) refuses every bad argument; the histogram takes any latency", function()
    local EV = require("hicache.core").EV
    local events = {}
    local c = H.cache { prefix = "st5", on_event = function(ev) events[#events + 1] = ev end }
    local now, key = H.hicache.now(), c:_key("user:1")
    local NAN, INF = 0 / 0, math.huge
    -- { argument blamed (self is #1), op, ev, key, t0, err, bytes_out }
    local bad = {
      { 2, "nope", 1, nil, now }, { 2, 5, 1, nil, now }, { 2, nil, 1, nil, now }, { 2, {}, 1, nil, now },
      { 3, "get", -1, nil, now }, { 3, "get", 1099511627776, nil, now }, { 3, "get", 2 * EV.invalidate, nil, now },
      { 3, "get", 1.5, nil, now }, { 3, "get", "1", nil, now }, { 3, "get", NAN, nil, now },
      { 3, "get", nil, nil, now },
      { 4, "get", 1, 42, now }, { 4, "get", 1, {}, now }, { 4, "get", 1, true, now },
      { 4, "get", 1, ("k"):rep(5000), now },
      { 5, "get", 1, key, -INF }, { 5, "get", 1, key, INF }, { 5, "get", 1, key, NAN }, { 5, "get", 1, key, 1e300 },
      { 5, "get", 1, key, -1e300 }, { 5, "get", 1, key, -1 }, { 5, "get", 1, key, now + 3600 },
      { 5, "get", 1, key, tostring(now) }, { 5, "get", 1, key, nil },
      { 6, "get", 1, key, now, 42 }, { 6, "get", 1, key, now, {} },
      { 7, "get", 1, key, now, nil, -1 }, { 7, "get", 1, key, now, nil, 1.5 }, { 7, "get", 1, key, now, nil, "9" },
    }
    local accepted = {}
    for i, case in ipairs(bad) do
      local ok, err = pcall(c._record, c, H.unpack(case, 2, 7))
      if ok then
        accepted[#accepted + 1] = i
      else
        assert.matches("^bad argument #" .. case[1] .. " ", err, nil, false, "case " .. i)
      end
    end
    -- whatever got through, the histograms hold finite, ordered latencies
    -- (run under ASan: a NaN or infinite latency used to index them out of range)
    for _, scope in ipairs { c:stats(), c:stats().families.user or { ops = {} } } do
      for op, q in pairs(scope.ops) do
        for _, f in ipairs { "p50", "p90", "p99", "sum_ms" } do
          assert.is_true(q[f] >= 0 and q[f] < math.huge, op .. "." .. f .. " = " .. tostring(q[f]))
        end
        assert.is_true(q.p50 <= q.p90 and q.p90 <= q.p99)
      end
    end
    assert.same({}, accepted, "bad calls accepted")
    assert.same({}, c:stats().ops)
    assert.equal(0, #events)
    -- good calls: recorded in stats and seen by the hook
    c:_record("get", EV.hit, key, H.hicache.now())
    c:_record("get_or_set", H.bor(H.bor(EV.miss, EV.compute), EV.set), key, H.hicache.now(), "why", 10)
    c:_record("lock", 0, nil, H.hicache.now(), nil)
    local st = c:stats()
    assert.same({ 1, 1, 1 }, { st.ops.get.count, st.ops.get_or_set.count, st.ops.lock.count })
    assert.same({ 1, 1, 1, 10 }, { st.hits, st.misses, st.sets, st.bytes_out })
    assert.equal(1, st.families.user.hits)
    assert.same({ "hit", "miss", "ok" }, { events[1].status, events[2].status, events[3].status })
    assert.same({ "user:1", "user", "why" }, { events[2].key, events[2].family, events[2].err })
  end)

  -- Every public operation: { name, setup (not measured), call, op it counts as,
  -- the counters it moves (exactly; "+" = by more than 0), the event status }
  local EVERY_OP = {
    { "get miss", nil, function(c) return c:get("k") end, "get", { misses = 1 }, "miss" },
    { "get hit", function(c) c:set("k", "vv") end, function(c) return c:get("k") end, "get",
      { hits = 1, bytes_in = "+" }, "hit" },
    { "get with tags", function(c) c:set("t", "vv", 60, { tags = { "x" } }) end,
      function(c) return c:get("t", nil, { tags = { "x" } }) end, "get", { hits = 1, bytes_in = "+" }, "hit" },
    { "get_many", function(c) c:set("k", 1) end, function(c) return c:get_many { "k", "j" } end, "get_many",
      { hits = 1, misses = 1, bytes_in = "+" }, "ok" },
    { "get_many with tags", function(c) c:set("t", 1, 60, { tags = { "x" } }) end,
      function(c) return c:get_many({ "t", "u" }, { tags = { "x" } }) end, "get_many",
      { hits = 1, misses = 1, bytes_in = "+" }, "ok" },
    { "set", nil, function(c) return c:set("k", 1) end, "set", { sets = 1, bytes_out = "+" }, "set" },
    { "set with tags", nil, function(c) return c:set("t", 1, 60, { tags = { "x" } }) end, "set",
      { sets = 1, bytes_out = "+" }, "set" },
    { "add", nil, function(c) return c:add("a", 1) end, "set", { sets = 1, bytes_out = "+" }, "set" },
    { "set_many", nil, function(c) return c:set_many { m = 1, n = 2 } end, "set_many",
      { sets = 2, bytes_out = "+" }, "ok" },
    { "incr", function(c) c:set("n", 1) end, function(c) return c:incr("n") end, "incr", {}, "ok" },
    { "decr", function(c) c:set("n", 1) end, function(c) return c:decr("n") end, "incr", {}, "ok" },
    { "delete", function(c) c:set("k", 1) end, function(c) return c:delete("k") end, "delete",
      { deletes = 1 }, "delete" },
    { "delete_many", function(c) c:set("k", 1) end, function(c) return c:delete_many { "k", "j" } end, "delete",
      { deletes = 1 }, "delete" },
    { "has_key", nil, function(c) return c:has_key("k") end, "has_key", {}, "ok" },
    { "ttl", nil, function(c) return c:ttl("k") end, "ttl", {}, "ok" },
    { "expire", function(c) c:set("k", 1) end, function(c) return c:expire("k", 5) end, "expire", {}, "ok" },
    { "touch", function(c) c:set("k", 1) end, function(c) return c:touch("k", 5) end, "expire", {}, "ok" },
    { "persist", function(c) c:set("k", 1) end, function(c) return c:persist("k") end, "expire", {}, "ok" },
    { "invalidate", function(c) c:set("k", 1) end, function(c) return c:invalidate("k") end, "invalidate",
      { invalidations = 1 }, "invalidate" },
    { "invalidate_tag", nil, function(c) return c:invalidate_tag("x") end, "invalidate",
      { invalidations = 1 }, "invalidate" },
    { "incr_version", function(c) c:set("k", 1) end, function(c) return c:incr_version("k") end, "invalidate",
      { invalidations = 1 }, "invalidate" },
    { "get_or_set hit", function(c) c:set("g", "vv") end, function(c) return c:get_or_set("g", error) end,
      "get_or_set", { hits = 1, bytes_in = "+" }, "hit" },
    { "get_or_set miss, filled", nil, function(c) return c:get_or_set("g", function() return "vv" end) end,
      "get_or_set", { misses = 1, computes = 1, sets = 1, bytes_out = "+" }, "miss" },
    { "get_or_set with tags, filled", nil,
      function(c) return c:get_or_set("g", function() return 1 end, { tags = { "x" } }) end,
      "get_or_set", { misses = 1, computes = 1, sets = 1, bytes_out = "+" }, "miss" },
    { "get_or_set with tags, hit", function(c) c:get_or_set("g", function() return 1 end, { tags = { "x" } }) end,
      function(c) return c:get_or_set("g", error, { tags = { "x" } }) end,
      "get_or_set", { hits = 1, bytes_in = "+" }, "hit" },
    { "lock", nil, function(c) return assert(c:lock("L")):release() end, "lock", {}, "ok" },
    { "delete_pattern", function(c) c:set("p1", 1) end, function(c) return c:delete_pattern("p*") end, "delete",
      { deletes = 1 }, "delete" },
    { "clear", function(c) c:set("p1", 1) end, function(c) return c:clear() end, "delete", { deletes = 1 }, "delete" },
  }
  local COUNTERS = { "hits", "misses", "sets", "deletes", "invalidations", "errors", "stale", "waits", "computes",
                     "lock_waits", "bytes_in", "bytes_out" }

  for _, case in ipairs(EVERY_OP) do
    local name, setup, call, op, moves, status = H.unpack(case)
    it("every operation is observed: " .. name, function()
      local testing = require "hicache.testing"
      local hooked = {}
      local c = testing.cache { on_event = function(ev) hooked[#hooked + 1] = ev end }
      if setup then setup(c) end
      hooked = {}
      local rec = testing.record(c)
      local before = c:stats()
      call(c)
      local after = c:stats()
      local count = function(st) return st.ops[op] and st.ops[op].count or 0 end
      assert.equal(count(before) + 1, count(after), "ops." .. op .. ".count")
      for _, f in ipairs(COUNTERS) do
        local d, want = after[f] - before[f], moves[f] or 0
        if want == "+" then assert.is_true(d > 0, f .. " did not move")
        else assert.equal(want, d, f) end
      end
      -- the application's on_event hook and testing.record see the same one event
      assert.equal(1, #hooked, "events: " .. #hooked)
      assert.same({ op, status }, { hooked[1].op, hooked[1].status })
      assert.same({ hooked[1] }, rec.events)
    end)
  end

  it("stats = false turns the counters off", function()
    local c = H.cache { stats = false }
    c:get("x")
    assert.same({ nil, "stats are off" }, { c:stats() })
  end)
end)
