-- The test application the OpenResty specs (spec/openresty_spec.lua) run
-- inside a private nginx (spec/nginx_harness.lua): GET /t/<name>?args runs
-- handlers[name](args) in the content phase and answers its result as JSON
-- (500 with the error and its traceback when it raises). Everything here
-- runs on cosockets: hicache.new picks them inside OpenResty.

local hicache = require "hicache"
local cjson = require "cjson.safe"

local env = package.loaded.hc_test_env
local ngx = ngx -- luacheck: ignore 113

local _M = {}

local t = {}

local function opts(extra)
  local o = { host = env.host, port = env.port }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local caches = {}
-- One cache per name and worker (made on first use).
local function cache(name, extra)
  name = name or "main"
  if not caches[name] then
    local o = opts(extra)
    o.prefix = o.prefix or ("or-" .. name)
    caches[name] = assert(hicache.new(o))
  end
  return caches[name]
end

-- init_by_lua: a cache made here (no I/O) works later in requests; I/O in
-- this phase returns the phase's error.
local init_cache, init_result
function _M.init()
  init_cache = assert(hicache.new(opts { prefix = "or-init" }))
  init_result = { init_cache:get("x") }
end

local worker_result
function _M.init_worker()
  worker_result = { init_cache:get("x") }
end

function _M.log_phase()
  local v, err = init_cache:get("x")
  ngx.shared.hc_results:set("log", cjson.encode({ v = v, err = err }))
end

function _M.header_filter_phase()
  local v, err = init_cache:set("x", 1)
  ngx.shared.hc_results:set("header_filter", cjson.encode({ v = v, err = err }))
end

function _M.server_rewrite_phase()
  local ok, err = init_cache:set("from-server-rewrite", "ok")
  ngx.shared.hc_results:set("server_rewrite", cjson.encode({ ok = ok, err = err }))
end

function _M.set_phase()
  local v, err = init_cache:get("x")
  return cjson.encode({ v = v, err = err })
end

function t.ping() return { pong = true } end

function t.phases()
  local from_init = init_cache:get("from-init")
  local ok = init_cache:set("from-init", "works in content")
  return {
    init = init_result, init_worker = worker_result,
    log = cjson.decode(ngx.shared.hc_results:get("log") or "null"),
    header_filter = cjson.decode(ngx.shared.hc_results:get("header_filter") or "null"),
    server_rewrite = cjson.decode(ngx.shared.hc_results:get("server_rewrite") or "null"),
    content_set = ok, content_get = from_init or init_cache:get("from-init"),
  }
end

