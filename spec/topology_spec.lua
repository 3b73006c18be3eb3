-- The Cluster and Sentinel harness itself (spec/helpers/topology.lua):
-- what the router's specs rely on. About 20 s: one plain cluster, one TLS
-- cluster, one sentinel setup.
local H = require "helper"
local T = require "helpers.topology"
local posix = H.posix

local function port_of(addr) return tonumber(addr:match(":(%d+)$")) end

-- every pid has exited at once, and is gone (reaped by init) soon after
local function assert_gone(pids)
  for _, pid in ipairs(pids) do assert.is_false(T.alive(pid), "pid " .. pid .. " still running") end
  T.wait_for("the stopped servers to be reaped", 15, function()
    for _, pid in ipairs(pids) do
      if posix.kill(pid, 0) then return false, "kill -0 " .. pid .. " succeeds" end
    end
    return true
  end)
end

local function pids_of(nodes)
  local t = {}
  for _, node in ipairs(nodes) do t[#t + 1] = assert(node.pid) end
  return t
end

describe("T.start_cluster", function()
  local c
  setup(function() c = T.start_cluster() end)
  teardown(function() if c then c.stop() end end)

  it("starts 3 masters and 3 replicas that cover the 16384 slots", function()
    print(("\n  start_cluster: %.2f s (servers %.2f s, redis-cli --cluster create %.2f s)"):format(
      c.started_in, c.timings.servers, c.timings.create))
    assert.equal(6, #c.seeds)
    assert.equal(6, #c.nodes)
    for i, node in ipairs(c.nodes) do
      assert.equal("127.0.0.1:" .. node.port, c.seeds[i])
      assert.is_true(node.port >= 20000 and node.port <= 22700, "port " .. node.port)
      assert.is_truthy(node.dir:find("/extra%d+%-c%d+$"), node.dir)
      assert.equal(node.pid, tonumber((io.open(node.dir .. "/redis.pid"):read("l"))))
    end
    local masters, replicas = c.masters(), c.replicas()
    assert.equal(3, #masters)
    assert.equal(3, #replicas)
    local is_master, covered, served = {}, 0, {}
    for _, m in ipairs(masters) do
      is_master[m.port] = true
      for _, r in ipairs(m.slots) do
        local a, b = r:match("^(%d+)%-(%d+)$")
        covered = covered + tonumber(b or r) - tonumber(a or r) + 1
      end
    end
    assert.equal(16384, covered)
    for _, r in ipairs(replicas) do
      assert.is_true(is_master[r.master_port], "replica " .. r.port .. " of " .. tostring(r.master_port))
      assert.is_nil(served[r.master_port])
      served[r.master_port] = true
      assert.equal("up", c.cli(r.port, "INFO", "replication"):match("master_link_status:(%a+)"))
    end
  end)

  it("c.slot is CLUSTER KEYSLOT and c.owner the one master that does not answer MOVED", function()
    assert.equal(12182, c.slot("foo"))
    assert.equal(c.slot("{user1}.a"), c.slot("{user1}.b"))
    assert.equal(c.slot("a\0b"), c.slot("a\0b"))
    assert.are_not.equal(c.slot("a\0b"), c.slot("a")) -- the NUL byte reaches Redis
    for i = 1, 12 do
      local key = "owner:" .. i
      local owner, slot = c.owner(key), c.slot(key)
      local answered = 0
      for _, m in ipairs(c.masters()) do
        local out = c.cli(m.port, "GET", key)
        if m.port == owner then
          assert.is_nil(out:find("MOVED", 1, true), out)
          answered = answered + 1
        else
          assert.equal(("MOVED %d 127.0.0.1:%d"):format(slot, owner), out)
        end
      end
      assert.equal(1, answered)
    end
  end)

  it("c.migrate_slot moves a slot and its keys, with ASK while it migrates", function()
    local keys = { "{foo}a", "{foo}b", "{foo}c\0\n\"x", "{foo}d" }
    local slot, source = c.slot("{foo}"), c.owner("{foo}")
    for _, k in ipairs(keys) do assert.equal("OK", c.call(source, "SET", k, "v:" .. k)) end
    local target
    for _, m in ipairs(c.masters()) do
      if m.port ~= source then target = m.port end
    end
    local paused
    local moved = c.migrate_slot(slot, target, { pause_between = function(info)
      paused = info
      assert.equal(slot, info.slot)
      assert.equal(source, info.source)
      assert.equal(target, info.target)
      assert.equal(2, #info.moved)
      assert.equal(2, #info.remaining)
      -- a key already moved: the source asks the client to go to the target
      assert.equal(("ASK %d 127.0.0.1:%d"):format(slot, target), c.call(source, "GET", info.moved[1]))
      -- a key not moved yet: the source still serves it
      assert.equal("v:" .. info.remaining[1], c.call(source, "GET", info.remaining[1]))
      -- the target serves a moved key only after ASKING
      assert.equal(("MOVED %d 127.0.0.1:%d"):format(slot, source), c.call(target, "GET", info.moved[1]))
      local out = c.cli(target, "CLUSTER", "NODES")
      assert.is_truthy(out:find("[" .. slot .. "-<-", 1, true), out)
    end })
    assert.is_table(paused)
    assert.equal(4, #moved)
    assert.equal(target, c.owner("{foo}"))
    assert.equal(target, c.slot_owner(slot))
    for _, k in ipairs(keys) do
      assert.equal("v:" .. k, c.call(target, "GET", k))
      assert.equal(("MOVED %d 127.0.0.1:%d"):format(slot, target), c.call(source, "GET", k))
    end
    -- every node serves the new map: no MOVED from the target anywhere
    for _, node in ipairs(c.nodes) do
      local out = c.cli(node.port, "CLUSTER", "NODES")
      assert.is_nil(out:find("[" .. slot .. "-", 1, true), out) -- no migration left open
    end
  end)

  it("c.failover promotes a replica; the old master becomes its replica", function()
    local r = c.replicas()[1]
    local old = r.master_port
    local t0 = posix.now()
    c.failover(r.port)
    print(("\n  cluster failover: %.2f s"):format(posix.now() - t0))
    assert.equal("master", c.cli(r.port, "ROLE"):match("^[^\n]*"))
    local found
    for _, x in ipairs(c.replicas()) do
      if x.port == old then found = x end
    end
    assert.is_table(found)
    assert.equal(r.port, found.master_port)
    assert.equal(3, #c.masters())
  end)

  it("c.kill9 of a master: its replica takes over; c.restart brings it back as a replica", function()
    local r = c.replicas()[1]
    local victim = r.master_port
    local key
    for i = 1, 1000 do
      if c.owner("k" .. i) == victim then key = "k" .. i; break end
    end
    assert.equal("OK", c.cli(victim, "SET", key, "kept"))
    T.wait_for("the replica to have the key", 10, function() return c.cli(r.port, "READONLY", "GET", key) end)
    c.kill9(victim)
    local t0 = posix.now()
    c.wait_ok()
    print(("\n  cluster automatic failover after kill -9: %.2f s"):format(posix.now() - t0))
    assert.equal(r.port, c.owner(key))
    c.restart(victim)
    c.wait_ok()
    local back
    for _, x in ipairs(c.replicas()) do
      if x.port == victim then back = x end
    end
    assert.is_table(back)
    assert.equal(r.port, back.master_port)
    assert.equal("kept", c.cli(r.port, "GET", key))
  end)

  it("c.stop() leaves no process, twice", function()
    local pids = pids_of(c.nodes)
    c.stop()
    c.stop()
    assert_gone(pids)
    for _, node in ipairs(c.nodes) do assert.is_nil(io.open(node.dir .. "/redis.pid")) end
    c = nil
  end)
end)

describe("T.start_cluster{tls = true}", function()
  it("runs the cluster on TLS ports only", function()
    local c = T.start_cluster { tls = true }
    finally(function() c.stop() end)
    for _, node in ipairs(c.nodes) do
      assert.equal("PONG", c.cli(node.port, "PING"))
      -- no plain-text answer on the port
      local out = H.shell("redis-cli -h 127.0.0.1 -p " .. node.port .. " PING")
      assert.is_nil(out:find("PONG", 1, true), out)
    end
    local owner = c.owner("tls-key")
    assert.equal("OK", c.cli(owner, "SET", "tls-key", "1"))
    local to
    for _, m in ipairs(c.masters()) do
      if m.port ~= owner then to = m.port end
    end
    c.migrate_slot(c.slot("tls-key"), to) -- MIGRATE over TLS
    assert.equal("1", c.cli(to, "GET", "tls-key"))
  end)
end)

describe("T.start_sentinel", function()
  local s
  setup(function() s = T.start_sentinel { password = "data pw", sentinel_password = "sentinel'pw" } end)
  teardown(function() if s then s.stop() end end)

  it("starts a master, a replica and 3 sentinels that know each other", function()
    print(("\n  start_sentinel: %.2f s"):format(s.started_in))
    assert.equal("mymaster", s.master_name)
    assert.equal(3, #s.sentinels)
    assert.equal(2, #s.data_ports)
    assert.equal(s.data_ports[1], s.master())
    for _, node in ipairs(s.nodes) do
      assert.is_true(node.port >= 20000 and node.port <= 22700)
      assert.is_truthy(node.dir:find("/extra%d+%-s%d+$"), node.dir)
      assert.equal(node.pid, tonumber((io.open(node.dir .. "/redis.pid"):read("l"))))
    end
    for _, addr in ipairs(s.sentinels) do
      local port = port_of(addr)
      assert.equal("sentinel", s.cli(port, "ROLE"):match("^[^\n]*"))
      local sentinels = s.cli(port, "SENTINEL", "sentinels", "mymaster")
      local n = 0
      for _ in sentinels:gmatch("\nrunid\n") do n = n + 1 end
      assert.equal(2, n)
      local replicas = s.cli(port, "SENTINEL", "replicas", "mymaster")
      assert.is_truthy(replicas:find("\nport\n" .. s.data_ports[2] .. "\n", 1, true), replicas)
    end
    assert.equal("up", s.cli(s.data_ports[2], "INFO", "replication"):match("master_link_status:(%a+)"))
  end)

  it("the sentinels and the data nodes require their passwords", function()
    for _, port in ipairs { port_of(s.sentinels[1]), s.data_ports[1] } do
      local out = H.shell("redis-cli -h 127.0.0.1 -p " .. port .. " PING")
      assert.is_truthy(out:find("NOAUTH", 1, true), out)
      assert.equal("PONG", s.cli(port, "PING"))
    end
    local out = H.shell(("redis-cli -h 127.0.0.1 -p %d --no-auth-warning -a 'data pw' PING"):format(
      port_of(s.sentinels[1])))
    assert.is_truthy(out:find("WRONGPASS", 1, true), out)
  end)

  it("s.failover switches the master the sentinels report", function()
    local old = s.master()
    assert.equal("OK", s.cli(old, "SET", "before-failover", "1"))
    T.wait_for("the replica to have the key", 10, function()
      return s.cli(s.data_ports[2], "GET", "before-failover") == "1"
    end)
    local t0 = posix.now()
    local new = s.failover()
    print(("\n  sentinel failover: %.2f s"):format(posix.now() - t0))
    assert.are_not.equal(old, new)
    assert.equal(s.data_ports[2], new)
    for _, addr in ipairs(s.sentinels) do
      local out = s.cli(port_of(addr), "SENTINEL", "get-master-addr-by-name", "mymaster")
      assert.equal("127.0.0.1\n" .. new, out)
    end
    assert.equal(new, s.master())
    assert.equal("master", s.cli(new, "ROLE"):match("^[^\n]*"))
    local repl = s.cli(old, "INFO", "replication")
    assert.equal("slave", repl:match("role:(%a+)"))
    assert.equal(tostring(new), repl:match("master_port:(%d+)"))
    assert.equal("up", repl:match("master_link_status:(%a+)"))
    assert.equal("1", s.cli(new, "GET", "before-failover"))
    assert.equal("OK", s.cli(new, "SET", "after-failover", "1"))
  end)

  it("s.stop() leaves no process, twice", function()
    local pids = pids_of(s.nodes)
    s.stop()
    s.stop()
    assert_gone(pids)
    s = nil
  end)
end)
