-- bench/encrypt.lua: encrypted values (make bench; BENCH_ONLY=encrypt, or
-- spec/run.sh --exec lua5.4 bench/encrypt.lua). Same run, interleaved,
-- medians of 7:
--  1. get hit of the 10-field table: encrypted cache vs plain cache (the
--     goal: >= 0.9x), and the same for set;
--  2. a 16 KiB string value: get hit encrypted vs plain;
--  3. the codec alone, no Redis: decode vs decode + open (what sealing
--     costs the client CPU per value).
package.path = "bench/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local hicache = require("hicache")
local core = require("hicache.core")
local common = dofile("bench/common.lua")

local host = os.getenv("HICACHE_TEST_HOST") or "127.0.0.1"
local port = tonumber(os.getenv("HICACHE_TEST_PORT") or "6379")
local now = core.now
local ROUNDS = 7

local median = common.median
local function rate(n, fn) return common.rate(now, n, fn) end

-- redis-server and this process on the last CPU, as bench.lua does
local PIN = os.getenv("BENCH_PIN") or "same"
local ncpu = tonumber(io.popen("nproc 2>/dev/null"):read("a"):match("%d+") or "") or 1
local function pid_of(path)
  local f = io.open(path)
  local pid = f and f:read("a"):match("^(%d+)")
  if f then f:close() end
  return pid
end
local srv, me = pid_of((os.getenv("HICACHE_TEST_DIR") or "") .. "/redis.pid"), pid_of("/proc/self/stat")
local pinned = PIN ~= "none" and srv and os.execute(("taskset -a -pc %d %s >/dev/null 2>&1 && taskset -a -pc %d %s >/dev/null 2>&1")
  :format(ncpu - 1, srv, ncpu - 1, me))
print(pinned and ("(redis-server and this process on CPU %d)\n"):format(ncpu - 1) or "(not pinned)\n")

local KEYS = { { id = "k2", key = ("k"):rep(32) }, { id = "k1", key = ("j"):rep(32) } }
local plain = assert(hicache.new { host = host, port = port, prefix = "encb" })
local sealed = assert(hicache.new { host = host, port = port, prefix = "encs", encrypt = { keys = KEYS } })
local V, BIG = common.VALUE, ("0123456789abcdef"):rep(1024)
for _, c in ipairs { plain, sealed } do
  assert(c:set("hit", V, 0))
  assert(c:set("big", BIG, 0))
end
assert(core.entry_info(sealed:command("GET", sealed:_key("hit"))).encrypted == "k2")
assert(core.entry_info(plain:command("GET", plain:_key("hit"))).encrypted == nil)

-- interleaved rounds: a, b measured alternately, medians compared
local function pair(n, fa, fb)
  local a, b = {}, {}
  for i = 1, ROUNDS do
    a[i] = rate(n, fa)
    b[i] = rate(n, fb)
  end
  return median(a), median(b)
end

local N = 20000
local function getter(c, k) return function(n) local g = c.get; for _ = 1, n do g(c, k) end end end
local function setter(c) return function(n) local s = c.set; for _ = 1, n do s(c, "w", V, 60) end end end
local gp, gs = pair(N, getter(plain, "hit"), getter(sealed, "hit"))
local sp, ss = pair(N, setter(plain), setter(sealed))
local bp, bs = pair(N // 2, getter(plain, "big"), getter(sealed, "big"))

-- the codec alone
local bytes_p, bytes_s = plain:encode(V), sealed:encode(V, "hit")
local M = 200000
local dp, ds = pair(M, function(n) local d = plain.decode; for _ = 1, n do d(plain, bytes_p) end end,
                       function(n) local d = sealed.decode; for _ = 1, n do d(sealed, bytes_s, "hit") end end)

print("## Encrypted values (XChaCha20-Poly1305), ops/s, median of 7, interleaved\n")
print("| operation | plain | encrypted | encrypted / plain |")
print("| --- | ---: | ---: | ---: |")
print(("| get hit, 10-field table (%d B plain, %d B sealed) | %.0f | %.0f | **%.3fx** |"):format(#bytes_p, #bytes_s, gp, gs, gs / gp))
print(("| set, 10-field table | %.0f | %.0f | %.3fx |"):format(sp, ss, ss / sp))
print(("| get hit, 16 KiB string | %.0f | %.0f | %.3fx |"):format(bp, bs, bs / bp))
print(("| decode alone, no Redis (10-field table) | %.0f | %.0f | %.3fx |"):format(dp, ds, ds / dp))
print(("\nopening costs %.2f us per 10-field value on this machine; the goal for get hit is >= 0.9x: %s\n")
  :format((1 / ds - 1 / dp) * 1e6, gs / gp >= 0.9 and "met" or "NOT met"))
plain:clear()
sealed:clear()
