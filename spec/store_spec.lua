-- The in-process store (src/core/hc_store.c) through its internal Lua
-- binding core.store: reads and writes, expiry and stale copies, the byte
-- and item budgets, S3-FIFO against LRU on a scan, fill marks (the L1's
-- GET-versus-invalidation race), named stores shared by Lua states, and
-- threads hammering one store. No Redis needed.
local H = require "helper"
local core = require "hicache.core"
local sleep = H.posix.sleep

local KiB = 1024

local function store(opts)
  return assert(core.store(opts))
end

local function stats(s)
  return s:stats()
end

describe("store", function()
  describe("reads and writes", function()
    local s
    before_each(function() s = store { max_bytes = 1024 * KiB } end)

    it("returns what was set as a hit, and nil alone for a missing key", function()
      assert.is_true(s:set("k", "v"))
      assert.same({ "v", "hit" }, { s:get("k") })
      assert.same(H.pack(nil), H.pack(s:get("nope")))
      local st = stats(s)
      assert.equal(1, st.hits)
      assert.equal(1, st.misses)
      assert.equal(1, st.sets)
      assert.equal(1, st.items)
    end)

    it("keeps values binary-safe and replaces them", function()
      local v = "a\0b\255" .. ("x"):rep(1000)
      assert.is_true(s:set("k\0z", v))
      assert.equal(v, (s:get("k\0z")))
      assert.is_nil(s:get("k"))
      assert.is_true(s:set("k\0z", ""))
      assert.same({ "", "hit" }, { s:get("k\0z") })
      assert.equal(1, stats(s).items)
    end)

    it("nx stores only when absent, xx only when present", function()
      assert.is_false(s:set("k", "x", nil, nil, "xx"))
      assert.is_nil(s:get("k"))
      assert.is_true(s:set("k", "1", nil, nil, "nx"))
      assert.is_false(s:set("k", "2", nil, nil, "nx"))
      assert.equal("1", (s:get("k")))
      assert.is_true(s:set("k", "3", nil, nil, "xx"))
      assert.equal("3", (s:get("k")))
    end)

    it("delete is true only when a live entry was there", function()
      assert(s:set("k", "v"))
      assert.is_true(s:delete("k"))
      assert.is_false(s:delete("k"))
      assert.is_nil(s:get("k"))
      assert.equal(1, stats(s).invalidations)
      assert.equal(0, stats(s).items)
      assert.equal(0, stats(s).bytes)
    end)

    it("flush drops everything", function()
      for i = 1, 100 do assert(s:set("k" .. i, "v" .. i)) end
      assert.equal(100, #s:keys())
      s:flush()
      assert.same({}, s:keys())
      assert.is_nil(s:get("k1"))
      local st = stats(s)
      assert.equal(0, st.items)
      assert.equal(0, st.bytes)
      assert.equal(1, st.flushes)
      assert.is_true(s:set("k1", "again"))
      assert.equal("again", (s:get("k1")))
    end)

    it("counts key + value + a fixed overhead per entry", function()
      assert(s:set("a", ("x"):rep(10)))
      local one = stats(s).bytes
      assert(s:set("bb", ("x"):rep(110)))
      assert.equal(one + 101, stats(s).bytes - one)
      assert(s:set("a", ("x"):rep(20)))
      assert.equal(2 * one + 111, stats(s).bytes)
    end)

    it("keys lists the live entries only", function()
      assert(s:set("a", "1"))
      assert(s:set("b", "2", 0.05))
      assert(s:fill_begin("c") ~= 0)
      sleep(0.1)
      assert.same({ "a" }, s:keys())
    end)
  end)

  describe("expiry", function()
    local s
    before_each(function() s = store { max_bytes = 1024 * KiB } end)

    it("an expired entry is a miss, dropped and counted when read", function()
      assert(s:set("k", "v", 0.05))
      assert(s:set("forever", "v"))
      assert.equal("v", (s:get("k")))
      sleep(0.1)
      assert.is_nil(s:get("k"))
      assert.is_nil(s:get("k", true)) -- no stale window
      local st = stats(s)
      assert.equal(1, st.expired)
      assert.equal(1, st.items)
      assert.equal("v", (s:get("forever")))
    end)

    it("serves a stale copy only with allow_stale, until its window ends", function()
      assert(s:set("k", "old", 0.05, 0.3))
      sleep(0.1)
      assert.is_nil(s:get("k"))
      assert.same({ "old", "stale" }, { s:get("k", true) })
      assert.equal(1, stats(s).stale_hits)
      assert.equal(1, stats(s).items) -- kept for stale reads
      assert.is_false(s:delete("k")) -- not live
      assert(s:set("k", "old", 0.05, 0.1))
      sleep(0.2)
      assert.is_nil(s:get("k", true))
      assert.equal(1, stats(s).expired)
      assert.equal(0, stats(s).items)
    end)

    it("nx stores over an expired entry, xx does not", function()
      assert(s:set("k", "old", 0.05, 10))
      sleep(0.1)
      assert.is_false(s:set("k", "x", nil, nil, "xx"))
      assert.is_true(s:set("k", "new", nil, nil, "nx"))
      assert.same({ "new", "hit" }, { s:get("k") })
    end)

    it("expire sets a new ttl, or none with 0; false without a live entry", function()
      assert(s:set("a", "1"))
      assert(s:set("b", "2", 0.05))
      assert.is_true(s:expire("a", 0.05))
      assert.is_true(s:expire("b", 0))
      assert.is_false(s:expire("missing", 1))
      sleep(0.1)
      assert.is_nil(s:get("a"))
      assert.equal("2", (s:get("b")))
      assert.is_false(s:expire("a", 1))
    end)
  end)

  describe("budget", function()
    for _, policy in ipairs { "s3fifo", "lru" } do
      it(policy .. ": random inserts of random sizes never exceed max_bytes", function()
        local max = 64 * KiB
        local s = store { max_bytes = max, policy = policy }
        math.randomseed(42)
        for i = 1, 5000 do
          local k = "k" .. math.random(1, 2000)
          local ok = s:set(k, ("v"):rep(math.random(0, 2000)), math.random() < 0.3 and 0.01 or nil)
          assert.is_true(ok)
          if i % 3 == 0 then s:get("k" .. math.random(1, 2000)) end
          if i % 7 == 0 then assert(s:fill_begin("k" .. math.random(1, 2000)) ~= 0) end
          local st = stats(s)
          if st.bytes > max then error(("set %d: %d bytes counted > %d"):format(i, st.bytes, max)) end
        end
        local st = stats(s)
        assert.is_true(st.evictions > 0)
        assert.is_true(st.items > 0)
      end)
    end

    it("max_items bounds the entries (per shard: max_items / 16 rounded up)", function()
      for _, n in ipairs { 32, 20 } do
        local s = store { max_bytes = 1024 * KiB, max_items = n }
        local bound = 16 * math.ceil(n / 16)
        for i = 1, 2000 do
          assert(s:set("k" .. i, "v"))
          local items = stats(s).items
          if items > bound then error(("%d items > %d (max_items %d)"):format(items, bound, n)) end
        end
        assert.is_true(stats(s).evictions > 0)
        assert.equal(n, stats(s).max_items)
      end
    end)

    it("refuses a value larger than max_bytes / 16 / 2", function()
      local s = store { max_bytes = 16 * 4 * KiB } -- 4 KiB per shard
      assert.same({ nil, "too large" }, { s:set("k", ("x"):rep(2 * KiB + 1)) })
      assert.is_nil(s:get("k"))
      assert.is_true(s:set("k", ("x"):rep(2 * KiB)))
      local t = s:fill_begin("f")
      assert.same({ nil, "too large" }, { s:fill_end("f", t, ("x"):rep(2 * KiB + 1)) })
      assert.equal(1, stats(s).items) -- the mark is gone
      assert.equal(1, stats(s).sets)
    end)
  end)

  describe("eviction", function()
    -- 200 hot keys read 4 times, then a one-off scan of 20000 cold keys
    -- (cache-aside: a miss sets), then the hot keys again.
    local function hot_after_scan(policy)
      local s = store { max_bytes = 256 * KiB, policy = policy } -- ~60 entries per shard
      local value = ("v"):rep(100)
      local function read(k)
        if not s:get(k) then assert(s:set(k, value)) end
      end
      for _ = 1, 4 do
        for i = 1, 200 do read("hot:" .. i) end
      end
      for i = 1, 20000 do read("cold:" .. i) end
      local hits = 0
      for i = 1, 200 do
        if s:get("hot:" .. i) then hits = hits + 1 end
      end
      return hits, stats(s)
    end

    it("s3fifo keeps a hot set through a one-off scan, lru loses it", function()
      local hits, st = hot_after_scan("s3fifo")
      assert.is_true(st.evictions > 15000)
      assert.equal(200, hits)
      hits, st = hot_after_scan("lru")
      assert.is_true(st.evictions > 15000)
      assert.equal(0, hits)
    end)

    it("a key evicted from small comes back straight into main (ghost)", function()
      local s = store { max_bytes = 256 * KiB }
      local value = ("v"):rep(100)
      -- s:expire(k, 0) is true while k is there, without counting a read
      assert(s:set("g", value))
      local i = 0
      repeat
        i = i + 1
        assert(s:set("cold:" .. i, value))
      until not s:expire("g", 0)
      assert.is_true(i < 5000)
      assert(s:set("g", value)) -- remembered by the ghost: into main
      -- a stream of new keys goes through small and leaves main alone
      for j = i + 1, i + 5000 do assert(s:set("cold:" .. j, value)) end
      assert.equal(value, (s:get("g")))
    end)
  end)

  describe("fills", function()
    local s
    before_each(function() s = store { max_bytes = 1024 * KiB } end)

    it("fill_begin then fill_end stores; the placeholder is a miss", function()
      local t = s:fill_begin("k")
      assert.is_true(t ~= 0)
      assert.is_nil(s:get("k"))
      assert.equal(1, stats(s).items)
      assert.is_true(s:fill_end("k", t, "v", 10))
      assert.same({ "v", "hit" }, { s:get("k") })
    end)

    it("an invalidation between begin and end: nothing stored", function()
      local t = s:fill_begin("k")
      assert.is_false(s:delete("k")) -- only a placeholder was there
      assert.is_false(s:fill_end("k", t, "v"))
      assert.is_nil(s:get("k"))
      assert.equal(1, stats(s).fills_cancelled)
      assert.equal(0, stats(s).items)
    end)

    it("a flush between begin and end: nothing stored", function()
      local t = s:fill_begin("k")
      s:flush()
      assert.is_false(s:fill_end("k", t, "v"))
      assert.is_nil(s:get("k"))
    end)

    it("a set between begin and end wins", function()
      local t = s:fill_begin("k")
      assert(s:set("k", "newer"))
      assert.is_false(s:fill_end("k", t, "older"))
      assert.equal("newer", (s:get("k")))
    end)

    it("a second fill_begin supersedes the first", function()
      local t1 = s:fill_begin("k")
      local t2 = s:fill_begin("k")
      assert.is_true(t1 ~= t2)
      assert.is_false(s:fill_end("k", t1, "first"))
      assert.is_nil(s:get("k"))
      assert.is_true(s:fill_end("k", t2, "second"))
      assert.equal("second", (s:get("k")))
    end)

    it("fill_abort drops the mark", function()
      local t = s:fill_begin("k")
      s:fill_abort("k", t)
      assert.equal(0, stats(s).items)
      assert.is_false(s:fill_end("k", t, "v"))
      assert.is_nil(s:get("k"))
    end)

    it("a fill over a stale copy keeps it readable until the fill ends", function()
      assert(s:set("k", "old", 0.05, 10))
      sleep(0.1)
      local t = s:fill_begin("k")
      assert.is_nil(s:get("k"))
      assert.same({ "old", "stale" }, { s:get("k", true) })
      s:fill_abort("k", t)
      assert.same({ "old", "stale" }, { s:get("k", true) })
      t = s:fill_begin("k")
      assert.is_true(s:fill_end("k", t, "new", 10))
      assert.same({ "new", "hit" }, { s:get("k") })
    end)

    it("tickets are unique across stores", function()
      local other = store { max_bytes = 1024 * KiB }
      local seen = {}
      for i = 1, 100 do
        for _, st in ipairs { s, other } do
          local t = st:fill_begin("k" .. i)
          assert.is_nil(seen[t])
          seen[t] = true
        end
      end
    end)
  end)

  describe("arguments", function()
    it("are checked with clear messages", function()
      local s = store { max_bytes = 1024 }
      local cases = {
        { function() core.store() end, "table expected" },
        { function() core.store {} end, "max_bytes must be an integer > 0" },
        { function() core.store { max_bytes = 0 } end, "max_bytes must be an integer > 0" },
        { function() core.store { max_bytes = 1.5 } end, "max_bytes must be an integer > 0" },
        { function() core.store { max_bytes = 10, max_items = -1 } end, "max_items must be an integer >= 0" },
        { function() core.store { max_bytes = 10, policy = "fifo" } end, 'policy must be "s3fifo" or "lru"' },
        { function() core.store { max_bytes = 10, name = "" } end, "name must be a non-empty string" },
        { function() core.store { max_bytes = 10, size = 1 } end, "unknown option 'size'" },
        { function() s:set(1, "v") end, "key must be a string" },
        { function() s:set("k", 1) end, "value must be a string" },
        { function() s:set("k", "v", -1) end, "ttl must be a number of seconds >= 0" },
        { function() s:set("k", "v", 1, "x") end, "stale must be a number of seconds >= 0" },
        { function() s:set("k", "v", 1, 1, "now") end, 'mode must be "nx" or "xx"' },
        { function() s:get(nil) end, "key must be a string" },
        { function() s:expire("k") end, "ttl must be a number of seconds >= 0" },
        { function() s:fill_end("k", "t", "v") end, "ticket must be an integer" },
        { function() s:fill_abort("k", 1.5) end, "ticket must be an integer" },
        { function() s.get({}, "k") end, "hicache.store expected" },
      }
      for i, c in ipairs(cases) do
        local ok, err = pcall(c[1])
        assert(not ok, "case " .. i .. " did not raise")
        assert(tostring(err):find(c[2], 1, true), ("case %d: %s"):format(i, tostring(err)))
      end
    end)
  end)

  describe("named stores", function()
    it("one name is one store in the process, freed with its last user", function()
      local other = store { max_bytes = 64 * KiB, name = "spec-other" }
      ;(function() -- its users' frames are gone when it returns
        local a = store { max_bytes = 64 * KiB, name = "spec-named" }
        local b = store { max_bytes = 1, name = "spec-named" } -- later options are ignored
        assert(a:set("k", "v"))
        assert.equal("v", (b:get("k")))
        assert.equal(64 * KiB, b:stats().max_bytes)
        assert.is_nil(other:get("k"))
      end)()
      collectgarbage()
      collectgarbage()
      local c = store { max_bytes = 32 * KiB, name = "spec-named" }
      assert.is_nil(c:get("k"))
      assert.equal(32 * KiB, c:stats().max_bytes)
    end)
  end)

  describe("threads", function()
    local bin = H.build .. "/hc_store_threads"

    local function run(script, threads, iters)
      local path = H.dir .. "/store_threads_" .. tostring(math.random(1e9)) .. ".lua"
      local f = assert(io.open(path, "w"))
      f:write(script)
      f:close()
      local out, code = H.shell(("%s %s %d %d"):format(bin, path, threads, iters))
      os.remove(path)
      return out, code
    end

    it("a named store is shared by Lua states on other threads", function()
      local out, code = run([[
        local core = require "hicache.core"
        local M, keep = {}, nil
        function M.setup()
          keep = assert(core.store { name = "spec-shared", max_bytes = 1048576 })
          assert(keep:set("from-main", "hello"))
        end
        function M.thread(tid)
          local s = assert(core.store { name = "spec-shared", max_bytes = 1 })
          local v = s:get("from-main")
          if v ~= "hello" then error("thread " .. tid .. " read " .. tostring(v)) end
          assert(s:set("from-" .. tid, "t" .. tid))
          return tostring(s:stats().max_bytes)
        end
        function M.check(results, n)
          for tid = 1, n do
            assert(keep:get("from-" .. tid) == "t" .. tid, "main does not see thread " .. tid)
            assert(results[tid] == "1048576", "thread " .. tid .. " got another store")
          end
          return "shared " .. #keep:keys()
        end
        return M
      ]], 4, 1)
      assert.equal(0, code, out)
      assert.equal("ok shared 5\n", out)
    end)

    it("threads hammering one store never read a wrong value, and stay in budget", function()
      local iters = H.valgrind and 2000 or (H.asan and 10000 or 30000)
      local out, code = run([[
        local core = require "hicache.core"
        local MAX = 256 * 1024
        local M, keep = {}, nil
        local function open() return assert(core.store { name = "spec-hammer", max_bytes = MAX }) end
        local function body(tid, seq, len)
          return string.rep(string.char(97 + (tid + seq) % 26), len)
        end
        local function value(key, tid, seq, len)
          return table.concat({ key, tid, seq, len, body(tid, seq, len) }, "|")
        end
        local function verify(key, v)
          local k, tid, seq, len, rest = v:match("^([^|]*)|(%d+)|(%d+)|(%d+)|(.*)$")
          if k ~= key or rest ~= body(tonumber(tid), tonumber(seq), tonumber(len)) then
            error(("wrong value for %s: %q"):format(key, v:sub(1, 60)), 0)
          end
        end
        function M.setup() keep = open() end
        function M.thread(tid, n, iters)
          local s = open()
          math.randomseed(tid * 7919)
          local gets, sets = 0, 0
          for i = 1, iters do
            local key = "k" .. math.random(1, 400)
            local op = math.random(1, 10)
            if op <= 5 then
              gets = gets + 1
              local v = s:get(key, op == 1)
              if v then verify(key, v) end
            elseif op <= 8 then
              local ttl = op == 8 and 0.002 or nil
              if s:set(key, value(key, tid, i, math.random(0, 3000)), ttl, ttl) then sets = sets + 1 end
            elseif op == 9 then
              s:delete(key)
            else
              local t = s:fill_begin(key)
              if s:fill_end(key, t, value(key, tid, i, math.random(0, 3000))) then sets = sets + 1 end
            end
            if i % 64 == 0 then
              local b = s:stats().bytes
              if b > MAX then error(("%d bytes counted > %d"):format(b, MAX), 0) end
            end
          end
          return gets .. " " .. sets
        end
        function M.check(results)
          local gets, sets = 0, 0
          for _, r in ipairs(results) do
            local g, s = r:match("^(%d+) (%d+)$")
            gets, sets = gets + tonumber(g), sets + tonumber(s)
          end
          local st = keep:stats()
          assert(st.bytes <= MAX, "over budget")
          assert(st.hits + st.misses + st.stale_hits == gets, "gets counted " ..
            (st.hits + st.misses + st.stale_hits) .. " ~= " .. gets)
          assert(st.sets == sets, "sets counted " .. st.sets .. " ~= " .. sets)
          assert(st.evictions > 0, "no eviction")
          local keys = keep:keys()
          for _, k in ipairs(keys) do
            local v = keep:get(k)
            if v then verify(k, v) end
          end
          return ("gets=%d sets=%d evictions=%d"):format(gets, sets, st.evictions)
        end
        return M
      ]], 8, iters)
      assert.equal(0, code, out)
      assert.truthy(out:match("^ok gets=%d+ sets=%d+ evictions=%d+\n$"), out)
    end)
  end)
end)