-- Every read and write of the API, with what each returned.
function t.basic()
  local c = cache()
  assert(c:clear())
  local r = {}
  r.set = c:set("a", { name = "ada", n = 1, list = { 1, 2, 3 } }, 60)
  r.get = c:get("a")
  r.get_missing = { c:get("nope") }
  r.add_new = c:add("b", "first")
  r.add_existing = c:add("b", "second")
  r.get_b = c:get("b")
  r.set_many = c:set_many({ x = 1, y = "two", z = { 3 } })
  local many = c:get_many({ "x", "y", "z", "missing" })
  r.get_many = many
  r.has_key = { c:has_key("x"), c:has_key("missing") }
  r.incr = { c:set("n", 10), c:incr("n"), c:incr("n", 5), c:decr("n", 2) }
  r.incr_missing = { c:incr("missing") }
  r.ttl = c:ttl("a")
  r.expire = c:expire("a", 100)
  r.ttl_after = c:ttl("a")
  r.persist = c:persist("a")
  r.ttl_none = c:ttl("a")
  r.delete = { c:delete("x"), c:delete("x") }
  r.delete_many = c:delete_many({ "y", "z", "missing" })
  r.after = { c:get("x"), c:get("y") }
  r.command = c:command("PING")
  r.pipeline = c:pipeline({ { "SET", "or-raw", "1" }, { "GET", "or-raw" }, { "DEL", "or-raw" } })
  r.command_err = { c:command("NOSUCHCOMMAND") }
  local keys = {}
  for k in c:keys("*") do keys[#keys + 1] = k end
  table.sort(keys)
  r.keys = keys
  r.delete_pattern = c:delete_pattern("a*")
  r.clear = c:clear()
  r.after_clear = { c:get("b") }
  r.incr_version = { c:set("v", "one"), c:incr_version("v") }
  r.version2 = c:with_version(2):get("v")
  return r
end

-- Integers beyond 2^53 stay exact (decimal strings under LuaJIT).
function t.int64()
  local c = cache()
  c:set("big", 9007199254740990)
  local a = c:incr("big", 5)
  local b = c:incr("big", "9000000000000000000")
  local d = c:decr("big", 1)
  return { a = a, ta = type(a), b = b, tb = type(b), d = d, get = c:get("big"), small = c:incr("big", "-9009007199254740000") }
end

function t.argerror()
  local c = cache()
  local ok, err = pcall(function()
    c:get({}) -- the line the error must name
  end)
  local ok2, err2 = pcall(function() c:get_or_set("k", "not a function") end)
  local ok3, err3 = pcall(function() c:lock("") end)
  -- a method called with . instead of :
  local ok4, err4 = pcall(function() c.get("k") end)
  local ok5, err5 = pcall(function() c.pool_stats() end)
  return { ok = ok, err = err, ok2 = ok2, err2 = err2, ok3 = ok3, err3 = err3, ok4 = ok4, err4 = err4,
           ok5 = ok5, err5 = err5 }
end

function t.get_or_set()
  local c = cache("gos")
  c:delete("k")
  local calls = 0
  local function fn()
    calls = calls + 1
    ngx.sleep(0.01) -- fn may yield
    return { computed = calls }
  end
  local v1, e1, s1 = c:get_or_set("k", fn, { ttl = 60 })
  local v2, e2, s2 = c:get_or_set("k", fn, { ttl = 60 })
  local v3, e3, s3 = c:get_or_set("tagged", function() return "t" end, { tags = { "tg" } })
  c:invalidate_tag("tg")
  local v4, _, s4 = c:get_or_set("tagged", function() return "t2" end, { tags = { "tg" } })
  local v5, e5, s5 = c:get_or_set("fails", function() return nil, "boom" end)
  return { v1 = v1, e1 = e1, s1 = s1, v2 = v2, e2 = e2, s2 = s2, calls = calls, v3 = v3, e3 = e3, s3 = s3,
           v4 = v4, s4 = s4, v5 = v5, e5 = e5, s5 = s5 }
end

-- A get_or_set whose lease another process holds: waits (a cosocket
-- BLPOP), never blocking the worker.
function t.lease_wait(args)
  local c = cache("lease")
  local t0 = ngx.now()
  ngx.update_time()
  t0 = ngx.now()
  local v, err, status = c:get_or_set(args.key, function() return "computed-in-nginx" end,
    { lease_ttl = 5, wait = 10 })
  ngx.update_time()
  return { v = v, err = err, status = status, ms = (ngx.now() - t0) * 1000 }
end

function t.get(args)
  local v, err = cache("lease"):get(args.key)
  return { v = v, err = err }
end

-- A fill slower than its lease: the keeper (an ngx.timer) extends it, so a
-- second request meanwhile waits instead of computing.
function t.slow_fill(args)
  local c = cache("lease")
  local v, err, status = c:get_or_set(args.key, function()
    ngx.sleep(tonumber(args.sleep))
    return "slow"
  end, { lease_ttl = tonumber(args.lease) })
  return { v = v, err = err, status = status }
end

function t.lease_pttl(args)
  local c = cache("lease")
  local name = c:_lease_key(args.key, "x", "0")
  return { pttl = c:command("PTTL", name), name = name }
end

function t.locks()
  local c = cache("locks")
  local r = {}
  local l1 = assert(c:lock("res", { ttl = 5 }))
  r.fence1 = l1.fence
  r.busy = { c:lock("res", { ttl = 5, wait = 0.05 }) }
  r.owned = l1:owned()
  r.release = l1:release()
  local l2 = assert(c:lock("res", { ttl = 5 }))
  r.fence2 = l2.fence
  r.increasing = l2.fence > l1.fence
  -- a waiter woken by the release (cosocket BLPOP), in a light thread
  local th = ngx.thread.spawn(function()
    local l3, err = c:lock("res", { ttl = 5, wait = 3 })
    if not l3 then return { err = err } end
    local f = l3.fence
    l3:release()
    return { fence = f }
  end)
  ngx.sleep(0.1)
  l2:release()
  local _, got = ngx.thread.wait(th)
  r.waiter = got
  r.with_lock = { c:with_lock("res", { ttl = 5 }, function(a, b) return a + b, "done" end, 2, 3) }
  local ok, err = pcall(c.with_lock, c, "res", nil, function() error("inside") end)
  r.with_lock_error = { ok = ok, err = tostring(err) }
  r.after_error = c:lock("res", { ttl = 1, wait = 0 }) ~= nil
  -- renew: a 0.3 s lock kept alive by an ngx.timer while we sleep 1 s
  local lr = assert(c:lock("renewed", { ttl = 0.3, renew = true }))
  ngx.sleep(1)
  r.renew_owned = lr:owned()
  r.renewals = lr:renewals()
  lr:release()
  -- a lock garbage collected without release: its watchdog timer stops
  -- (LuaJIT runs no __gc of a table: a sentinel userdata does it), so the
  -- lock expires after its TTL
  do local _ = assert(c:lock("gc", { ttl = 0.2, renew = true })) end
  collectgarbage()
  collectgarbage()
  ngx.sleep(0.5)
  r.gc_exists = c:command("EXISTS", (c:_lock_names("gc")))
  local lx = assert(c:lock("extend", { ttl = 1 }))
  r.extend = lx:extend(5)
  r.extend_pttl = c:command("PTTL", lx.key)
  lx:release()
  return r
end

function t.tags_memoize_writes()
  local c = cache("misc")
  c:clear()
  local r = {}
  r.set_tagged = c:set("p:1", "v1", nil, { tags = { "team:1" } })
  r.get_tagged = c:get("p:1")
  r.invalidate_tag = c:invalidate_tag("team:1")
  r.after = { c:get("p:1") }
  local calls = 0
  local profile = c:memoize(function(id) calls = calls + 1; return { id = id } end, { name = "profile", ttl = 60 })
  r.memo = { profile(7), profile(7) }
  r.memo_calls = calls
  profile:invalidate(7)
  r.memo_after = profile(7)
  r.memo_calls_after = calls
  c:set("user:1", "old")
  local save = c:on_write(function(id) return "saved " .. id end, { keys = function(id) return "user:" .. id end })
  r.on_write = save(1)
  r.on_write_after = { c:get("user:1") }
  c:set("user:2", "old")
  local b = c:batch()
  b:invalidate("user:2")
  r.batch_before = c:get("user:2")
  r.batch_commit = b:commit()
  r.batch_after = { c:get("user:2") }
  return r
end

function t.stats()
  local c = cache("stats", { prefix = "or-stats" })
  c:stats_reset()
  c:set("s", 1)
  c:get("s")
  c:get("missing")
  c:get_or_set("gs", function() return 1 end)
  local st = c:stats()
  local text = c:stats_text()
  return { hits = st.hits, misses = st.misses, sets = st.sets, pid = ngx.worker.pid(),
           text_has_hits = text:find("hicache_hits_total", 1, true) ~= nil }
end

function t.testing()
  local testing = require "hicache.testing"
  local c = testing.cache { host = env.host, port = env.port }
  local rec = testing.record(c)
  c:get_or_set("user:1", function() return "u" end)
  c:get("user:1")
  local lines = rec:lines()
  testing.cleanup()
  return { lines = lines }
end

function t.pool()
  local c = cache("pool")
  for _ = 1, 5 do c:get("warm") end
  local conn = assert(c:reserve())
  local reused = conn.sock:getreusedtimes()
  local multi = { conn:command("MULTI"), conn:command("INCR", "or-pool-n"), conn:command("EXEC") }
  conn:release()
  return { reused = reused, stats = c:pool_stats(), multi = multi }
end

function t.tls(args)
  local r = {}
  -- a name the certificate does not have: refused (first: the worker's
  -- first TLS handshake is the one nginx completes at once)
  local bad = assert(hicache.new { url = "rediss://127.0.0.1:" .. env.tls_port,
                                   tls = { server_name = "wrong.example" }, prefix = "or-tls" })
  r.wrong_name = { bad:get("k") }
  -- the same once more (whether nginx completes the handshake at once or
  -- not, the name is checked: lua-nginx-module#2506)
  r.wrong_name2 = { bad:get("k") }
  local c = assert(hicache.new { url = "rediss://127.0.0.1:" .. env.tls_port, tls = { server_name = "localhost" },
                                 prefix = "or-tls" })
  r.set = { c:set("k", "over tls") }
  r.get = { c:get("k") }
  for _ = 1, 3 do c:get("k") end
  local conn = assert(c:reserve())
  r.reused = conn.sock:getreusedtimes()
  conn:release()
  local noverify = assert(hicache.new { url = "rediss://127.0.0.1:" .. env.tls_port,
                                        tls = { verify = false }, prefix = "or-tls" })
  r.noverify = { noverify:get("k") }
  -- a client certificate is refused with a clear error
  local ok, err = pcall(hicache.new, { url = "rediss://127.0.0.1:" .. env.tls_port,
    tls = { cert_file = env.tls_dir .. "/client.crt", key_file = env.tls_dir .. "/client.key" } })
  r.client_cert = { ok = ok, err = err }
  local ok2, err2 = pcall(hicache.new, { url = "rediss://127.0.0.1:" .. env.tls_port,
    tls = { ca_file = env.tls_dir .. "/ca.crt" } })
  r.ca_file = { ok = ok2, err = err2 }
  r.arg = args.x
  return r
end

function t.down()
  local c = assert(hicache.new { host = "127.0.0.1", port = env.dead_port, prefix = "or-down" })
  local r = {}
  -- a host name without nginx's resolver directive: an error, not a raise
  local named = assert(hicache.new { host = "localhost", port = env.port, prefix = "or-down" })
  r.no_resolver = { named:get("k") }
  r.get = { c:get("k") }
  r.set = { c:set("k", 1) }
  r.get_or_set = { c:get_or_set("k", function() return "computed" end) }
  r.lock = { c:lock("l") }
  r.stats_errors = c:stats().errors
  return r
end

function t.auth_db()
  local c = assert(hicache.new(opts { db = 3, prefix = "or-db" }))
  c:set("k", "in db 3")
  local raw = c:command("GET", c:_key("k"))
  return { via_cache = c:get("k"), raw_found = raw ~= nil, db = c:command("CLIENT", "INFO") }
end

-- Busy for s seconds of CPU without yielding (nginx's loop does not run).
local function spin(s)
  local t = os.clock()
  while os.clock() - t < s do end -- luacheck: ignore 563
end

-- Through spec/helpers/faultproxy.py (args.port), whose connections close
-- after their first reply: a read on the kept-alive connection is sent
-- again on a new one; a write is not (nil, err, nothing stored). A
-- connection found closed before any reply byte is no failure for the
-- breaker (failures = 1 would open it at once).
function t.retry(args)
  local port = tonumber(args.port)
  local r = {}
  assert(cache("direct", { prefix = "or-retry" }):set("k", "v"))
  local c = assert(hicache.new { host = env.host, port = port, prefix = "or-retry", breaker = { failures = 1 } })
  r.first = c:get("k") -- connection 1: closed 20 ms after this reply
  spin(0.05) -- the close arrives; nginx's loop does not run to see it
  r.get = { c:get("k") } -- connection 1 again, then 2
  r.has_key = { c:has_key("k") }
  local w = assert(hicache.new { host = env.host, port = port, prefix = "or-retry", timeout = 1.001,
                                 breaker = { failures = 1 } })
  r.pre = w:set("pre", 1) -- connection 3: SCRIPT LOAD, EVALSHA
  r.warm = w:get("k") -- connection 3: closed 20 ms after this reply
  spin(0.05)
  r.set = { w:set("written", "v") } -- connection 3 again: fails, not sent again
  r.written = { w:get("written") } -- connection 4
  r.stats_errors = w:stats().errors
  r.breaker = { c:pool_stats().breaker_opens, w:pool_stats().breaker_opens }
  return r
end

-- A server with requirepass (args.port, args.password): AUTH once per new
-- connection; a wrong password is an error that never shows it.
function t.auth(args)
  local port = tonumber(args.port)
  local c = assert(hicache.new { host = env.host, port = port, password = args.password, prefix = "or-auth" })
  local r = {}
  r.set = { c:set("k", "v") }
  r.get = { c:get("k") }
  r.clients = c:command("CLIENT", "LIST")
  local bad = assert(hicache.new { host = env.host, port = port, password = "not-" .. args.password,
                                   prefix = "or-auth" })
  r.bad = { bad:get("k") }
  local none = assert(hicache.new { host = env.host, port = port, prefix = "or-auth" })
  r.none = { none:get("k") }
  return r
end

-- Which worker answered, and its own counters.
function t.worker_stats()
  local c = cache("per-worker")
  c:get("x")
  local st = c:stats()
  return { pid = ngx.worker.pid(), misses = st.misses }
end

-- cache:command / pipeline of a command that leaves connection state
-- (SELECT, MULTI, WATCH): that connection is not pooled, the next
-- operation is not affected.
function t.state()
  local c = cache("state")
  assert(c:set("k", "v"))
  local r = {}
  r.select = c:command("SELECT", "5")
  r.after_select = { c:get("k") }
  r.multi = c:command("MULTI")
  r.after_multi = { c:get("k") }
  r.watch = c:pipeline({ { "WATCH", "x" }, { "PING" } })
  r.after_watch = { c:get("k") }
  local conn = assert(c:reserve())
  r.reserved = { conn:command("SELECT", "6"), conn:command("SET", "in-db-6", "1") }
  conn:release()
  r.after_reserved = { c:get("k") }
  r.clean = c:command("EXISTS", "in-db-6")
  local conn2 = assert(c:reserve())
  r.clean_reserved = conn2:command("PING")
  conn2:release()
  return r
end

-- The latency of an operation starts with it, also on a reused xio.
function t.latency()
  local last
  local c = assert(hicache.new(opts { prefix = "or-latency", on_event = function(ev) last = ev end }))
  c:set("k", 1)
  ngx.sleep(0.3)
  c:get("k")
  return { op = last.op, ms = last.ms }
end

-- A timeout is not retried on another connection (only a connection
-- found closed is): CLIENT PAUSE makes the read time out.
function t.timeout_once()
  local c = assert(hicache.new(opts { prefix = "or-timeout", timeout = 0.2 }))
  assert(c:get("warm") == nil)
  local admin = cache("admin")
  assert(admin:command("CLIENT", "PAUSE", "600", "ALL"))
  local v, err = c:get("k")
  local st = c:pool_stats()
  ngx.sleep(0.6) -- the pause ends
  return { v = v, err = err, created = st.created }
end

-- ---- the circuit breaker ------------------------------------------------------

-- A cache on the private redis-server of the breaker spec (port), made
-- once per name and worker, and the breaker events it saw. No backoff
-- (backoff_base = 0): without the breaker every call would connect.
local brk_events = {}
local function brk_cache(port, name, breaker)
  local key = name .. ":" .. port
  if not caches[key] then
    local seen = {}
    brk_events[key] = seen
    caches[key] = assert(hicache.new {
      host = env.host, port = tonumber(port), prefix = "or-" .. name, timeout = 0.2,
      connect_timeout = 0.2, pool = { backoff_base = 0, backoff_max = 0 },
      breaker = breaker == nil and { failures = 3, probe = 0.1 } or breaker,
      on_event = function(ev) if ev.op == "breaker" then seen[#seen + 1] = ev.status end end,
    })
  end
  return caches[key], brk_events[key]
end

local function brk_stats(c)
  local st = c:pool_stats()
  return { breaker = st.breaker, opens = st.breaker_opens, probes = st.breaker_probes, errors = st.errors,
           created = st.created }
end

local function copy(list)
  local out = {}
  for i = 1, #list do out[i] = list[i] end
  return out
end

-- Polls f every 50 ms until it returns true (at most s seconds).
local function eventually(s, f)
  for _ = 1, s * 20 do
    if f() then return true end
    ngx.sleep(0.05)
  end
  return false
end

-- The server is up: one write (warms the pool).
function t.breaker_up(args)
  local c = brk_cache(args.port, "brk")
  return { set = { c:set("k", "v") }, stats = brk_stats(c) }
end

-- The server is down: connection refused until the breaker opens, then
-- every call fails at once without connecting (errors counts connects
-- that failed), in every cache of the same pool; probes go on by timer.
-- With breaker = false, every call connects and fails as before.
function t.breaker_down(args)
  local c, seen = brk_cache(args.port, "brk")
  local r = { errs = {}, fast = {} }
  for i = 1, 4 do r.errs[i] = select(2, c:get("k")) end
  r.opened = brk_stats(c)
  for i = 1, 20 do r.fast[i] = select(2, c:get("k")) end
  r.set = { c:set("k", 1) }
  r.gos = { c:get_or_set("g", function() return "computed" end) }
  r.reserve = { c:reserve() }
  r.fast_stats = brk_stats(c)
  -- another cache with the same settings (another prefix): the same breaker
  local c2, seen2 = brk_cache(args.port, "brk2")
  r.other = { c2:get("k") }
  r.other_stats = brk_stats(c2)
  r.other_events = copy(seen2)
  -- probes run by timer (connection refused: it stays open)
  r.probed = eventually(5, function() return c:pool_stats().breaker_probes >= 2 end)
  r.probe_stats = brk_stats(c)
  r.after_probes = { c:get("k") }
  r.events = copy(seen)
  -- breaker = false: as before (each call connects and fails)
  local off = brk_cache(args.port, "brk-off", false)
  r.off = {}
  for i = 1, 5 do r.off[i] = select(2, off:get("k")) end
  r.off_stats = brk_stats(off)
  return r
end

-- The server is back: one get (the spec polls it).
function t.breaker_get(args)
  local c, seen = brk_cache(args.port, "brk")
  local v, err = c:get("k")
  local r = { v = v, err = err, stats = brk_stats(c), events = copy(seen) }
  if err == nil then
    r.set = { c:set("k", "back") }
    r.get = { c:get("k") }
    local c2, seen2 = brk_cache(args.port, "brk2")
    r.other = { c2:get("k") }
    r.other_events = copy(seen2)
  end
  return r
end

-- Timeouts count (CLIENT PAUSE on the main server), in a row: an answered
-- round resets the count, and Redis error replies do not count.
function t.breaker_timeouts()
  local seen = {}
  local c = assert(hicache.new(opts { prefix = "or-brk-timeouts", timeout = 0.1, connect_timeout = 0.5,
    breaker = { failures = 3, probe = 0.1 },
    on_event = function(ev) if ev.op == "breaker" then seen[#seen + 1] = ev.status end end }))
  local admin = cache("admin")
  local r = {}
  r.set = { c:set("k", "v") }
  r.replies = {}
  for i = 1, 5 do r.replies[i] = select(2, c:command("NOSUCHCOMMAND")) end
  r.after_replies = brk_stats(c)
  assert(admin:command("CLIENT", "PAUSE", "700", "ALL"))
  r.two = { select(2, c:get("k")), select(2, c:get("k")) }
  ngx.sleep(0.8) -- the pause ends
  r.answered = { c:get("k") }
  assert(admin:command("CLIENT", "PAUSE", "1500", "ALL"))
  r.two_more = { select(2, c:get("k")), select(2, c:get("k")) }
  r.after_two_more = brk_stats(c) -- two in a row since the answer: closed
  r.third = { c:get("k") }
  r.fast = { c:get("k") }
  r.opened = brk_stats(c)
  r.back = eventually(5, function() return select(2, c:get("k")) == nil end)
  r.closed = brk_stats(c)
  r.events = copy(seen)
  return r
end

-- on_event may yield and call a cache, as on the blocking path (the
-- C core only queues the event; it is delivered after the step).
function t.hook_io()
  local seen = {}
  local c
  c = assert(hicache.new(opts { prefix = "or-hook", on_event = function(ev)
    if ev.key == "k" then
      ngx.sleep(0.001) -- yields
      seen[#seen + 1] = { op = ev.op, status = ev.status, other = c:get("other") }
    end
  end }))
  c:set("other", "o")
  c:delete("k")
  local v = c:get("k")
  local g = c:get_or_set("k", function() return "computed" end)
  return { v = v, g = g, seen = seen }
end

_M.dispatch = require("hc_dispatch")(t)

return _M
