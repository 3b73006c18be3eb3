-- bench/bench.lua: hicache side by side, in the same run, with
--   * redis-benchmark -c 1 (the round-trip limit on one connection), and
--   * redis-lua (Debian lua-redis, pure Lua on LuaSocket) with lua-cjson
--     encoding/decoding the same table value, as its users do.
-- For each operation it prints the median of ROUNDS runs: ops/s, µs/op,
-- client CPU µs/op (os.clock for Lua clients, bash `times` for
-- redis-benchmark), and the ratio to redis-benchmark.
-- Usage: make bench [N=20000] [ROUNDS=5]
local hicache = require "hicache"
local posix = require "hctest" -- monotonic clock

local host, port = os.getenv("HICACHE_TEST_HOST"), tonumber(os.getenv("HICACHE_TEST_PORT"))
local N = tonumber(os.getenv("N") or arg[1]) or 20000
local ROUNDS = tonumber(os.getenv("ROUNDS") or arg[2]) or 5
local MANY = 100

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

-- A 10-field table: what a service caches for a user profile.
local VALUE = { id = 42, name = "Ada Lovelace", email = "ada@example.com", active = true,
                score = 97.5, roles = { "admin", "dev" }, locale = "en_GB", logins = 1234,
                plan = "pro", tags = { a = 1, b = 2 } }

local cache = assert(hicache.new { host = host, port = port, prefix = "bench" })
local encoded = cache:encode(VALUE)

-- redis-benchmark: its throughput, and its CPU from bash's `times`.
local function redis_benchmark(args, n, per_op)
  local cmd = ("bash -c 'redis-benchmark -h %s -p %d -c 1 -n %d --csv %s >%s/rb.out 2>&1; times'")
    :format(host, port, n, args, os.getenv("HICACHE_TEST_DIR"))
  local times = io.popen(cmd):read("a")
  local out = io.open(os.getenv("HICACHE_TEST_DIR") .. "/rb.out"):read("a")
  local rps = tonumber(out:match('"[^"]+","([%d.]+)"'))
  local cu, cs = times:match("\n(%d+m[%d.]+s) (%d+m[%d.]+s)\n?$")
  local function secs(s) local m, x = s:match("(%d+)m([%d.]+)s"); return m * 60 + x end
  assert(rps and cu, "cannot parse redis-benchmark output:\n" .. out .. times)
  return { ops = rps / per_op, cpu_us = (secs(cu) + secs(cs)) / (n / per_op) * 1e6 }
end

local function measure(n, fn)
  local c0, t0 = os.clock(), posix.now()
  fn(n)
  local wall, cpu = posix.now() - t0, os.clock() - c0
  return { ops = n / wall, cpu_us = cpu / n * 1e6 }
end

-- redis-lua (+ lua-cjson), if installed
local rl, cjson
do
  local ok, redis = pcall(function()
    package.path = "/usr/share/lua/5.3/?.lua;" .. package.path
    return require "redis"
  end)
  local has_cjson, cj = pcall(require, "cjson")
  if ok and has_cjson then
    rl = redis.connect(host, port)
    cjson = cj
  end
end

local many_keys, many_map = {}, {}
for i = 1, MANY do
  many_keys[i] = "m" .. i
  many_map["m" .. i] = VALUE
end
cache:set("hit", VALUE, 0)
cache:set_many(many_map, 0)
cache:set("ctr", 0, 0)
local rb_key = "bench:1:hit"
local rb_mget = {}
for i = 1, MANY do rb_mget[i] = "bench:1:m" .. i end
if rl then
  rl:set("rl:hit", cjson.encode(VALUE))
  for i = 1, MANY do rl:set("rl:m" .. i, cjson.encode(VALUE)) end
  rl:set("rl:ctr", 0)
end

