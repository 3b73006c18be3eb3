-- bench/recovery.lua: how fast the load recovers once the server is back.
--
--   spec/run.sh --exec lua5.4 bench/recovery.lua [REPEATS]
--
-- (HICACHE_MODDIR / HICACHE_TEST_BUILD select a build, as for the specs.)
-- Three load processes (spec/helpers/load.lua: get, set, get_or_set and
-- incr with a 0.2 s command timeout) run against a private redis-server
-- while it is killed with SIGKILL and restarted on the same port after
-- 0.5, 2 and 5 s of downtime, or frozen with SIGSTOP for 1 s; REPEATS
-- times each (default 3). Recovery: from the server being back (the
-- restart answered PING / SIGCONT sent) to the end of each process's first
-- successful operation. Prints a markdown table: median and max over
-- every process of every repeat, and the errors the load saw per run.
-- The goal is under 1 s; the connect backoff (pool.backoff_max, 2 s by
-- default) bounds it from above until a circuit breaker probes instead.
local H = require "helper"
local load = require "helpers.load"
local posix = H.posix

local repeats = tonumber(arg and arg[1]) or 3

local function kill9(down)
  return function(srv)
    H.kill9(srv)
    posix.sleep(down)
    H.restart(srv)
  end
end

local function sigstop(down)
  return function(srv)
    H.sigstop(srv)
    posix.sleep(down)
    H.sigcont(srv)
  end
end

local FAULTS = {
  { name = "kill -9, restart after 0.5 s", fault = kill9(0.5), down = 0.5 },
  { name = "kill -9, restart after 2 s", fault = kill9(2), down = 2 },
  { name = "kill -9, restart after 5 s", fault = kill9(5), down = 5 },
  { name = "SIGSTOP 1 s, SIGCONT", fault = sigstop(1), down = 1 },
}

local function median(xs)
  table.sort(xs)
  local n = #xs
  if n == 0 then return nil end
  if n % 2 == 1 then return xs[(n + 1) / 2] end
  return (xs[n / 2] + xs[n / 2 + 1]) / 2
end

local function ms(x)
  if x == nil then return "—" end
  if x == math.huge then return "never" end
  return ("%.0f"):format(x * 1000)
end

local srv = H.start_redis()
local rows, runs = {}, 0
local ok, err = pcall(function()
  for _, f in ipairs(FAULTS) do
    local samples, errors, never = {}, 0, 0
    for _ = 1, repeats do
      runs = runs + 1
      local run = load.start(H, {
        url = ("redis://127.0.0.1:%d"):format(srv.port), procs = 3, timeout = 0.2,
        seconds = f.down + 15, linger = 0.5, prefix = "rec" .. runs,
      })
      run:ready()
      f.fault(srv)
      local back = posix.now()
      run:back(back)
      local res = run:finish()
      if res.rc ~= 0 then io.stderr:write("load failed:\n", res.log, "\n") end
      for _, p in ipairs(res.procs) do
        if p.first_ok_after_back then
          samples[#samples + 1] = p.first_ok_after_back - back
        else
          never = never + 1
        end
        for _, e in pairs(p.errors or {}) do errors = errors + e.n end
      end
    end
    local mx = 0
    for _, s in ipairs(samples) do if s > mx then mx = s end end
    if never > 0 then mx = math.huge end
    rows[#rows + 1] = ("| %s | %d × 3 | %s | %s | %d |"):format(f.name, repeats, ms(median(samples)), ms(mx),
      math.floor(errors / repeats + 0.5))
    io.stderr:write(f.name, ": done\n")
  end
end)
pcall(H.sigcont, srv)
srv.stop()
assert(ok, err)

print(("Recovery after the server is back (%s, 3 load processes, timeout 0.2 s)\n"):format(
  os.getenv("HICACHE_MODDIR") or "the default build"))
print("| fault | runs × processes | median (ms) | max (ms) | errors per run |")
print("| --- | --- | --- | --- | --- |")
for _, r in ipairs(rows) do print(r) end
