-- bench/sysops.lua: the child process bench.lua runs under `strace -f -c`
-- to count the syscalls of one operation.
--
--   lua5.4 bench/sysops.lua OP N WARMUP [tls]
--
-- Connects (HICACHE_TEST_HOST/PORT, or the TLS port with `tls`), stores the
-- keys, runs OP WARMUP times, then N times (OP: a name in common.lua's
-- ops: ping, get, set, get_many, mget, set_many, raw_sets). bench.lua runs
-- it with N and with 0 and divides the difference by N: what is left is
-- what N operations cost, after the warm-up.
local dir = arg[0]:match("^(.*)/") or "."
local common = dofile(dir .. "/common.lua")
local hicache = require "hicache"

local op, n, warm, tls = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4] == "tls"
assert(op and n and warm, "usage: sysops.lua OP N WARMUP [tls]")
local host, port = os.getenv("HICACHE_TEST_HOST"), tonumber(os.getenv("HICACHE_TEST_PORT"))

local cache, err = common.new_cache(hicache, host, port, tls)
if not cache then
  io.stderr:write("n/a: ", tostring(err), "\n")
  os.exit(3)
end
common.setup(assert(common.new_cache(hicache, host, port, false)))
local fn = assert(common.ops(cache)[op], "unknown operation " .. op)
local ok, e = pcall(fn, math.max(warm, 1))
if not ok then
  io.stderr:write("n/a: ", tostring(e), "\n")
  os.exit(3)
end
fn(n)