local ops = {
  { name = "PING (cache:command)",
    rb = function(n) return redis_benchmark("PING", n, 1) end,
    hc = function(n) local command = cache.command; for _ = 1, n do command(cache, "PING") end end,
    rl = function(n) for _ = 1, n do rl:ping() end end },
  { name = "get hit (10-field table)",
    rb = function(n) return redis_benchmark("GET " .. rb_key, n, 1) end,
    hc = function(n) local get = cache.get; for _ = 1, n do get(cache, "hit") end end,
    rl = function(n) for _ = 1, n do cjson.decode(rl:get("rl:hit")) end end },
  { name = "set (10-field table)",
    rb = function(n) return redis_benchmark(("SET bench:1:rb %q PX 300000"):format(("x"):rep(#encoded)), n, 1) end,
    hc = function(n) local set = cache.set; for _ = 1, n do set(cache, "s", VALUE, 300) end end,
    rl = function(n) for _ = 1, n do rl:set("rl:s", cjson.encode(VALUE), "PX", 300000) end end },
  { name = "get_many(100)",
    rb = function(n) return redis_benchmark("MGET " .. table.concat(rb_mget, " "), n, 1) end,
    hc = function(n) for _ = 1, n do cache:get_many(many_keys) end end,
    rl = function(n)
      local keys = {}
      for i = 1, MANY do keys[i] = "rl:m" .. i end
      for _ = 1, n do
        local vals = rl:mget(table.unpack(keys))
        for i = 1, MANY do cjson.decode(vals[i]) end
      end
    end, n = N // 20 },
  { name = "set_many(100)",
    rb = function(n) return redis_benchmark(("-P %d SET bench:1:rbm %q PX 300000"):format(MANY, ("x"):rep(#encoded)), n * MANY, MANY) end,
    hc = function(n) for _ = 1, n do cache:set_many(many_map, 300) end end,
    rl = function(n)
      for _ = 1, n do
        rl:pipeline(function(p)
          for i = 1, MANY do p:set("rl:m" .. i, cjson.encode(VALUE), "PX", 300000) end
        end)
      end
    end, n = N // 20 },
  { name = "get_or_set hit",
    rb = function(n) return redis_benchmark("GET " .. rb_key, n, 1) end,
    hc = function(n)
      local gos = cache.get_or_set
      local fn = function() return VALUE end
      for _ = 1, n do gos(cache, "hit", fn) end
    end,
    rl = function(n) for _ = 1, n do cjson.decode(rl:get("rl:hit")) end end },
  { name = "incr",
    rb = function(n) return redis_benchmark("INCR bench:1:rbctr", n, 1) end,
    hc = function(n) local incr = cache.incr; for _ = 1, n do incr(cache, "ctr") end end,
    rl = function(n) for _ = 1, n do rl:incr("rl:ctr") end end },
}

print(("hicache benchmark: loopback TCP, one connection, median of %d rounds (N=%d, many-ops N/20)"):format(ROUNDS, N))
print(("%-26s %-16s %11s %9s %9s %8s"):format("operation", "client", "ops/s", "µs/op", "CPU µs", "vs rb"))
for _, op in ipairs(ops) do
  local n = op.n or N
  local clients = { { "redis-benchmark", function() return op.rb(n) end },
                    { "hicache", function() return measure(n, op.hc) end } }
  local rl_ok, rl_err = rl ~= nil, nil
  if rl then rl_ok, rl_err = pcall(op.rl, 1) end
  if rl_ok then clients[3] = { "redis-lua+cjson", function() return measure(n, op.rl) end } end
  local s = {}
  for i = 1, #clients do s[i] = { ops = {}, cpu = {} } end
  for _ = 1, ROUNDS do
    for i, cl in ipairs(clients) do
      local r = cl[2]()
      table.insert(s[i].ops, r.ops)
      table.insert(s[i].cpu, r.cpu_us)
    end
  end
  local limit = median(s[1].ops)
  for i, cl in ipairs(clients) do
    local o, cpu = median(s[i].ops), median(s[i].cpu)
    print(("%-26s %-16s %11.0f %9.2f %9.2f %7.2fx"):format(i == 1 and op.name or "", cl[1], o, 1e6 / o, cpu, o / limit))
  end
  if rl and not rl_ok then
    print(("%-26s %-16s %s"):format("", "redis-lua+cjson", "n/a: " .. tostring(rl_err):match("[^\n]*")))
  end
end
if not rl then print("(redis-lua not installed: apt-get install lua-redis lua-socket lua-cjson)") end

-- ---- locks and the cold key, against django-redis ------------------------------
local admin = assert(hicache.new { host = host, port = port })
local function commands()
  return tonumber(admin:command("INFO", "stats"):match("total_commands_processed:(%d+)"))
end
local peer = ("HICACHE_TEST_HOST=%s HICACHE_TEST_PORT=%d /usr/bin/python3 bench/django_peer.py"):format(host, port)
local have_django = os.execute("/usr/bin/python3 -c 'import django_redis' 2>/dev/null")

local function lock_round()
  local n = N // 4
  local before = commands()
  local t0 = posix.now()
  for _ = 1, n do
    local l = assert(cache:lock("benchlock", { ttl = 10 }))
    l:release()
  end
  local dt = posix.now() - t0
  return n / dt, (commands() - before - 1) / n
end

local function median_of(fn)
  local a, b = {}, {}
  for i = 1, ROUNDS do a[i], b[i] = fn() end
  return median(a), median(b)
end

print()
print(("lock acquire + release, one process, median of %d rounds"):format(ROUNDS))
local lops, lcmds = median_of(lock_round)
print(("  hicache cache:lock():release()   %8.0f ops/s  %5.2f Redis commands per op"):format(lops, lcmds))
print("    (commands run inside scripts count; hicache: 2 round trips per op)")
if have_django then
  local dj = {}
  for i = 1, ROUNDS do dj[i] = io.popen(peer .. " lock " .. (N // 4)):read("a") end
  local ops, cmds = {}, {}
  for i, line in ipairs(dj) do
    ops[i] = tonumber(line:match("ops=(%d+)"))
    cmds[i] = tonumber(line:match("cmds=([%d.]+)"))
  end
  print(("  django-redis cache.lock()        %8.0f ops/s  %5.2f Redis commands per op"):format(median(ops), median(cmds)))
  print(("  ratio hicache / django-redis      %7.2fx"):format(lops / median(ops)))
end

-- 50 processes call get_or_set on one cold key at once; fn takes 200 ms.
local PROCS = 50
local function hicache_cold(round)
  local key = "cold" .. round
  cache:delete(key)
  admin:command("DEL", "bench:computations", "bench:lat")

  local go = "bench:go"
  local pids = {}
  for i = 1, PROCS do
    local pid = posix.fork()
    if pid == 0 then
      local c = assert(hicache.new { host = host, port = port, prefix = "bench" })
      local a = assert(hicache.new { host = host, port = port })
      local conn = assert(c:reserve())
      conn:set_timeout(60)
      conn:command("BLPOP", go, 30)
      conn:release()
      local t0 = posix.now()
      c:get_or_set(key, function()
        a:command("INCR", "bench:computations")
        posix.sleep(0.2)
        return VALUE
      end)
      a:command("RPUSH", "bench:lat", posix.now() - t0)
      posix._exit(0)
    end
    pids[i] = pid
  end
  posix.sleep(1)
  local before = commands()
  local push = { "RPUSH", go }
  for i = 1, PROCS do push[#push + 1] = "1" end
  admin:command(table.unpack(push))
  for _, pid in ipairs(pids) do posix.waitpid(pid) end
  local after = commands()
  local lat = admin:command("LRANGE", "bench:lat", 0, -1)
  for i = 1, #lat do lat[i] = tonumber(lat[i]) * 1000 end
  table.sort(lat)
  -- the spec's own bookkeeping (INCR, RPUSH of the latency) is not counted
  local cmds = after - before - 1 - PROCS - tonumber(admin:command("GET", "bench:computations"))
  return tonumber(admin:command("GET", "bench:computations")), lat[#lat // 2], lat[math.min(#lat, math.ceil(#lat * 0.99))], cmds
end

print()
print(("%d processes, one cold key, fn = 200 ms (median of %d rounds)"):format(PROCS, ROUNDS))
print(("  %-28s %13s %9s %9s %14s"):format("client", "computations", "p50 ms", "p99 ms", "Redis commands"))
local hc = { {}, {}, {}, {} }
for r = 1, ROUNDS do
  local a, b, cc, d = hicache_cold(r)
  hc[1][r], hc[2][r], hc[3][r], hc[4][r] = a, b, cc, d
end
print(("  %-28s %13d %9.1f %9.1f %14d"):format("hicache get_or_set", median(hc[1]), median(hc[2]), median(hc[3]), median(hc[4])))
if have_django then
  local dj = { {}, {}, {}, {} }
  for r = 1, ROUNDS do
    local line = io.popen(peer .. " coldkey " .. PROCS .. " cold" .. r):read("a")
    dj[1][r] = tonumber(line:match("computations=(%d+)"))
    dj[2][r] = tonumber(line:match("p50=([%d.]+)"))
    dj[3][r] = tonumber(line:match("p99=([%d.]+)"))
    dj[4][r] = tonumber(line:match("cmds=(%d+)"))
  end
  print(("  %-28s %13d %9.1f %9.1f %14d"):format("django-redis get_or_set", median(dj[1]), median(dj[2]), median(dj[3]), median(dj[4])))
end
admin:command("DEL", "bench:computations", "bench:lat")

local st = cache:pool_stats()
assert(st.errors == 0, "the benchmark must run on healthy connections")
cache:clear()

-- ---- issue 5: memoize, tags, stats ----------------------------------------------
local nostats = assert(hicache.new { host = host, port = port, prefix = "bench", stats = false })
local memo = cache:memoize(function(id) return VALUE, id end, { name = "bench_memo", ttl = 300 })
memo(1)
cache:set("tagged", VALUE, 300, { tags = { "user:1", "org:1" } })
local TAGS = { tags = { "user:1", "org:1" } }
local function timed(n, fn)
  collectgarbage("collect")
  local c0, t0 = os.clock(), posix.now()
  fn(n)
  return n / (posix.now() - t0), (os.clock() - c0) / n * 1e6
end
local rows2 = {
  { "get hit, stats on (default)", function(n) for _ = 1, n do cache:get("hit") end end },
  { "get hit, stats off", function(n) for _ = 1, n do nostats:get("hit") end end },
  { "memoize hit", function(n) for _ = 1, n do memo(1) end end },
  { "tagged get hit (2 tags)", function(n) for _ = 1, n do cache:get("tagged", nil, TAGS) end end },
}
-- Prints a table of rows {name, fn}: medians, and each row against the first.
local function table_of(title, vs, rows)
  print()
  print(("%s (N=%d, median of %d rounds)"):format(title, N, ROUNDS))
  print(("  %-42s %11s %9s %9s %14s"):format("operation", "ops/s", "µs/op", "CPU µs", "vs " .. vs))
  local base
  for _, row in ipairs(rows) do
    local o, c = {}, {}
    for r = 1, ROUNDS do o[r], c[r] = timed(N, row[2]) end
    local ops = median(o)
    base = base or ops
    print(("  %-42s %11.0f %9.2f %9.2f %13.2fx"):format(row[1], ops, 1e6 / ops, median(c), ops / base))
  end
end
table_of("memoize, tags and stats", "get (stats on)", rows2)

-- invalidate_tag: the same cost for 100 entries as for 100,000 (one real
-- tagged entry, copied with DUMP/RESTORE)
local function tag_entries(tag, n)
  assert(cache:set("t" .. tag .. "1", "x", 600, { tags = { tag } }))
  local dump = admin:command("DUMP", "bench:1:t" .. tag .. "1")
  for i = 2, n, 1000 do
    local cmds = {}
    for j = i, math.min(i + 999, n) do cmds[#cmds + 1] = { "RESTORE", "bench:1:t" .. tag .. j, 600000, dump } end
    admin:pipeline(cmds)
  end
end
tag_entries("small", 100)
tag_entries("big", 100000)
assert(cache:invalidate_tag("warm-up")) -- loads the script
local function time_invalidate(tag)
  local t = {}
  for r = 1, ROUNDS do
    assert(cache:set("t" .. tag .. "0", "x", 600, { tags = { tag } })) -- the tag key again
    local t0 = posix.now()
    assert(cache:invalidate_tag(tag))
    t[r] = (posix.now() - t0) * 1e6
  end
  return median(t)
end
print()
print(("invalidate_tag: %.1f µs with 100 tagged entries, %.1f µs with 100,000 (median of %d)"):format(
  time_invalidate("small"), time_invalidate("big"), ROUNDS))

-- ---- issue 8: what the no-stale write path costs ------------------------------
-- Every write is an item of the WRITE script (SET + the lease revocation):
-- set against a plain SET of the same bytes, on the same connection pool.
local bytes = cache:encode(VALUE)
local raw_set = { "SET", "bench:1:raw", bytes, "PX", "300000" }
cache:set("tagged", VALUE, 300, { tags = { "user:1", "org:1" } })
local rows3 = {
  { "SET (cache:command, no lease revocation)", function(n) for _ = 1, n do cache:command(table.unpack(raw_set)) end end },
  { "set (WRITE script: SET + revocation)", function(n) for _ = 1, n do cache:set("s", VALUE, 300) end end },
  { "set with 2 tags (tokens + WRITE)", function(n) for _ = 1, n do cache:set("st", VALUE, 300, TAGS) end end },
  { "delete (WRITE script)", function(n) for _ = 1, n do cache:delete("nothing") end end },
  { "get hit of a tagged entry, no tags named", function(n) for _ = 1, n do cache:get("tagged") end end },
}
table_of("the write path", "SET", rows3)

-- clear() over a namespace of 10,000 entries among 100,000 other keys
local others = {}
for i = 1, 100000, 1000 do
  local cmds = {}
  for j = i, i + 999 do cmds[#cmds + 1] = { "SET", "benchother:" .. j, "x" } end
  admin:pipeline(cmds)
  others[#others + 1] = i
end
local ct = {}
for r = 1, ROUNDS do
  for i = 1, 10000, 1000 do
    local part = {}
    for j = i, i + 999 do part["c" .. j] = j end
    cache:set_many(part, 300)
  end
  local t0 = posix.now()
  local n = assert(cache:clear())
  ct[r] = (posix.now() - t0) * 1000
  assert(n >= 10000, n)
end
for _, i in ipairs(others) do
  local del = { "UNLINK" }
  for j = i, i + 999 do del[#del + 1] = "benchother:" .. j end
  admin:command(table.unpack(del))
end
print(("clear() of 10,000 entries among 110,000 keys: %.1f ms (median of %d)"):format(median(ct), ROUNDS))
cache:clear()
