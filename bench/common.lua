-- bench/common.lua: what bench.lua and its syscall-counting child
-- (bench/sysops.lua) share: the value, the keys, and the operations run
-- with them. Loaded with dofile (bench/ is not on LUA_PATH).
local M = {}

M.MANY = 100

-- A 10-field table: what a service caches for a user profile.
M.VALUE = { id = 42, name = "Ada Lovelace", email = "ada@example.com", active = true,
            score = 97.5, roles = { "admin", "dev" }, locale = "en_GB", logins = 1234,
            plan = "pro", tags = { a = 1, b = 2 } }

-- The keys: "hit", and "m1".."m100" for the many-key operations. With
-- prefix "bench" (version 1) hicache stores them as bench:1:<key>.
M.PREFIX = "bench"
M.HIT_KEY = "bench:1:hit"
M.many_keys, M.many_map, M.many_full = {}, {}, {}
for i = 1, M.MANY do
  M.many_keys[i] = "m" .. i
  M.many_map["m" .. i] = M.VALUE
  M.many_full[i] = "bench:1:m" .. i
end

-- The TLS address of the test server, if the harness has one:
-- HICACHE_TEST_TLS_PORT, and the CA in HICACHE_TEST_TLS_DIR/ca.crt.
M.TLS_PORT = tonumber(os.getenv("HICACHE_TEST_TLS_PORT") or "")
M.TLS_DIR = os.getenv("HICACHE_TEST_TLS_DIR")
if M.TLS_DIR == "" then M.TLS_DIR = nil end

-- The cache handle of a client: over TCP, or over TLS (rediss://). TLS
-- failures come back as nil, err (hicache.new raising included).
function M.new_cache(hicache, host, port, tls)
  if not tls then
    return hicache.new { host = host, port = port, prefix = M.PREFIX }
  end
  local ok, c, err = pcall(hicache.new, {
    url = ("rediss://%s:%d/0"):format(host, M.TLS_PORT),
    tls = { ca_file = M.TLS_DIR .. "/ca.crt" }, prefix = M.PREFIX })
  if not ok then return nil, tostring(c):match("[^\n]*") end
  return c, err
end

-- Stores what the operations read (idempotent).
function M.setup(cache)
  assert(cache:set("hit", M.VALUE, 0))
  assert(cache:set_many(M.many_map, 0))
end

-- A get hit that fails loudly: a miss or an error ends the measurement
-- (for TLS, where the transport may not work yet).
local function miss(err) error("get hit failed: " .. tostring(err or "miss"), 0) end

-- The operations, n times each, on a cache handle: the loops bench.lua
-- times and bench/sysops.lua runs under strace.
function M.ops(cache)
  local encoded = cache:encode(M.VALUE)
  local mget = { "MGET" }
  for i = 1, M.MANY do mget[i + 1] = M.many_full[i] end
  local raw_sets = {}
  for i = 1, M.MANY do raw_sets[i] = { "SET", "bench:1:r" .. i, encoded, "PX", "300000" } end
  local unpack = table.unpack
  return {
    ping = function(n) local command = cache.command; for _ = 1, n do command(cache, "PING") end end,
    get = function(n)
      local get = cache.get
      for _ = 1, n do
        local v, err = get(cache, "hit")
        if v == nil then miss(err) end
      end
    end,
    set = function(n) local set = cache.set; for _ = 1, n do set(cache, "s", M.VALUE, 300) end end,
    get_many = function(n) for _ = 1, n do cache:get_many(M.many_keys) end end,
    mget = function(n) local command = cache.command; for _ = 1, n do command(cache, unpack(mget)) end end,
    set_many = function(n) for _ = 1, n do cache:set_many(M.many_map, 300) end end,
    raw_sets = function(n) for _ = 1, n do cache:pipeline(raw_sets) end end,
  }
end

-- The median of a list of numbers (sorts it).
function M.median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

-- Operations per second of fn(n) on the clock `now`.
function M.rate(now, n, fn)
  local t0 = now()
  fn(n)
  return n / (now() - t0)
end

return M
