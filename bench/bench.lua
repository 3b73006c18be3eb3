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
  if ok then
    rl = redis.connect(host, port)
    cjson = require "cjson"
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
local st = cache:pool_stats()
assert(st.errors == 0, "the benchmark must run on healthy connections")
cache:clear()
