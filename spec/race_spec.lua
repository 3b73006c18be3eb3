-- The no-stale race suite: for every write and invalidation path, real
-- reader processes race real writer processes on one key of a real Redis.
--
-- The "database" is a version number in Redis. A fill (get_or_set,
-- memoize) reads it, then takes 0-30 ms. A writer bumps it, then writes
-- or invalidates the cache by the path under test, then raises the floor:
-- from then on no read that starts may return an older version. A read
-- that returns less than the floor it saw when it started is stale.
-- 30,000 other keys sit in the database so that SCAN takes realistic time.
-- The key rotates every 100 ms ("rec:<window>"), so first fills race the
-- writers too; a writer acts on the key of the window it is in (a later
-- window's fills all start after its write, an earlier one is never read
-- again). Every path must give 0 stale reads; the table of reads, writes
-- and fills is printed at the end (HICACHE_RACE_SECONDS: time per path).
local H = require "helper"
local posix = H.posix

local SECONDS = tonumber(os.getenv("HICACHE_RACE_SECONDS")) or (H.valgrind and 0.4 or 2.2)
local READERS = 6          -- the last two only read (get / peek), the others fill
local CTL = "racectl:"     -- the harness's keys, outside every cache namespace
local TAG = "race:t"
local OTHER_KEYS = H.valgrind and 3000 or 30000

local rows = {}

local function coin() return math.random() < 0.5 end
local function key() return "rec:" .. math.floor(posix.now() * 10) end

-- The scenarios: how readers read (`read`), and what a writer does after
-- bumping the database (`write`, returning true when the floor may rise).
-- `sign = -1`: the database counts down (decr). Paths that write a value
-- have one writer: two would store their versions in either order.
local scenarios = {
  { "set (half the writes delete)", read = "gos", writers = 1, write = function(x, ver)
      if coin() then return x.cc:set(x.k, ver, 60) == true end
      return x.cc:delete(x.k) ~= nil
    end },
  { "set_many (half the writes delete)", read = "gos", writers = 1, write = function(x, ver)
      if coin() then return x.cc:set_many({ [x.k] = ver, other = ver }, 60) ~= nil end
      return x.cc:delete(x.k) ~= nil
    end },
  { "add (half the writes delete)", read = "gos", writers = 1, write = function(x, ver)
      if coin() then return x.cc:add(x.k, ver, 60) == true end  -- an add that stored nothing is no write
      return x.cc:delete(x.k) ~= nil
    end },
  { "incr", read = "gos", writers = 1, write = function(x)
      local _, err = x.cc:incr(x.k)
      return err == nil or err == "not found"
    end },
  { "decr", read = "gos", writers = 1, sign = -1, write = function(x)
      local _, err = x.cc:decr(x.k)
      return err == nil or err == "not found"
    end },
  { "delete", read = "gos", write = function(x) return x.cc:delete(x.k) ~= nil end },
  { "delete_many", read = "gos", write = function(x) return x.cc:delete_many({ x.k, "other" }) ~= nil end },
  { "delete_pattern(\"re*\")", read = "gos", write = function(x) return x.cc:delete_pattern("re*") ~= nil end },
  { "clear()", read = "gos", write = function(x) return x.cc:clear() ~= nil end },
  { "invalidate", read = "gos", write = function(x) return x.cc:invalidate(x.k) == true end },
  { "incr_version", read = "gos", write = function(x)
      local _, err = x.cc:incr_version(x.k)
      return err == nil or err == "not found"
    end },
  { "batch:commit", read = "gos", write = function(x)
      local b = x.cc:batch()
      b:invalidate(x.k)
      return b:commit() ~= nil
    end },
  { "on_write writer", read = "gos", write = function(x) return x.writer() ~= nil end },
  { "invalidate_tag (tagged readers)", read = "tagged", write = function(x)
      return x.cc:invalidate_tag(TAG) == true
    end },
  { "delete/invalidate of a tagged entry", read = "tagged", write = function(x)
      if coin() then return x.cc:delete(x.k) ~= nil end
      return x.cc:invalidate(x.k) == true
    end },
  { "set with tags (half the writes delete)", read = "tagged", writers = 1, write = function(x, ver)
      if coin() then return x.cc:set(x.k, ver, 60, { tags = { TAG } }) == true end
      return x.cc:delete(x.k) ~= nil
    end },
  { "memoize:invalidate", read = "memo", write = function(x) return x.memo:invalidate(x.k) == true end },
  { "memoize with tags:invalidate", read = "memo_tags", write = function(x)
      return x.memo_tags:invalidate(x.k) == true
    end },
  { "memoize with tags + invalidate_tag", read = "memo_tags", write = function(x)
      return x.cc:invalidate_tag(TAG) == true
    end },
}

