-- hicache inside a real nginx (OpenResty's lua module, Debian's packages),
-- on cosockets: spec/nginx_harness.lua starts a private nginx whose
-- handlers (spec/openresty/app.lua) run the API and answer JSON; these
-- specs assert on it. One worker, so the non-blocking proof is about one
-- event loop.
local nginx = require "nginx_harness"
local socket = require "socket"
local hicache = require "hicache"
local core = require "hicache.core"

local null = require("cjson").null
local host, port = os.getenv("HICACHE_TEST_HOST"), tonumber(os.getenv("HICACHE_TEST_PORT"))

describe("OpenResty (cosocket transport)", function()
  local srv, dead
  lazy_setup(function()
    dead = socket.bind("127.0.0.1", 0) -- a port nobody answers on once closed
    local _, p = dead:getsockname()
    dead:close()
    srv = nginx.start { workers = 1, env = { dead_port = tonumber(p) } }
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  it("runs every read and write of the API", function()
    local r = srv:call("basic")
    assert.is_true(r.set)
    assert.same({ name = "ada", n = 1, list = { 1, 2, 3 } }, r.get)
    assert.same({}, r.get_missing) -- nil, nil
    assert.is_true(r.add_new)
    assert.is_false(r.add_existing)
    assert.equal("first", r.get_b)
    assert.same({ x = 1, y = "two", z = { 3 } }, r.get_many)
    assert.same({ true, false }, r.has_key)
    assert.same({ true, 11, 16, 14 }, r.incr)
    assert.same({ null, "not found" }, r.incr_missing)
    assert.is_true(r.ttl > 59 and r.ttl <= 60)
    assert.is_true(r.expire)
    assert.is_true(r.ttl_after > 99 and r.ttl_after <= 100)
    assert.is_true(r.persist)
    assert.equal(0, r.ttl_none)
    assert.same({ true, false }, r.delete)
    assert.equal(2, r.delete_many)
    assert.same({}, r.after)
    assert.equal("PONG", r.command)
    assert.same({ "OK", "1", 1 }, r.pipeline)
    assert.equal(null, r.command_err[1])
    assert.matches("^ERR unknown command", r.command_err[2])
    assert.same({ "a", "b", "n" }, r.keys)
    assert.equal(1, r.delete_pattern)
    assert.equal(2, r.clear)
    assert.same({}, r.after_clear)
    assert.same({ true, 2 }, r.incr_version)
    assert.equal("one", r.version2)
  end)

  it("keeps integers beyond 2^53 exact under LuaJIT (decimal strings)", function()
    local r = srv:call("int64")
    assert.equal("9007199254740995", r.a)
    assert.equal("string", r.ta)
    assert.equal("9009007199254740995", r.b)
    assert.equal("9009007199254740994", r.d)
    assert.equal("9009007199254740994", r.get)
    assert.equal(994, r.small) -- back within 2^53: a number again
  end)

  it("raises argument errors at the caller's line in the handler", function()
    local r = srv:call("argerror")
    assert.is_false(r.ok)
    assert.matches("app%.lua:%d+: bad argument #1 to 'get' %(key must be", r.err)
    assert.matches("app%.lua:%d+: bad argument #2 to 'get_or_set' %(function expected", r.err2)
    assert.matches("app%.lua:%d+: bad argument #1 to 'lock'", r.err3)
    assert.matches("app%.lua:%d+: bad argument #1 to 'get' %(hicache.client expected, got string%)", r.err4)
    assert.matches("app%.lua:%d+: bad argument #1 to 'pool_stats' %(hicache.client expected, got nil%)", r.err5)
    -- the very line of the call in app.lua
    local src = nginx.read("spec/openresty/app.lua")
    local line = tonumber(r.err:match("app%.lua:(%d+):"))
    local n = 0
    for l in src:gmatch("([^\n]*)\n") do
      n = n + 1
      if n == line then assert.matches("c:get%(%{%}%)", l) end
    end
  end)

  it("says which phase has no cosockets instead of blocking, and works in the others", function()
    assert.equal("ok\n", srv:get("/log_phase"))
    assert.equal("ok\n", srv:get("/header_filter_phase"))
    assert.equal("ok\n", srv:get("/server_rewrite_phase"))
    local set = srv:get("/set_phase")
    assert.same({ err = "cosockets are not available in the set phase" }, set)
    local r = srv:call("phases")
    assert.same({ null, "cosockets are not available in the init phase" }, r.init)
    assert.equal("cosockets are not available in the init_worker phase", r.init_worker[2])
    assert.same({ err = "cosockets are not available in the log phase" }, r.log)
    assert.same({ err = "cosockets are not available in the header_filter phase" }, r.header_filter)
    assert.same({ ok = true }, r.server_rewrite) -- server_rewrite has cosockets
    -- a cache made in init_by_lua works in the content phase
    assert.is_true(r.content_set)
    assert.equal("works in content", r.content_get)
  end)

  it("get_or_set: miss then hit, tags, a failing fn", function()
    local r = srv:call("get_or_set")
    assert.same({ computed = 1 }, r.v1)
    assert.equal("miss", r.s1)
    assert.same({ computed = 1 }, r.v2)
    assert.equal("hit", r.s2)
    assert.equal(1, r.calls)
    assert.equal("t", r.v3)
    assert.equal("t2", r.v4) -- invalidate_tag made it a miss
    assert.equal("miss", r.s4)
    assert.equal("boom", r.e5)
  end)

  it("a lease held by another process: the waiter waits on a cosocket and the worker keeps serving", function()
    -- This process takes the lease, as a get_or_set filler would.
    local c = assert(hicache.new { host = host, port = port, prefix = "or-lease" })
    local key = "cold:" .. core.token()
    local tok = core.token()
    local r, epoch = c:_lease(key, tok, 5000, false)
    assert.equal(2, r)
    local t0 = socket.gettime()
    local a = srv:send_request("/t/lease_wait?key=" .. key) -- waits on our lease
    socket.sleep(0.1)
    -- the same (only) worker serves another request meanwhile
    local t1 = socket.gettime()
    local b = srv:call("get", "key=other")
    local b_ms = (socket.gettime() - t1) * 1000
    assert.same({}, b)
    assert.is_true(b_ms < 50, ("a request took %.1f ms while another waited on a lease"):format(b_ms))
    -- fill after 500 ms: the waiter wakes with our value
    socket.sleep(math.max(0, 0.5 - (socket.gettime() - t0)))
    assert.is_true(c:_fill(key, tok, epoch, c:encode("from-another-process"), 60000))
    local res = srv:finish(a)
    assert.equal("from-another-process", res.v)
    assert.equal("waited", res.status)
    assert.is_true(res.ms >= 350, "waited only " .. res.ms .. " ms")
    c:close()
  end)

  it("the lease keeper (an ngx.timer) keeps a slow fill's lease: one computation", function()
    local key = "slow:" .. core.token()
    local a = srv:send_request(("/t/slow_fill?key=%s&sleep=1&lease=0.3"):format(key))
    socket.sleep(0.6) -- twice the lease: without the keeper it would have expired
    local b = srv:call("lease_wait", "key=" .. key)
    local ra = srv:finish(a)
    assert.same({ v = "slow", status = "miss" }, { v = ra.v, status = ra.status })
    assert.equal("slow", b.v) -- not "computed-in-nginx": b waited for a's value
    assert.equal("waited", b.status)
  end)

  it("locks: fencing, busy, wake-up of a waiter, with_lock, renew by a timer, extend", function()
    local r = srv:call("locks")
    assert.is_true(r.fence1 > 0)
    assert.same({ null, "timeout" }, r.busy)
    assert.is_true(r.owned)
    assert.is_true(r.release)
    assert.is_true(r.increasing)
    assert.is_true(r.waiter.fence > r.fence2)
    assert.same({ 5, "done" }, r.with_lock)
    assert.is_false(r.with_lock_error.ok)
    assert.matches("inside", r.with_lock_error.err)
    assert.is_true(r.after_error) -- with_lock released on error
    assert.is_true(r.renew_owned)
    assert.is_true(r.renewals >= 2)
    assert.is_true(r.extend)
    assert.is_true(r.extend_pttl > 5000)
    assert.equal(0, r.gc_exists) -- a collected lock's watchdog stopped
  end)

  it("tags, memoize, on_write and batch", function()
    local r = srv:call("tags_memoize_writes")
    assert.is_true(r.set_tagged)
    assert.equal("v1", r.get_tagged)
    assert.same({}, r.after)
    assert.same({ { id = 7 }, { id = 7 } }, r.memo)
    assert.equal(1, r.memo_calls)
    assert.same({ id = 7 }, r.memo_after)
    assert.equal(2, r.memo_calls_after)
    assert.equal("saved 1", r.on_write)
    assert.same({}, r.on_write_after)
    assert.equal("old", r.batch_before)
    assert.same({}, r.batch_after)
  end)

  it("stats are counted per worker, with the same counters as the blocking path", function()
    local r = srv:call("stats")
    -- set s, get s (hit), get missing (miss), get_or_set gs (miss + set)
    assert.same({ 1, 2, 2 }, { r.hits, r.misses, r.sets })
    assert.is_true(r.text_has_hits)
  end)

  it("on_event may yield and call the cache, as in plain Lua", function()
    local r = srv:call("hook_io")
    assert.is_nil(r.v)
    assert.equal("computed", r.g)
    assert.same({
      { op = "delete", status = "delete", other = "o" },
      { op = "get", status = "miss", other = "o" },
      { op = "get_or_set", status = "miss", other = "o" },
    }, r.seen)
  end)

  it("hicache.testing works in a handler", function()
    local r = srv:call("testing")
    assert.same({ "get_or_set miss user:1", "get hit user:1" }, r.lines)
  end)

  it("pools connections with setkeepalive (getreusedtimes > 0 after warm-up)", function()
    local r = srv:call("pool")
    assert.is_true(r.reused > 0)
    assert.equal("cosocket", r.stats.transport)
    assert.is_true(r.stats.reused > 0)
    assert.equal("OK", r.multi[1])
    assert.equal("QUEUED", r.multi[2])
  end)

  it("TLS through sslhandshake, verified with lua_ssl_trusted_certificate; no client certificates", function()
    local r = srv:call("tls")
    assert.same({ true }, r.set)
    assert.same({ "over tls" }, r.get)
    assert.is_true(r.reused > 0)
    assert.equal(null, r.wrong_name[1])
    assert.matches("^tls: ", r.wrong_name[2])
    assert.equal(null, r.wrong_name2[1])
    assert.matches("^tls: ", r.wrong_name2[2])
    assert.same({ "over tls" }, r.noverify)
    assert.is_false(r.client_cert.ok)
    assert.matches("app%.lua:%d+: invalid option 'tls.cert_file': client certificates %(mutual TLS%) are not available on cosockets",
      r.client_cert.err)
    assert.is_false(r.ca_file.ok)
    assert.matches("lua_ssl_trusted_certificate", r.ca_file.err)
  end)

  it("Redis down: nil, err from reads and writes, get_or_set computes, errors counted", function()
    local r = srv:call("down")
    assert.same({ null, "connection refused" }, r.get)
    assert.equal(null, r.no_resolver[1])
    assert.matches('no resolver defined to resolve "localhost"', r.no_resolver[2], 1, true)
    assert.equal("connection refused", r.set[2])
    assert.same({ "computed", null, "bypass" }, r.get_or_set)
    assert.equal(null, r.lock[1])
    assert.is_true(r.stats_errors >= 3)
  end)

  it("a read on a kept-alive connection the server closed is sent once more; a write is not", function()
    local H = require "helper"
    local pport, events, stop = H.faultproxy { "close:20", "pass", "pass,pass,close:20", "pass" }
    local ok, r = pcall(srv.call, srv, "retry", "port=" .. pport)
    local ev = events()
    stop()
    assert(ok, r)
    assert.equal("v", r.first)
    assert.same({ "v" }, r.get)
    assert.same({ true }, r.has_key)
    assert.is_true(r.pre)
    assert.equal("v", r.warm)
    assert.same({ null, "connection closed" }, r.set, table.concat(ev, " ") .. require("cjson").encode(r))
    assert.same({}, r.written)
    assert.equal(1, r.stats_errors)
    assert.same({ 0, 0 }, r.breaker) -- closed before any reply byte: no failure
    local accepts = 0
    for _, e in ipairs(ev) do if e:match("^accept") then accepts = accepts + 1 end end
    assert.equal(4, accepts, table.concat(ev, "\n"))
  end)

  it("AUTHs once per new connection; a wrong password never shows in the error", function()
    local H = require "helper"
    local secret = "s3cret-" .. core.token():sub(1, 8)
    local extra = H.start_redis { conf = { "requirepass " .. secret } }
    local ok, r = pcall(srv.call, srv, "auth", ("port=%d&password=%s"):format(extra.port, secret))
    extra.stop()
    assert(ok, r)
    assert.same({ true }, r.set)
    assert.same({ "v" }, r.get)
    local n = 0
    for _ in r.clients:gmatch("[^\n]+") do n = n + 1 end
    assert.equal(1, n) -- one connection for all three commands
    assert.equal(null, r.bad[1])
    assert.matches("^auth failed: WRONGPASS", r.bad[2])
    assert.is_nil(r.bad[2]:find(secret, 1, true))
    assert.equal(null, r.none[1])
    assert.matches("NOAUTH", r.none[2])
  end)

  it("a connection left in MULTI, WATCH or another db is closed, never pooled", function()
    local r = srv:call("state")
    assert.equal("OK", r.select)
    assert.same({ "v" }, r.after_select)
    assert.equal("OK", r.multi)
    assert.same({ "v" }, r.after_multi)
    assert.same({ "OK", "PONG" }, r.watch)
    assert.same({ "v" }, r.after_watch)
    assert.same({ "OK", "OK" }, r.reserved)
    assert.same({ "v" }, r.after_reserved)
    assert.equal(0, r.clean) -- in db 0, where the pool's connections are
    assert.equal("PONG", r.clean_reserved)
  end)

  it("an operation's latency starts with it (a reused xio)", function()
    local r = srv:call("latency")
    assert.equal("get", r.op)
    assert.is_true(r.ms < 250, "the get's latency includes the 300 ms before it: " .. r.ms)
  end)

  it("a timeout is not sent again on another connection", function()
    local r = srv:call("timeout_once")
    assert.is_nil(r.v)
    assert.equal("timeout", r.err)
    assert.equal(1, r.created)
  end)

  it("SELECTs the db once per new connection", function()
    local r = srv:call("auth_db")
    assert.equal("in db 3", r.via_cache)
    assert.is_true(r.raw_found)
    assert.matches("db=3", r.db)
  end)

  it("counts stats per worker (two workers)", function()
    local two = nginx.start { workers = 2 }
    local ok, err = pcall(function()
      local served, last = {}, {}
      for _ = 1, 40 do
        local r = two:call("worker_stats")
        served[r.pid] = (served[r.pid] or 0) + 1
        last[r.pid] = r.misses
      end
      for pid, n in pairs(served) do
        assert.equal(n, last[pid], "worker " .. pid .. " counts only its own gets")
      end
    end)
    two:stop()
    assert(ok, err)
  end)

  describe("circuit breaker (per worker, per pool)", function()
    local H = require "helper"

    -- redis-server again on the same port, with the same config
    local function restart(server)
      local _, code = H.shell("redis-server " .. server.dir .. "/redis.conf")
      assert.equal(0, code)
      for _ = 1, 100 do
        local f = io.open(server.dir .. "/redis.log")
        local text = f and f:read("a") or ""
        if f then f:close() end
        local _, n = text:gsub("Ready to accept connections", "")
        if n >= 2 then return end
        socket.sleep(0.05)
      end
      error("redis-server did not start again")
    end

    it("Redis down: opens after `failures`, fails fast, probes by timer, closes when it is back", function()
      local server = H.start_redis()
      local q = "port=" .. server.port
      local ok, err = pcall(function()
        local up = srv:call("breaker_up", q)
        assert.same({ true }, up.set)
        assert.equal("closed", up.stats.breaker)
        server.stop()
        local r = srv:call("breaker_down", q)
        -- three connects refused, then open
        assert.same({ "connection refused", "connection refused", "connection refused",
                      "circuit open: connection refused" }, r.errs)
        assert.same({ breaker = "open", opens = 1, probes = 0, errors = 3, created = 1 }, r.opened)
        -- open: every call fails at once, and none connects (errors counts
        -- failed connects; backoff is off, so each call would connect)
        for i = 1, 20 do assert.equal("circuit open: connection refused", r.fast[i]) end
        assert.same({ null, "circuit open: connection refused" }, r.set)
        assert.same({ "computed", null, "bypass" }, r.gos)
        assert.same({ null, "circuit open: connection refused" }, r.reserve)
        assert.equal(3, r.fast_stats.errors)
        -- a cache with the same settings shares the worker's breaker; it
        -- was made while open, so it reports no change
        assert.same({ null, "circuit open: connection refused" }, r.other)
        assert.equal("open", r.other_stats.breaker)
        assert.equal(0, r.other_stats.errors)
        assert.same({}, r.other_events)
        -- half-open probes (ngx.timer) fail: still open, one opening
        assert.is_true(r.probed)
        assert.equal("open", r.probe_stats.breaker)
        assert.equal(1, r.probe_stats.opens)
        assert.same({ null, "circuit open: connection refused" }, r.after_probes)
        assert.same({ "open" }, r.events)
        -- breaker = false: every call connects and fails, as before
        assert.same({ "connection refused", "connection refused", "connection refused",
                      "connection refused", "connection refused" }, r.off)
        assert.same({ breaker = "closed", opens = 0, probes = 0, errors = 5, created = 0 }, r.off_stats)
        -- back on the same port: a probe closes the breaker
        restart(server)
        local last
        for _ = 1, 100 do
          last = srv:call("breaker_get", q)
          if last.err == nil then break end
          assert.matches("^circuit open: ", last.err)
          socket.sleep(0.05)
        end
        assert.is_nil(last.err)
        assert.equal("closed", last.stats.breaker)
        -- the probe's connection went back with setkeepalive: the get reused it
        assert.equal(2, last.stats.created)
        assert.equal(1, last.stats.opens)
        assert.is_true(last.stats.probes >= 3)
        assert.same({ true }, last.set)
        assert.same({ "back" }, last.get)
        assert.same({}, last.other) -- nil, nil: a miss (its prefix is another), no error
        assert.same({ "open", "closed" }, last.events)
        assert.same({ "closed" }, last.other_events)
      end)
      server.stop()
      assert(ok, err)
    end)

    it("counts timeouts in a row (an answered round resets the count), not Redis error replies", function()
      local r = srv:call("breaker_timeouts")
      assert.same({ true }, r.set)
      for i = 1, 5 do assert.matches("^ERR unknown command", r.replies[i]) end
      assert.equal("closed", r.after_replies.breaker)
      assert.same({ "timeout", "timeout" }, r.two)
      assert.same({ "v" }, r.answered)
      assert.same({ "timeout", "timeout" }, r.two_more)
      assert.equal("closed", r.after_two_more.breaker)
      assert.same({ null, "timeout" }, r.third)
      assert.same({ null, "circuit open: timeout" }, r.fast)
      assert.equal("open", r.opened.breaker)
      assert.is_true(r.back)
      assert.equal("closed", r.closed.breaker)
      assert.equal(1, r.closed.opens)
      assert.same({ "open", "closed" }, r.events)
    end)
  end)

  it("leaves no error in nginx's error log", function()
    local log = srv:error_log()
    assert.is_nil(log:find("%[error%]"), log)
    assert.is_nil(log:find("%[alert%]"), log)
  end)
end)
