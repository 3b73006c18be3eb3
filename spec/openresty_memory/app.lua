-- The application spec/openresty_memory_spec.lua runs in a private nginx
-- (spec/nginx_harness.lua, app_dir = this directory): backend = "memory"
-- inside OpenResty. GET /t/<name>?args runs handlers[name](args) and
-- answers its result as JSON.

local hicache = require "hicache"

local ngx = ngx -- luacheck: ignore 113

local _M = {}
local t = {}

local cache
local function c()
  cache = cache or assert(hicache.new { backend = "memory", name = "or-mem", prefix = "m", timeout = 5 })
  return cache
end

-- init_by_lua runs in the master: what it stores is the master's; each
-- worker (a forked process) starts with an empty store.
local init_cache, init_set
function _M.init()
  init_cache = assert(hicache.new { backend = "memory", name = "or-mem", prefix = "m" })
  init_set = init_cache:set("from-master", "m")
end

function _M.init_worker() end

function t.ping() return { pong = true } end

function t.basic()
  local x = c()
  local r = {}
  r.kind = tostring(x):match("^hicache %(memory, this worker%)") ~= nil
  r.set = x:set("a", { n = 1 })
  r.get = x:get("a")
  r.incr = { x:set("n", 1), x:incr("n", 2) }
  r.gos = { x:get_or_set("g", function() return "computed" end) }
  r.gos2 = { x:get_or_set("g", function() return "again" end) }
  r.init_set = init_set
  r.from_master = { init_cache:get("from-master") }
  r.pid = ngx.worker.pid()
  r.clear = x:clear()
  return r
end

-- get_or_set whose fn yields for `sleep` seconds: the filler.
function t.fill(a)
  local v, err, st = c():get_or_set(a.key, function()
    ngx.sleep(tonumber(a.sleep))
    return "filled"
  end, { ttl = 60 })
  return { v = v, err = err, status = st }
end

-- get_or_set on a key another request is filling: a waiter.
function t.wait(a)
  local v, err, st = c():get_or_set(a.key, function() return "computed-by-waiter" end, { ttl = 60, wait = 3 })
  return { v = v, err = err, status = st }
end

function t.lock_hold(a)
  local l = assert(c():lock(a.name, { ttl = 5 }))
  ngx.sleep(tonumber(a.sleep))
  local fence = l.fence
  assert(l:release())
  return { fence = fence }
end

function t.lock_wait(a)
  local l, err = c():lock(a.name, { ttl = 5, wait = 2 })
  if not l then return { err = err } end
  local fence = l.fence
  l:release()
  return { fence = fence }
end

_M.dispatch = require("hc_dispatch")(t)

return _M
