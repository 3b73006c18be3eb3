-- The L1 near cache inside nginx (spec/openresty_l1_spec.lua): GET
-- /t/<name>?args runs t[name](args) and answers JSON. The caches use
-- cosockets for Redis; their L1 is the C store with its invalidation
-- thread (BCAST, forced on cosockets).
local hicache = require "hicache"

local env = package.loaded.hc_test_env
local ngx = ngx -- luacheck: ignore 113

local _M = {}
local t = {}

local cache
local function c()
  cache = cache or assert(hicache.new { host = env.host, port = env.port, prefix = "orl1",
                                        l1 = { ttl = 30 } })
  return cache
end

function _M.init() end
function _M.init_worker() end

function t.up()
  for _ = 1, 500 do
    local s = c():pool_stats()
    if s.l1 and s.l1.tracking then return { up = true, transport = s.transport } end
    ngx.sleep(0.01)
  end
  return { up = false }
end

function t.set(a)
  return { ok = c():set(a.k, a.v) }
end

-- n gets of a.k: the value and the L1 hits they made
function t.get(a)
  local before = c():pool_stats().l1.hits
  local v, err
  for _ = 1, tonumber(a.n or 1) do v, err = c():get(a.k) end
  local after = c():pool_stats().l1
  return { v = v, err = err, hits = after.hits - before, st = after }
end

function t.stats()
  return c():pool_stats().l1
end

_M.dispatch = require("hc_dispatch")(t)

return _M