describe("no stale read after a write returns (race suite)", function()
  local admin
  setup(function()
    admin = H.admin()
    for from = 1, OTHER_KEYS, 1000 do
      local cmds = {}
      for i = from, math.min(from + 999, OTHER_KEYS) do cmds[#cmds + 1] = { "SET", "racefill:" .. i, "x" } end
      assert(admin:pipeline(cmds))
    end
  end)

  teardown(function()
    for from = 1, OTHER_KEYS, 1000 do
      local keys = { "UNLINK" }
      for i = from, math.min(from + 999, OTHER_KEYS) do keys[#keys + 1] = "racefill:" .. i end
      admin:command(H.unpack(keys))
    end
    io.write(("\nrace suite: %d readers (%d fill, 2 read), writers as listed, %.1f s per path, %d other keys\n")
      :format(READERS, READERS - 2, SECONDS, OTHER_KEYS))
    io.write(("%-40s %8s %7s %6s %6s\n"):format("path", "reads", "writes", "fills", "stale"))
    for _, r in ipairs(rows) do
      io.write(("%-40s %8d %7d %6d %6d\n"):format(r.path, r.reads, r.writes, r.fills, r.stale))
    end
  end)

  for _, s in ipairs(scenarios) do
    local path = s[1]
    it(path, function()
      local writers, sign = s.writers or 2, s.sign or 1
      local ctl = {}
      for _, k in ipairs { "db", "floor", "reads", "writes", "fills", "stale", "stop", "samples" } do
        ctl[k] = CTL .. k
        admin:command("DEL", ctl[k])
      end
      admin:command("SET", ctl.db, 0)
      admin:command("SET", ctl.floor, -1e15)
      admin:command("SET", ctl.stop, 0)
      local cleaner = H.cache { prefix = "race" }
      cleaner:clear()

      local codes = H.fork_all(READERS + writers, function(i)
        math.randomseed(posix.getpid() * 7919 + i)
        local a = H.cache()                       -- the "database" connection
        local cc = H.cache { prefix = "race", timeout = 5 }
        local fills = 0
        local function load()                     -- a fill: read the database, then be slow
          fills = fills + 1
          local v = tonumber(a:command("GET", ctl.db))
          posix.sleep(math.random() * 0.03)
          return v
        end
        local x = { cc = cc }
        x.writer = cc:on_write(function() end, { keys = function() return x.k end })
        x.memo = cc:memoize(function() return load() end, { name = "racef", ttl = 60 })
        x.memo_tags = cc:memoize(function() return load() end, { name = "racet", ttl = 60, tags = { TAG } })
        local memo_tags = x.memo_tags
        local reads, stale = 0, 0
        if i > READERS then
          local ok, err = pcall(function()
            local deadline = posix.now() + SECONDS
            local writes = 0
            while posix.now() < deadline do
              local ver = a:command(sign < 0 and "DECR" or "INCR", ctl.db) * sign
              x.k = key()
              if s.write(x, ver * sign) then
                a:command("EVAL", "if tonumber(redis.call('GET', KEYS[1])) < tonumber(ARGV[1]) then "
                  .. "redis.call('SET', KEYS[1], ARGV[1]) end", 1, ctl.floor, ver)
              end
              writes = writes + 1
              if coin() then posix.sleep(math.random() * 0.003) end
            end
            a:command("INCRBY", ctl.writes, writes)
          end)
          a:command("INCR", ctl.stop)            -- counted as done even if it failed
          assert(ok, err)
        else
          local kind = i <= READERS - 2 and s.read or "peek"
          local gos = { ttl = 60, lease_ttl = 5 }
          local tagged = { ttl = 60, lease_ttl = 5, tags = { TAG } }
          while tonumber(a:command("GET", ctl.stop)) < writers do
            local floor = tonumber(a:command("GET", ctl.floor))
            local v, k = nil, key()
            if kind == "gos" then v = cc:get_or_set(k, load, gos)
            elseif kind == "tagged" then v = cc:get_or_set(k, load, tagged)
            elseif kind == "memo" then v = x.memo(k)
            elseif kind == "memo_tags" then v = memo_tags(k)
            elseif s.read == "memo" then v = x.memo:peek(k)
            elseif s.read == "memo_tags" then v = memo_tags:peek(k)
            elseif s.read == "tagged" then v = cc:get(k, nil, { tags = { TAG } })
            else v = cc:get(k) end
            if H.mtype(v) == "integer" then
              reads = reads + 1
              if v * sign < floor then
                stale = stale + 1
                if stale <= 5 then a:command("RPUSH", ctl.samples, ("%s read %d < floor %d"):format(kind, v * sign, floor)) end
              end
            end
          end
          a:command("INCRBY", ctl.reads, reads)
          a:command("INCRBY", ctl.stale, stale)
        end
        a:command("INCRBY", ctl.fills, fills)
      end)
      H.all_zero(codes)
      local function n(k) return tonumber(admin:command("GET", ctl[k])) or 0 end
      rows[#rows + 1] = { path = path, reads = n "reads", writes = n "writes", fills = n "fills", stale = n "stale" }
      cleaner:clear()
      cleaner:invalidate_tag(TAG)
      local samples = admin:command("LRANGE", ctl.samples, 0, -1)
      assert.is_true(n "writes" > 0 and n "reads" > 0, "no traffic")
      assert.equal(0, n "stale", table.concat(samples, "; "))
    end)
  end
end)
