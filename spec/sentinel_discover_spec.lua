-- Sentinel master discovery (issue 13: src/router/hc_sentinel.c, bound as
-- core.sentinel_master by src/lua/hc_lsentinel.c) against real sentinels:
-- a master, a replica and three `redis-server --sentinel` started by
-- spec/helpers/topology.lua, with AUTH on the sentinels and on the data
-- nodes (two different passwords). Finds the master; sentinel AUTH;
-- an unknown master name; a dead sentinel is skipped; a failover; a master
-- the sentinels name that is not a master is refused; threads.
local H = require "helper"
local T = require "helpers.topology"
local core = require "hicache.core"

local SPW = "Sentinel-S3cret-Pw"
local DPW = "Data-S3cret-Pw"

-- core.sentinel_master with the topology's sentinels and both passwords;
-- a false in extra removes that option.
local function discover(s, extra)
  local o = {
    sentinels = s.sentinels, master_name = s.master_name,
    sentinel_password = SPW, password = DPW, connect_timeout = 5, timeout = 5,
  }
  for k, v in pairs(extra or {}) do
    if v == false then o[k] = nil else o[k] = v end
  end
  return core.sentinel_master(o)
end

local function port_of(addr)
  return tonumber(addr:match(":(%d+)$"))
end

-- redis-cli against a sentinel of the topology (with its password).
local function sentinel_cli(addr, ...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = "'" .. select(i, ...) .. "'" end
  local out, code = H.shell(("redis-cli -h 127.0.0.1 -p %d -a %s --no-auth-warning %s 2>&1")
    :format(port_of(addr), SPW, table.concat(args, " ")))
  return (out:gsub("\n$", "")), code
end

local function assert_no_password(err)
  assert.is_nil(err:find(SPW, 1, true), err)
  assert.is_nil(err:find(DPW, 1, true), err)
end

describe("core.sentinel_master", function()
  local s
  setup(function() s = T.start_sentinel { sentinel_password = SPW, password = DPW } end)
  teardown(function() if s then s.stop() end end)

  it("returns the master the sentinels report, and which sentinel answered", function()
    local host, port, i = discover(s)
    assert.equal("127.0.0.1", host)
    assert.equal(s.master(), port)
    assert.equal(1, i)
    -- that node says it is the master
    local role = H.shell(("redis-cli -p %d -a %s --no-auth-warning ROLE"):format(port, DPW))
    assert.equal("master", role:match("^(%a+)"))
    -- `first` picks the sentinel asked first
    host, port, i = discover(s, { first = 3 })
    assert.same({ "127.0.0.1", s.master(), 3 }, { host, port, i })
    -- ACL form: the default user named
    host, port = discover(s, { sentinel_username = "default" })
    assert.same({ "127.0.0.1", s.master() }, { host, port })
  end)

  it("needs the sentinels' password: wrong or none is an error naming no password", function()
    local host, err = discover(s, { sentinel_password = "not-" .. SPW })
    assert.is_nil(host)
    assert.matches("^no sentinel answered: sentinel 127%.0%.0%.1:%d+: auth failed: WRONGPASS", err)
    assert_no_password(err)
    host, err = discover(s, { sentinel_password = false })
    assert.is_nil(host)
    assert.matches("^no sentinel answered: sentinel 127%.0%.0%.1:%d+: NOAUTH", err)
    assert_no_password(err)
    -- the data node's password is not the sentinels'
    host, err = discover(s, { sentinel_password = DPW })
    assert.is_nil(host)
    assert.matches("WRONGPASS", err)
    assert_no_password(err)
  end)

  it("authenticates on the master with the data node's password, not the sentinels'", function()
    local host, err = discover(s, { password = "not-" .. DPW })
    assert.is_nil(host)
    local prefix = ("master 127.0.0.1:%d: auth failed: WRONGPASS"):format(s.master())
    assert.equal(prefix, err:sub(1, #prefix))
    assert_no_password(err)
    host, err = discover(s, { password = SPW })
    assert.is_nil(host)
    assert.matches("^master 127%.0%.0%.1:%d+: auth failed: WRONGPASS", err)
    assert_no_password(err)
  end)

  it("an unknown master name is its own error", function()
    local host, err = discover(s, { master_name = "no-such-master" })
    assert.is_nil(host)
    assert.equal("sentinels do not know master 'no-such-master'", err)
  end)

  it("skips a sentinel that is down, and says so when none answers", function()
    local first = s.sentinels[1]
    s.kill9(port_of(first))
    local ok, e = pcall(function()
      local host, port, i = discover(s)
      assert.same({ "127.0.0.1", s.master(), 2 }, { host, port, i })
      -- only dead or silent sentinels: the last error is reported
      local silent = H.silent_listener()
      local h, err = discover(s, { sentinels = { first, "127.0.0.1:" .. silent.port }, timeout = 0.2 })
      silent.stop()
      assert.is_nil(h)
      assert.equal(("no sentinel answered: sentinel 127.0.0.1:%d: timeout"):format(silent.port), err)
      h, err = discover(s, { sentinels = { first } })
      assert.is_nil(h)
      assert.equal(("no sentinel answered: sentinel %s: connection refused"):format(first), err)
    end)
    s.restart(port_of(first))
    assert(ok, e)
  end)

  it("refuses a master the sentinels report that says ROLE slave", function()
    -- A second name monitored by sentinel 1 at the replica's address; its
    -- down-after of 10 minutes keeps the sentinel from acting on it, so
    -- the sentinel reports that address as the master all along.
    local replica
    for _, p in ipairs(s.data_ports) do if p ~= s.master() then replica = p end end
    local one = s.sentinels[1]
    assert.equal("OK", sentinel_cli(one, "SENTINEL", "MONITOR", "fake", "127.0.0.1", tostring(replica), "1"))
    local ok, e = pcall(function()
      assert.equal("OK", sentinel_cli(one, "SENTINEL", "SET", "fake", "down-after-milliseconds", "600000"))
      assert.equal("127.0.0.1\n" .. replica, sentinel_cli(one, "SENTINEL", "get-master-addr-by-name", "fake"))
      local host, err = discover(s, { sentinels = { one }, master_name = "fake" })
      assert.is_nil(host)
      assert.equal(("master 127.0.0.1:%d reported by the sentinels is not a master (role slave)"):format(replica),
        err)
      -- still what the sentinel reports (the refusal was not a race)
      assert.equal("127.0.0.1\n" .. replica, sentinel_cli(one, "SENTINEL", "get-master-addr-by-name", "fake"))
    end)
    sentinel_cli(one, "SENTINEL", "REMOVE", "fake")
    assert(ok, e)
  end)

  it("threads of one process discover at the same time", function()
    local list = {}
    for i, a in ipairs(s.sentinels) do list[i] = ("%q"):format(a) end
    local path = H.dir .. "/sentinel_threads.lua"
    local f = assert(io.open(path, "w"))
    f:write(([[
      local phase, i = ...
      if phase ~= "thread" then return end
      local core = require "hicache.core"
      local seen = {}
      for k = 1, 10 do
        local host, port, who = core.sentinel_master{sentinels = {%s}, master_name = %q,
          sentinel_password = %q, password = %q, first = (i + k) %% 3 + 1, timeout = 5, connect_timeout = 5}
        assert(host, port)
        seen[#seen + 1] = host .. ":" .. port .. "@" .. ((i + k) %% 3 + 1 == who and "first" or who)
      end
      return table.concat(seen, " ")
    ]]):format(table.concat(list, ", "), s.master_name, SPW, DPW))
    f:close()
    local out, code = H.shell(("%s/hc_lua_threads 8 %s 2>&1"):format(H.build, path))
    os.remove(path)
    assert.equal(0, code, out)
    local n = 0
    for answer in out:gmatch("%S+@%S+") do
      assert.equal("127.0.0.1:" .. s.master() .. "@first", answer)
      n = n + 1
    end
    assert.equal(80, n, out)
  end)
end)

describe("core.sentinel_master after a failover", function()
  it("returns the new master", function()
    local s = T.start_sentinel { sentinel_password = SPW, password = DPW }
    local ok, e = pcall(function()
      local old = s.master()
      assert.equal(old, (select(2, discover(s))))
      local new = s.failover() -- returns once every sentinel reports it
      assert.equal(new, s.master())
      assert.not_equal(old, new)
      local host, port = discover(s)
      assert.same({ "127.0.0.1", new }, { host, port })
    end)
    s.stop()
    assert(ok, e)
  end)
end)

describe("core.sentinel_master's arguments", function()
  it("raise at the caller's line", function()
    local bad = {
      { nil, "table expected" },
      { {}, "'sentinels' must be a list" },
      { { sentinels = {} }, "'sentinels' must be a list" },
      { { sentinels = { "127.0.0.1" }, master_name = "m" }, "sentinels%[1%] must be" },
      { { sentinels = { "::1:26379" }, master_name = "m" }, "sentinels%[1%] must be" },
      { { sentinels = { "127.0.0.1:0" }, master_name = "m" }, "sentinels%[1%] must be" },
      { { sentinels = { 26379 }, master_name = "m" }, "sentinels%[1%] must be" },
      { { sentinels = { "127.0.0.1:26379" } }, "'master_name' must be" },
      { { sentinels = { "127.0.0.1:26379" }, master_name = "m", timeout = 0 }, "'timeout' must be" },
      { { sentinels = { "127.0.0.1:26379" }, master_name = "m", sentinel_password = 1 },
        "'sentinel_password' must be" },
      { { sentinels = { "127.0.0.1:26379" }, master_name = "m", first = 2 }, "'first' must be" },
      { { sentinels = { "127.0.0.1:26379" }, master_name = "m", username = "u" }, "'username' needs 'password'" },
    }
    for _, case in ipairs(bad) do
      local ok, err = pcall(core.sentinel_master, case[1])
      assert.is_false(ok)
      assert.matches(case[2], err)
      -- called from a Lua function: the position is that function's line
      local line
      ok, err = pcall(function() line = debug.getinfo(1, "l").currentline; core.sentinel_master(case[1]) end)
      assert.is_false(ok)
      assert.matches("sentinel_discover_spec%.lua:" .. line .. ": bad argument #1", err)
    end
  end)
end)
