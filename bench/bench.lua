-- bench/bench.lua: round-trip cost of cache:command("PING"), side by side
-- in the same run with redis-benchmark -c 1 -P 1 (the round-trip limit on
-- one connection) and redis-lua (Debian lua-redis, pure Lua on LuaSocket).
-- Prints the median of ROUNDS runs: ops/s, wall µs/op, client CPU µs/op.
-- Usage: make bench [N=100000] [ROUNDS=5]
local hicache = require "hicache"
local posix = require "hctest" -- monotonic clock

local host, port = os.getenv("HICACHE_TEST_HOST"), tonumber(os.getenv("HICACHE_TEST_PORT"))
local N = tonumber(os.getenv("N") or arg[1]) or 100000
local ROUNDS = tonumber(os.getenv("ROUNDS") or arg[2]) or 5

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

-- redis-benchmark: its own throughput, and its CPU from bash's `times`.
local function redis_benchmark()
  local cmd = ("bash -c 'redis-benchmark -h %s -p %d -c 1 -P 1 -n %d -t ping --csv; times' 2>&1")
    :format(host, port, N)
  local out = io.popen(cmd):read("a")
  local rps = tonumber(out:match('"PING_MBULK","([%d.]+)"'))
  -- `times` prints shell then children user/sys as 0m1.234s
  local cu, cs = out:match("\n(%d+m[%d.]+s) (%d+m[%d.]+s)\n?$")
  local function secs(s) local m, x = s:match("(%d+)m([%d.]+)s"); return m * 60 + x end
  assert(rps and cu, "cannot parse redis-benchmark output:\n" .. out)
  -- it ran PING_INLINE and PING_MBULK: 2N requests in its CPU time
  return { ops = rps, cpu_us = (secs(cu) + secs(cs)) / (2 * N) * 1e6 }
end

local function measure(fn)
  local c0, t0 = os.clock(), posix.now()
  fn()
  local wall, cpu = posix.now() - t0, os.clock() - c0
  return { ops = N / wall, cpu_us = cpu / N * 1e6 }
end

local cache = assert(hicache.new { host = host, port = port })
assert(cache:command("PING") == "PONG")
local function hicache_ping()
  return measure(function()
    local command = cache.command
    for _ = 1, N do command(cache, "PING") end
  end)
end

local ok_redis_lua, redis = pcall(function()
  package.path = "/usr/share/lua/5.3/?.lua;" .. package.path
  return require "redis"
end)
local rl
if ok_redis_lua then rl = redis.connect(host, port) end
local function redis_lua_ping()
  return measure(function()
    for _ = 1, N do rl:ping() end
  end)
end

local rows = {
  { "redis-benchmark -c 1 -P 1", redis_benchmark },
  { "hicache cache:command('PING')", hicache_ping },
}
if rl then rows[#rows + 1] = { "redis-lua client:ping()", redis_lua_ping } end

local samples = {}
for i = 1, #rows do samples[i] = { ops = {}, cpu = {} } end
for _ = 1, ROUNDS do
  for i, row in ipairs(rows) do
    local r = row[2]()
    table.insert(samples[i].ops, r.ops)
    table.insert(samples[i].cpu, r.cpu_us)
  end
end

print(("PING over loopback TCP, one connection, N=%d, median of %d rounds"):format(N, ROUNDS))
print(("%-32s %12s %10s %14s %14s"):format("client", "ops/s", "µs/op", "client CPU µs", "vs limit"))
local limit = median(samples[1].ops)
for i, row in ipairs(rows) do
  local ops, cpu = median(samples[i].ops), median(samples[i].cpu)
  print(("%-32s %12.0f %10.2f %14.2f %13.2fx"):format(row[1], ops, 1e6 / ops, cpu, ops / limit))
end
if not rl then print("(redis-lua not installed: apt-get install lua-redis lua-socket)") end
local st = cache:pool_stats()
assert(st.created == 1 and st.errors == 0, "the benchmark must run on one healthy connection")
