-- bench/l1.lua: the L1 near cache (make bench; spec/run.sh --exec lua5.4
-- bench/l1.lua). Same run, side by side:
--  1. get hit of a 10-field table: L1 hit vs a Redis get hit (no L1) vs a
--     pure-Lua LRU of decoded tables (bench/lru.lua, lua-resty-lrucache's
--     shape), ops/s median of 5;
--  2. get hit with L1 enabled but the key outside its families vs a plain
--     get (the cost of having L1), interleaved, median of 5;
--  3. the invalidation window across two processes: A writes a new value,
--     B (with L1) spins on get; window = B first sees it - A's write
--     returned (both on the monotonic clock), p50/p99 over 300 writes.
package.path = "bench/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local hicache = require("hicache")
local core = require("hicache.core")
local common = dofile("bench/common.lua")
local LRU = require("lru")

local host = os.getenv("HICACHE_TEST_HOST") or "127.0.0.1"
local port = tonumber(os.getenv("HICACHE_TEST_PORT") or "6379")
local now = core.now

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local function rate(n, fn)
  local t0 = now()
  fn(n)
  return n / (now() - t0)
end

local function med5(n, fn)
  local r = {}
  for i = 1, 5 do r[i] = rate(n, fn) end
  return median(r)
end

-- Placement as bench.lua's (BENCH_PIN=same, the default): redis-server and
-- this process on the last CPU for parts 1 and 2 (a wake-up across vCPUs
-- costs more than the round trip); part 3 runs unpinned (a reader that
-- spins on one CPU with the server would measure the scheduler).
local PIN = os.getenv("BENCH_PIN") or "same"
local ncpu = tonumber(io.popen("nproc 2>/dev/null"):read("a"):match("%d+") or "") or 1
local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end
local function server_pid()
  local f = io.open((os.getenv("HICACHE_TEST_DIR") or "") .. "/redis.pid")
  local pid = f and f:read("a"):match("%d+")
  if f then f:close() end
  return pid
end
local function pin(cpus)
  local srv = server_pid()
  if PIN == "none" or not srv then return false end
  return os.execute(("taskset -a -pc %s %s >/dev/null 2>&1 && taskset -a -pc %s %s >/dev/null 2>&1")
    :format(cpus, srv, cpus, self_pid())) and true or false
end
local pinned = pin(tostring(ncpu - 1))
print(pinned and ("(parts 1-2: redis-server and this process on CPU %d)\n"):format(ncpu - 1)
      or "(not pinned)\n")

local V = common.VALUE
local plain = assert(hicache.new { host = host, port = port, prefix = "l1b" })
local l1 = assert(hicache.new { host = host, port = port, prefix = "l1b", l1 = { ttl = 60 } })
local l1f = assert(hicache.new { host = host, port = port, prefix = "l1b",
                                 l1 = { ttl = 60, families = { "user" } } })
assert(plain:set("hit", V, 0))
for _ = 1, 500 do -- the invalidation connection subscribes in the background
  if l1:pool_stats().l1.tracking then break end
  core.sleep(0.01)
end
assert(l1:get("hit"))

local lru = LRU.new(1000, os.time)
lru:set("hit", l1:decode(l1:encode(V)), 60)

local N_L1, N_REDIS = 500000, 20000
local r_l1 = med5(N_L1, function(n) local g = l1.get; for _ = 1, n do g(l1, "hit") end end)
local r_lru = med5(N_L1, function(n) for _ = 1, n do lru:get("hit") end end)
local r_redis = med5(N_REDIS, function(n) for _ = 1, n do plain:get("hit") end end)
assert(l1:pool_stats().l1.hits >= 5 * N_L1, "the L1 hits were not L1 hits")

print("## L1 near cache (get hit of a 10-field table, ops/s, median of 5)\n")
print("| path | ops/s | vs L1 |")
print("| --- | ---: | ---: |")
print(("| hicache get, L1 hit | %.0f | 1.00x |"):format(r_l1))
print(("| pure-Lua LRU of decoded tables (bench/lru.lua) | %.0f | %.2fx |"):format(r_lru, r_lru / r_l1))
print(("| hicache get, Redis hit (no L1) | %.0f | %.3fx |"):format(r_redis, r_redis / r_l1))
print(("\nL1 hit / Redis hit = %.1fx; L1 hit / pure-Lua LRU = %.2fx\n"):format(r_l1 / r_redis, r_l1 / r_lru))

-- 2. L1 enabled, key outside its families: what having L1 costs a get
local a, b = {}, {}
for i = 1, 5 do
  a[i] = rate(N_REDIS, function(n) for _ = 1, n do plain:get("hit") end end)
  b[i] = rate(N_REDIS, function(n) for _ = 1, n do l1f:get("hit") end end)
end
local pa, pb = median(a), median(b)
print("## get hit with L1 enabled but the key not kept in L1 (ops/s, median of 5, interleaved)\n")
print("| path | ops/s | cost vs plain get |")
print("| --- | ---: | ---: |")
print(("| plain get | %.0f | 1.00x |"):format(pa))
print(("| get, L1 on, key outside l1.families | %.0f | %.3fx |\n"):format(pb, pa / pb))

-- 3. the invalidation window across two processes
if pinned then pin("0-" .. (ncpu - 1)) end
local WRITES = 300
local out = os.tmpname()
local lua = os.getenv("LUA") or "lua5.4"
local reader = ([[
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local hicache, core = require("hicache"), require("hicache.core")
local c = assert(hicache.new { host = %q, port = %d, prefix = "l1w", l1 = { ttl = 60 } })
for _ = 1, 500 do if c:pool_stats().l1.tracking then break end; core.sleep(0.01) end
local f = assert(io.open(%q, "w"))
f:write("ready\n"); f:flush()
local last, seen = -1, 0
while seen < %d do
  local v = c:get("w")
  if v and v ~= last then f:write(("%%d %%.9f\n"):format(v, core.now())); last = v; seen = seen + 1 end
end
f:close()
]]):format(host, port, out, WRITES)
local writer = assert(hicache.new { host = host, port = port, prefix = "l1w" })
assert(writer:set("w", 0))
local script = os.tmpname()
local sf = assert(io.open(script, "w")); sf:write(reader); sf:close()
local proc = assert(io.popen(lua .. " " .. script, "r"))
repeat
  local f = io.open(out); local t = f and f:read("a") or ""; if f then f:close() end
  core.sleep(0.01)
until t:find("ready")
local done = {}
for i = 1, WRITES do
  core.sleep(0.005 + math.random() * 0.005)
  assert(writer:set("w", i))
  done[i] = now()
end
proc:close()
local f = assert(io.open(out))
local lat = {}
for line in f:lines() do
  local i, t = line:match("^(%d+) ([%d.]+)$")
  if i and done[tonumber(i)] then lat[#lat + 1] = (tonumber(t) - done[tonumber(i)]) * 1000 end
end
f:close()
os.remove(out); os.remove(script)
table.sort(lat)
local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] end
print("## invalidation window across two processes (ms: A's set returned -> B's L1 serves the new value)\n")
print("| writes seen | p50 | p99 | max |")
print("| ---: | ---: | ---: | ---: |")
print(("| %d of %d | %.3f | %.3f | %.3f |\n"):format(#lat, WRITES, pct(0.5), pct(0.99), lat[#lat]))
