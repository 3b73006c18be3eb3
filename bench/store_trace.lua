-- bench/store_trace.lua: the in-process store (src/core/hc_store.c,
-- through the internal binding core.store) on a deterministic trace, and
-- its memory and speed.
--
--   LUA_CPATH="build/?.so;;" lua5.4 bench/store_trace.lua
--
-- 1. Hit ratio, S3-FIFO against LRU: Zipf-distributed reads (100k keys,
--    s = 0.99, values of mixed sizes) with a one-off scan of 200k cold
--    keys in the middle; a miss sets the key (cache-aside). Printed for
--    three cache sizes: over the whole trace and over the 100k reads
--    right after the scan (where a policy that let the scan flush its hot
--    set pays).
-- 2. Memory: RSS (VmRSS of /proc/self/status) before and after filling a
--    64 MiB store with small entries until it has evicted as many as it
--    holds, against the bytes the store counts.
-- 3. Speed from Lua: get (hit) and set ops/s, median of ROUNDS (default 5).
-- No Redis needed. Deterministic: math.randomseed with fixed seeds.
local core = require "hicache.core"

local ROUNDS = tonumber(os.getenv("ROUNDS") or "") or 5
local MiB = 1024 * 1024

-- ---- memory (each row in a fresh process: `store_trace.lua memory SIZE`) ----

local function rss()
  local f = assert(io.open("/proc/self/status"))
  local kb = tonumber(f:read("a"):match("VmRSS:%s*(%d+)"))
  f:close()
  return kb * 1024
end

local function memory_row(vsize)
  collectgarbage()
  collectgarbage()
  local before = rss()
  local s = assert(core.store { max_bytes = 64 * MiB })
  local v = ("x"):rep(vsize)
  local i = 0
  -- fill, then as many again through eviction (the ghost fills too)
  while true do
    for _ = 1, 50000 do
      i = i + 1
      s:set(("key:%012d"):format(i), v)
    end
    collectgarbage("step", 0)
    local st = s:stats()
    if st.evictions >= st.items then break end
  end
  collectgarbage()
  collectgarbage()
  local st = s:stats()
  local grown = rss() - before
  return ("| 16 B | %d B | %d | %.1f MiB | %.1f MiB | %.2f | %.0f B |"):format(vsize, st.items,
    st.bytes / MiB, grown / MiB, grown / st.bytes, grown / st.items)
end

if arg and arg[1] == "memory" then
  print(memory_row(tonumber(arg[2])))
  return
end

local memory_rows = {}
for _, vsize in ipairs { 16, 100, 1000 } do
  local cmd = ("%s %s memory %d"):format(arg[-1], arg[0], vsize)
  local f = assert(io.popen(cmd))
  memory_rows[#memory_rows + 1] = f:read("a"):gsub("\n$", "")
  f:close()
end

-- ---- the trace --------------------------------------------------------

local KEYS = 100000
local S = 0.99
local BEFORE, SCAN, AFTER = 600000, 200000, 600000
local AFTER_WINDOW = 100000

-- Zipf(s) over ranks 1..KEYS: the cumulative weights, searched by bisection.
local cdf = {}
do
  local sum = 0
  for i = 1, KEYS do
    sum = sum + 1 / i ^ S
    cdf[i] = sum
  end
  for i = 1, KEYS do cdf[i] = cdf[i] / sum end
end
local function zipf(u)
  local lo, hi = 1, KEYS
  while lo < hi do
    local mid = (lo + hi) // 2
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- Value sizes, fixed per key (a hash of the rank, not its popularity):
-- 60% 50-200 bytes, 30% 200-1000, 10% 1000-4000. One string per size.
local values = {}
local function value_of(rank)
  local h = (rank * 2654435761) % 4294967296
  local r = h % 100
  h = h // 100
  local size = r < 60 and 50 + h % 151 or r < 90 and 200 + h % 801 or 1000 + h % 3001
  local v = values[size]
  if not v then
    v = ("v"):rep(size)
    values[size] = v
  end
  return v
end

-- The trace as key ranks (0 < rank <= KEYS: Zipf; rank > KEYS: cold).
local trace = {}
do
  math.randomseed(12345)
  local n = 0
  for _ = 1, BEFORE do n = n + 1; trace[n] = zipf(math.random()) end
  for i = 1, SCAN do n = n + 1; trace[n] = KEYS + i end
  for _ = 1, AFTER do n = n + 1; trace[n] = zipf(math.random()) end
end

local footprint = 0 -- what the store would count for every Zipf key
for rank = 1, KEYS do footprint = footprint + #("k" .. rank) + #value_of(rank) + 128 end

local function run_trace(policy, max_bytes)
  local s = assert(core.store { max_bytes = max_bytes, policy = policy })
  local hits, after_hits = 0, 0
  local after_from, after_to = BEFORE + SCAN + 1, BEFORE + SCAN + AFTER_WINDOW
  for i = 1, #trace do
    local rank = trace[i]
    local key = "k" .. rank
    if s:get(key) then
      hits = hits + 1
      if i >= after_from and i <= after_to then after_hits = after_hits + 1 end
    else
      s:set(key, rank > KEYS and values[100] or value_of(rank))
    end
  end
  return hits / #trace, after_hits / AFTER_WINDOW
end
values[100] = ("v"):rep(100) -- the cold keys' value

print("## hicache in-process store: S3-FIFO vs LRU")
print()
print(("Trace: %d reads: %dk Zipf (s = %.2f over %dk keys, values 50 B-4 KB), a one-off scan of " ..
  "%dk cold keys, %dk Zipf again; a miss sets the key. All Zipf keys would take %.0f MiB (as counted).")
  :format(#trace, BEFORE // 1000, S, KEYS // 1000, SCAN // 1000, AFTER // 1000, footprint / MiB))
print()
print("| cache size | policy | hit ratio (whole trace) | hit ratio (100k reads after the scan) |")
print("| --- | --- | --- | --- |")
for _, mb in ipairs { 4, 16, 48 } do
  for _, policy in ipairs { "s3fifo", "lru" } do
    local all, after = run_trace(policy, mb * MiB)
    print(("| %d MiB (%.0f%%) | %s | %.2f%% | %.2f%% |"):format(mb, 100 * mb * MiB / footprint, policy,
      100 * all, 100 * after))
  end
end
trace = nil
collectgarbage()
collectgarbage()


print()
print("## Memory: a 64 MiB store (HC_STORE_OVERHEAD = 128 B counted per entry), filled twice over")
print()
print("| key | value | items held | bytes counted | RSS growth | RSS / counted | RSS per entry |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for _, row in ipairs(memory_rows) do print(row) end

-- ---- speed ------------------------------------------------------------------

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local N = 200000
local keys = {}
for i = 1, N do keys[i] = "key:" .. i end
local v100 = ("v"):rep(100)
local set_rates, get_rates = {}, {}
for r = 1, ROUNDS do
  local s = assert(core.store { max_bytes = 256 * MiB })
  local t0 = core.now()
  for i = 1, N do s:set(keys[i], v100) end
  local t1 = core.now()
  for i = 1, N do s:get(keys[i]) end
  local t2 = core.now()
  set_rates[r] = N / (t1 - t0)
  get_rates[r] = N / (t2 - t1)
  s:flush()
  collectgarbage()
end
print()
print(("## Speed from Lua (%d keys, 100 B values, median of %d)"):format(N, ROUNDS))
print()
print("| operation | ops/s |")
print("| --- | --- |")
print(("| set (new key) | %.0f |"):format(median(set_rates)))
print(("| get (hit) | %.0f |"):format(median(get_rates)))
