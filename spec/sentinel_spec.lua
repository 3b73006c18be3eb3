-- A cache behind Redis Sentinel (issue 13): a master, a replica and three
-- sentinels (`redis-server --sentinel`, spec/helpers/topology.lua).
-- Discovery, AUTH on the sentinels (a password of their own) and on the
-- data nodes, the URL form, option errors; then, on a second group (no
-- sentinel password, so that spec/helpers/load.lua's URL reaches it): a
-- write after a failover is not refused with READONLY and lands on the new
-- master (read back there with redis-cli), pool_stats().sentinel counts
-- the switches, a failover under load by 3 processes gives no wrong value
-- and service comes back, and a killed old master restarted on its port
-- (a master again, empty, until Sentinel demotes it) never gets a write.
local H = require "helper"
local T = require "helpers.topology"
local load = require "helpers.load"
local hicache = H.hicache
local posix = H.posix

local SPW = "Sentinel-S3cret-Pw"
local DPW = "Data-S3cret-Pw"
local RECOVERY = 20 -- s: "comes back", not a timing goal

local function port_of(addr) return tonumber(addr:match(":(%d+)$")) end

local function no_password(s)
  assert.is_nil(s:find(SPW, 1, true), s)
  assert.is_nil(s:find(DPW, 1, true), s)
end

describe("a cache behind Sentinel: discovery and AUTH", function()
  local s
  lazy_setup(function() s = T.start_sentinel { sentinel_password = SPW, password = DPW } end)
  lazy_teardown(function() if s then s.stop() end end)

  local function new(extra)
    local o = { sentinels = s.sentinels, master_name = s.master_name, sentinel_password = SPW, password = DPW,
                prefix = "sd" }
    for k, v in pairs(extra or {}) do
      if v == false then o[k] = nil else o[k] = v end
    end
    return hicache.new(o)
  end

  it("finds the master the sentinels name; commands go there", function()
    local cache = assert(new())
    local master = s.master()
    assert.same({ "127.0.0.1:" .. master }, cache:nodes())
    assert.is_true(cache:set("k", 42))
    assert.equal("42", (s.cli(master, "GET", cache:_key("k"))))
    assert.equal(42, cache:get("k"))
    assert.matches("role:master", cache:command("INFO", "replication"))
    assert.matches("tcp_port:" .. master .. "\r\n", cache:node_command("127.0.0.1:" .. master, "INFO", "server"),
      1, true)
    local st = assert(cache:pool_stats())
    assert.equal("127.0.0.1:" .. master, st.sentinel.master)
    assert.equal(0, st.sentinel.switches)
    assert.is_true(st.sentinel.discoveries >= 1)
    no_password(tostring(cache))
    -- a reserved connection goes to the master too
    local conn = assert(cache:reserve())
    assert.equal(tostring(master), conn:command("CONFIG", "GET", "port")[2])
    conn:release()
    cache:delete("k")
  end)

  it("the URL form: the data nodes' credentials and db in the URL, the sentinels' password apart", function()
    local url = ("redis+sentinel://:%s@%s/%s/3"):format(DPW, table.concat(s.sentinels, ","), s.master_name)
    local cache = assert(hicache.new { url = url, sentinel_password = SPW, prefix = "sdu" })
    assert.is_true(cache:set("k", 7))
    assert.equal("7", (s.cli(s.master(), "-n", "3", "GET", cache:_key("k"))))
    assert.equal("", (s.cli(s.master(), "GET", cache:_key("k"))))
    cache:delete("k")
    -- ACL form: the default user named for the sentinels
    local c2 = assert(new { sentinel_username = "default" })
    assert.is_true(c2:set("acl", 1))
    c2:delete("acl")
  end)

  it("AUTH: a wrong or missing password is an error that names no password", function()
    local cache, err = new { sentinel_password = "not-" .. SPW }
    assert.is_nil(cache)
    assert.matches("^no sentinel answered: sentinel 127%.0%.0%.1:%d+: auth failed: WRONGPASS", err)
    no_password(err)
    cache, err = new { sentinel_password = false }
    assert.is_nil(cache)
    assert.matches("^no sentinel answered: sentinel 127%.0%.0%.1:%d+: NOAUTH", err)
    -- the data nodes' password is not the sentinels'
    cache, err = new { sentinel_password = DPW }
    assert.is_nil(cache)
    assert.matches("WRONGPASS", err)
    no_password(err)
    cache, err = new { password = "not-" .. DPW }
    assert.is_nil(cache)
    assert.equal(("master 127.0.0.1:%d: auth failed: WRONGPASS"):format(s.master()),
      err:sub(1, #("master 127.0.0.1:%d: auth failed: WRONGPASS"):format(s.master())))
    no_password(err)
    cache, err = new { master_name = "no-such-master" }
    assert.is_nil(cache)
    assert.equal("sentinels do not know master 'no-such-master'", err)
  end)

  it("skips a sentinel that is down or does not answer", function()
    local silent = H.silent_listener()
    local closed = H.silent_listener()
    local closed_port = closed.port
    closed.stop()
    local cache = assert(new { sentinels = { "127.0.0.1:" .. closed_port, "127.0.0.1:" .. silent.port,
                                             s.sentinels[3] }, timeout = 0.2 })
    silent.stop()
    assert.is_true(cache:set("skip", 1))
    assert.equal("1", (s.cli(s.master(), "GET", cache:_key("skip"))))
    cache:delete("skip")
    local none, err = new { sentinels = { "127.0.0.1:" .. closed_port } }
    assert.is_nil(none)
    assert.equal(("no sentinel answered: sentinel 127.0.0.1:%d: connection refused"):format(closed_port), err)
  end)

  it("option errors raise at the caller's line", function()
    local sent = s.sentinels
    local bad = {
      { { sentinels = sent }, "invalid option 'master_name': must be a non-empty string without spaces (the name "
        .. "the sentinels monitor)" },
      { { master_name = "m" }, "invalid option 'master_name': is an option of 'sentinels'" },
      { { sentinel_password = "x" }, "invalid option 'sentinel_password': is an option of 'sentinels'" },
      { { sentinels = sent, master_name = "m", sentinel_username = "u" },
        "invalid option 'sentinel_username': needs sentinel_password" },
      { { sentinels = sent, master_name = "m", l1 = true },
        "invalid option 'l1': is not available with 'sentinels' yet" },
      { { sentinels = sent, master_name = "m", port = 1 },
        "invalid option 'port': cannot be combined with 'sentinels'" },
      { { sentinels = sent, master_name = "m", backend = "memory" },
        "invalid option 'sentinels': cannot be used with backend = \"memory\" (there is no server)" },
      { { url = "redis+sentinel://" .. sent[1] }, "invalid option 'url': redis+sentinel:// needs /master_name after "
        .. "the sentinels" },
      { { sentinels = { "nohost" }, master_name = "m" },
        "invalid option 'sentinels': entries must be \"host:port\" (or \"[IPv6]:port\")" },
    }
    for _, case in ipairs(bad) do
      local line
      local ok, e = pcall(function() line = debug.getinfo(1, "l").currentline; hicache.new(case[1]) end)
      assert.is_false(ok)
      assert.equal(("spec/sentinel_spec.lua:%d: %s"):format(line, case[2]), e)
    end
  end)
end)

describe("a cache behind Sentinel: failovers", function()
  local s, url
  local report = {}
  lazy_setup(function()
    s = T.start_sentinel { password = DPW }
    url = ("redis+sentinel://:%s@%s/%s"):format(DPW, table.concat(s.sentinels, ","), s.master_name)
  end)
  lazy_teardown(function()
    if s then s.stop() end
    for _, line in ipairs(report) do print(line) end
  end)

  local function get_on(port, name) return (s.cli(port, "GET", name)) end

  it("after a failover the next write is not refused with READONLY: it moves to the new master", function()
    local cache = assert(hicache.new { url = url, prefix = "ro" })
    local old = s.master()
    assert.is_true(cache:set("k", 1))
    assert.equal("1", get_on(old, cache:_key("k")))
    for round = 1, 2 do
      local new = s.failover() -- the old master is made a replica of the new one
      assert.not_equal(old, new)
      assert.equal("slave", (s.cli(old, "ROLE")):match("^%a+"))
      -- the pool still holds connections to the old master, now a replica:
      -- the write meets READONLY there, and is sent to the new master
      local ok, err = cache:set("k", 10 + round)
      assert.is_true(ok, err)
      assert.equal(tostring(10 + round), get_on(new, cache:_key("k")))
      assert.equal(10 + round, cache:get("k"))
      assert.same({ "127.0.0.1:" .. new }, cache:nodes())
      local st = assert(cache:pool_stats()).sentinel
      assert.equal("127.0.0.1:" .. new, st.master)
      assert.equal(round, st.switches)
      -- every write path and a script: none refused
      assert.equal(10 + round + 1, cache:incr("k"))
      assert.is_true(cache:set("k2", "x", 60, { tags = { "t" } }))
      assert.is_true(cache:invalidate_tag("t"))
      local l = assert(cache:lock("l" .. round))
      assert(l:release())
      assert.same({ "v", nil, "miss" }, { cache:get_or_set("g" .. round, function() return "v" end) })
      assert.equal(tostring(10 + round + 1), get_on(new, cache:_key("k")))
      old = new
    end
    cache:delete("k")
  end)

  it("a failover under load by 3 processes: no wrong value, errors only around it, service back", function()
    local cache = assert(hicache.new { url = url, prefix = "sfl", timeout = 0.2 })
    local run = load.start(H, { url = url, procs = 3, seconds = 40, timeout = 0.2, prefix = "sfl" })
    local finished = false
    finally(function() -- a failed test stops its load too
      if not finished then
        run:back(posix.now())
        pcall(run.finish, run)
      end
    end)
    run:ready()
    local old = s.master()
    local t0 = posix.now()
    local new = s.failover()
    local t_switched = posix.now()
    -- back: a write of this process lands on the new master
    local back, n = nil, 0
    while posix.now() - t0 < RECOVERY do
      n = n + 1
      if cache:set("probe", n, 60) and get_on(new, cache:_key("probe")) == tostring(n) then
        back = posix.now()
        break
      end
      posix.sleep(0.01)
    end
    assert(back, "no write reached the new master")
    run:back(back)
    local res = run:finish()
    finished = true
    assert.equal(0, res.rc, "the load program failed:\n" .. res.log)
    local errors, ops, msgs = 0, 0, {}
    for i, p in ipairs(res.procs) do
      assert.equal(0, res.codes[i], res.log)
      assert.equal(0, p.wrong, ("process %d read wrong values: %s"):format(i, table.concat(p.wrong_examples, "; ")))
      assert.same({}, p.raised)
      for msg, e in pairs(p.errors) do
        local m = msg:gsub("^bypass: ", ""):gsub("^circuit open: ", "")
        local o = {}
        for op, k in pairs(e.ops) do o[#o + 1] = op .. "=" .. k end
        table.sort(o)
        assert(m == "connection closed" or m == "connection reset" or m == "connection refused" or m == "timeout",
          ("process %d: unexpected error %q (%d times: %s)"):format(i, msg, e.n, table.concat(o, " ")))
        assert(e.first >= t0 and e.last <= back + RECOVERY, ("process %d: %q outside the failover"):format(i, msg))
        errors = errors + e.n
        msgs[msg] = (msgs[msg] or 0) + e.n
      end
      assert(p.first_ok_after_back, ("process %d never succeeded after the failover"):format(i))
      ops = ops + p.ops
    end
    assert.equal(0, res.never_written)
    local m = {}
    for k, v in pairs(msgs) do m[#m + 1] = ("%q x%d"):format(k, v) end
    table.sort(m)
    report[#report + 1] = ("\nSentinel failover %d -> %d under load: switched in %.3f s, a write reached the new "
      .. "master %.3f s after SENTINEL FAILOVER; %d ops, %d errors: %s")
      :format(old, new, t_switched - t0, back - t0, ops, errors, table.concat(m, ", "))
    local st = assert(cache:pool_stats()).sentinel
    assert.equal("127.0.0.1:" .. new, st.master)
    assert.is_true(st.switches >= 1)
  end)

  it("a killed master restarted on its port (a master again, empty) never gets a write", function()
    local busy = assert(hicache.new { url = url, prefix = "rs", timeout = 0.2 })
    local idle = assert(hicache.new { url = url, prefix = "rs", timeout = 0.25 }) -- a pool of its own
    local old = s.master()
    local replica
    for _, p in ipairs(s.data_ports) do if p ~= old then replica = p end end
    assert.is_true(busy:set("before", 1))
    assert.is_true(idle:set("before", 2))
    local t0 = posix.now()
    s.kill9(old)
    -- the busy cache writes all along; the idle one keeps its pooled
    -- connections to the dead master
    local i, errs, refailover = 0, {}, nil
    local function write(cache, name)
      i = i + 1
      local ok, err = cache:set(name, i, 60)
      if ok then
        -- written: it is on the master the sentinels name, never elsewhere
        local got = get_on(replica, cache:_key(name))
        if got ~= tostring(i) and s.master() == old and get_on(old, cache:_key(name)) == tostring(i) then
          -- the sentinels themselves moved back to the old port (a second
          -- failover: on a starved machine the new master missed its 1 s
          -- down-after): a write where they point is right
          refailover = refailover or i
          return true
        end
        if got ~= tostring(i) then
          local e = {}
          for k, v in pairs(errs) do e[#e + 1] = ("%q x%d"):format(k, v) end
          error(("%s: write #%d is not on the new master %d (%.2f s after the kill; the sentinels name %d) but on %d "
            .. "(ROLE %s, holds %q); errors so far: %s"):format(name, i, replica, posix.now() - t0, s.master(), old,
            (s.cli(old, "ROLE")):match("^%a+"), get_on(old, cache:_key(name)), table.concat(e, ", ")), 0)
        end
        return true
      end
      errs[tostring(err)] = (errs[tostring(err)] or 0) + 1
      return false
    end
    T.wait_for("the sentinels to promote the replica", RECOVERY, function()
      write(busy, "busy")
      posix.sleep(0.01)
      if (s.cli(replica, "ROLE")):match("^%a+") ~= "master" then return false, "ROLE of " .. replica end
      -- every sentinel names it, its failover over (a node back before
      -- +switch-master may be named again)
      for _, a in ipairs(s.sentinels) do
        local fields = {}
        local ls = {}
        local out = s.cli(port_of(a), "SENTINEL", "MASTER", s.master_name)
        for l in (out .. "\n"):gmatch("(.-)\n") do ls[#ls + 1] = l end
        for j = 1, #ls - 1, 2 do fields[ls[j]] = ls[j + 1] end
        if tonumber(fields.port) ~= replica or (fields.flags or "?"):find("failover", 1, true) then
          return false, ("sentinel %s: port %s, flags %s"):format(a, tostring(fields.port), tostring(fields.flags))
        end
      end
      return true
    end)
    local t_promoted = posix.now()
    s.restart(old) -- no persistence, no replicaof in its config: an empty master
    assert.equal("master", (s.cli(old, "ROLE")):match("^%a+"))
    local t_restarted = posix.now()
    -- until Sentinel demotes it, the restarted node accepts writes: none
    -- of ours may go there
    local ok_busy, ok_idle, demoted = 0, 0, nil
    local deadline = posix.now() + 15
    while posix.now() < deadline do
      if write(busy, "busy") then ok_busy = ok_busy + 1 end
      if write(idle, "idle") then ok_idle = ok_idle + 1 end
      -- EXISTS first, ROLE after: once Sentinel demotes the node, it syncs
      -- from the new master at once (our writes included), so only a node
      -- still a master after the EXISTS was one when it answered
      local there = (s.cli(old, "EXISTS", busy:_key("busy"), idle:_key("idle")))
      if (s.cli(old, "ROLE")):match("^%a+") == "master" then
        assert.equal("0", there, "a write went to the restarted old master")
      elseif not demoted then
        demoted = posix.now()
      end
      if demoted and posix.now() - demoted > 1 and ok_idle > 10 then break end
      if refailover then break end
      posix.sleep(0.02)
    end
    if refailover then -- nothing more to check of this run: say so
      report[#report + 1] = ("\nkill -9 of master %d: the sentinels failed over a second time, back to %d, "
        .. "at write #%d (a starved machine); the writes followed them"):format(old, old, refailover)
      return
    end
    assert.equal(replica, s.master())
    assert.is_true(ok_busy > 10, "busy: writes after the restart: " .. ok_busy)
    assert.is_true(ok_idle > 10, "idle: writes after the restart: " .. ok_idle)
    local e = {}
    for k, v in pairs(errs) do e[#e + 1] = ("%q x%d"):format(k, v) end
    table.sort(e)
    report[#report + 1] = ("\nkill -9 of master %d: replica %d promoted after %.2f s, old master restarted at "
      .. "%.2f s%s; writes after the restart: %d + %d, all on %d; errors: %s"):format(old, replica,
      t_promoted - t0, t_restarted - t0, demoted and (", demoted by Sentinel at %.2f s"):format(demoted - t0) or
      ", not demoted within 15 s", ok_busy, ok_idle, replica, table.concat(e, ", "))
  end)
end)
