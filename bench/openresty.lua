-- bench/openresty.lua: hicache inside nginx (make bench runs it after
-- bench/bench.lua). One nginx worker (spec/nginx_harness.lua, the LuaJIT
-- build), loopback, wrk (1 thread, C connections, D seconds per run), the
-- endpoints interleaved round by round, medians of ROUNDS:
--   /hicache      cache:get of a 10-field table (msgpack, decoded in C)
--   /raw          the same GET on a raw cosocket (keepalive pool) + cjson:
--                 the floor of a get in OpenResty
--   /lua_nothing  a content_by_lua handler that does nothing else
--   /nothing      `return 200`: nginx's own ceiling
-- Goal: hicache >= 0.9x the raw cosocket endpoint (requests/s).
-- Usage: make bench [ROUNDS=5] [WRK_SECONDS=3] [WRK_CONNECTIONS=10]
local nginx = require "nginx_harness"
local hicache = require "hicache"
local cjson = require "cjson"

local ROUNDS = tonumber(os.getenv("ROUNDS") or 5)
local SECONDS = tonumber(os.getenv("WRK_SECONDS") or 3)
local CONNS = tonumber(os.getenv("WRK_CONNECTIONS") or 10)

if not os.execute("command -v wrk >/dev/null 2>&1") then
  print("OpenResty benchmark: skipped (wrk is not installed; ./setup.sh installs it)")
  return
end

local host, port = os.getenv("HICACHE_TEST_HOST"), tonumber(os.getenv("HICACHE_TEST_PORT"))
local PROFILE = {
  id = 42, name = "Ada Lovelace", email = "ada@example.com", plan = "pro", active = true,
  score = 98.5, created = 1700000000, country = "GB", tags = { "math", "engines" }, logins = 1234,
}
local cache = assert(hicache.new { host = host, port = port, prefix = "bench" })
assert(cache:set("profile", PROFILE, 3600))
assert(cache:command("SET", "bench-raw:profile", cjson.encode(PROFILE)))

local root = os.getenv("PWD")
local srv = nginx.start {
  workers = 1, app_dir = root .. "/bench/openresty",
  locations = [[
    location = /hicache { content_by_lua_block { require("app").hicache() } }
    location = /raw { content_by_lua_block { require("app").raw() } }
    location = /lua_nothing { content_by_lua_block { require("app").lua_nothing() } }
    location = /nothing { return 200 "ok\n"; }
]],
}

local function median(t)
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) / 2] end
  return (t[n / 2] + t[n / 2 + 1]) / 2
end

-- wrk's latency in ms ("1.23ms", "456.00us", "1.20s")
local function ms(s)
  local v, unit = s:match("([%d%.]+)(%a+)")
  v = tonumber(v)
  if unit == "us" then return v / 1000 elseif unit == "s" then return v * 1000 end
  return v
end

local function wrk(path)
  local cmd = ("wrk -t1 -c%d -d%ds --latency http://127.0.0.1:%d%s 2>&1"):format(CONNS, SECONDS, srv.port, path)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  local rps = tonumber(out:match("Requests/sec:%s+([%d%.]+)"))
  local p99 = out:match("%s99%%%s+(%S+)")
  local non2xx = out:match("Non%-2xx or 3xx responses: (%d+)")
  if not rps or not p99 then error("wrk " .. path .. ": " .. out) end
  if non2xx then error(("wrk %s: %s non-2xx responses"):format(path, non2xx)) end
  return rps, ms(p99)
end

local ENDPOINTS = {
  { "/hicache", "hicache get (10-field table)" },
  { "/raw", "raw cosocket GET + cjson" },
  { "/lua_nothing", "content_by_lua, nothing else" },
  { "/nothing", "return 200 (nginx ceiling)" },
}

local ok, err = pcall(function()
  -- warm-up: pools filled, code compiled
  for _, e in ipairs(ENDPOINTS) do
    local body = srv:get(e[1])
    assert(body == "Ada Lovelace\n" or body == "ok\n", e[1] .. " answered " .. tostring(body))
  end
  local res = {}
  for _, e in ipairs(ENDPOINTS) do res[e[1]] = { rps = {}, p99 = {} } end
  for round = 1, ROUNDS do
    -- a different order each round, so no endpoint always runs first
    for i = 0, #ENDPOINTS - 1 do
      local e = ENDPOINTS[(i + round - 1) % #ENDPOINTS + 1]
      local rps, p99 = wrk(e[1])
      table.insert(res[e[1]].rps, rps)
      table.insert(res[e[1]].p99, p99)
    end
  end
  print()
  print(("OpenResty: one nginx worker, loopback redis-server, wrk -t1 -c%d -d%ds, median of %d rounds")
    :format(CONNS, SECONDS, ROUNDS))
  print(("%-14s %-32s %12s %10s %10s"):format("endpoint", "what", "requests/s", "p99 ms", "vs raw"))
  local raw = median(res["/raw"].rps)
  for _, e in ipairs(ENDPOINTS) do
    local r = res[e[1]]
    local m = median(r.rps)
    print(("%-14s %-32s %12.0f %10.2f %9.2fx"):format(e[1], e[2], m, median(r.p99), m / raw))
  end
  print(("  hicache/raw cosocket: %.2fx requests/s (goal >= 0.9x)"):format(median(res["/hicache"].rps) / raw))
end)
srv:stop()
cache:close()
if not ok then error(err, 0) end
