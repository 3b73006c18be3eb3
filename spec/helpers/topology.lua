-- spec/helpers/topology.lua -- throwaway Redis Cluster and Sentinel
-- topologies for the specs (issue 13). `local T = require "helpers.topology"`
-- (spec/ is on LUA_PATH; spec/run.sh sets it).
--
-- T.start_cluster{masters = 3, replicas = 1, conf = {lines}, tls = false,
--                 client_certs = false, cert = "server", password = nil} -> c
--   masters * (1 + replicas) nodes (masters >= 3: redis-cli --cluster
--   create), cluster-node-timeout 1000, no persistence, diskless sync,
--   enable-debug-command yes; tls: TLS port only, tls-cluster and
--   tls-replication yes, certificates from H.tls_dir (cert, client_certs:
--   tls-auth-clients yes); password: requirepass + masterauth. Returns
--   once every node says cluster_state:ok, every replica has its master
--   link up and every node has the same slot map (about 2 s).
--   c.seeds {"127.0.0.1:port"}, c.nodes {{port =, dir =, pid =}},
--   c.started_in, c.timings {servers =, create =} (seconds since start)
--   c.masters() {{port =, id =, slots = {"a-b"}}}, c.replicas() {{port =,
--     id =, master_port =, master_id =}}: as a live node sees them now,
--     failed nodes left out, sorted by port
--   c.slot(key) CLUSTER KEYSLOT; c.owner(key), c.slot_owner(slot): the port
--     of the master serving it now
--   c.cli(port, ...) redis-cli with these arguments -> output, exit code;
--     c.call(port, ...) the same command sent on stdin (any bytes in the
--     arguments); see cli() below for the output
--   c.kill9(port), c.restart(port) (same port, conf and nodes.conf; returns
--     once it answers: call c.wait_ok() for the cluster to take it back)
--   c.failover(replica_port [, "FORCE" | "TAKEOVER"]) CLUSTER FAILOVER,
--     returns once that node is master and c.wait_ok() holds
--   c.wait_ok([timeout]) every live node: cluster_state:ok, the same slot
--     map (masters' slots, replicas' masters), no live node seen failing,
--     replicas' master link up
--   c.migrate_slot(slot, to_port, {pause_between = fn, before_pause = n,
--     batch = 100}) the resharding protocol (below); returns the keys moved
--   c.stop() kills every node and waits (idempotent; call it in a finally)
--
-- T.start_sentinel{password = nil, sentinel_password = nil, conf = {lines},
--                  sentinel_conf = {lines}} -> s
--   a master, its replica (link up) and 3 sentinels (`redis-server conf
--   --sentinel`: monitor mymaster quorum 2, down-after 1000 ms, failover
--   timeout 3000 ms, parallel-syncs 1); password: the data nodes'
--   requirepass/masterauth and the sentinels' auth-pass; sentinel_password:
--   the sentinels' requirepass. Returns once every sentinel reports the
--   master and knows the replica and the 2 other sentinels (about 2 s).
--   s.master_name "mymaster", s.sentinels {"127.0.0.1:port"}, s.data_ports
--   {master, replica} (as started), s.nodes (all 5), s.started_in
--   s.master() the port a live sentinel reports now
--   s.cli(port, ...), s.call(port, ...) as c.cli/c.call (the right password)
--   s.failover{timeout =, natural =} -> the new master's port (below)
--   s.kill9(port), s.restart(port) (data node or sentinel), s.stop()
--
-- T.alive(pid) (not exited; a zombie has), T.wait_for(what, timeout, fn)
-- (polls fn until it returns true; raises with fn's second value),
-- T.sh_quote(s).
--
-- Every process is a system redis-server daemonized in its own directory
-- H.dir .. "/extra<pid>-c<n>" (cluster) or "/extra<pid>-s<n>" (sentinel
-- setup) with its pid file `redis.pid` there, so spec/run.sh's
-- stop_extra_redis stops it if the spec dies. Ports are picked at random in
-- 20000-22700 (the cluster bus is port + 10000, below the ephemeral range
-- 32768+), checked free, and picked again when the server reports "Address
-- already in use" (other specs run at the same time).
--
-- All commands go through redis-cli (also for TLS and AUTH), so the harness
-- does not depend on the hicache client it is used to test. Keys are passed
-- to redis-cli on stdin in its quoted form ("a\x00b"), so binary key names
-- survive a slot migration.
--
-- Waits poll every 20 ms and raise after a timeout (default 20 s) with the
-- condition that did not hold. A process counts as gone once it is dead or
-- a zombie (init reaps daemonized processes; in some containers only after
-- a second or so).
local H = require "helper"
local posix = H.posix

local T = {}

local PORT_LOW, PORT_HIGH = 20000, 22700
local POLL = 0.02
local DEFAULT_TIMEOUT = 20

-- ---- small tools -----------------------------------------------------------

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
T.sh_quote = sh_quote

-- an argument in redis-cli's stdin syntax (sdssplitargs): double-quoted,
-- \\ \" and \xHH escapes; any bytes survive.
local function cli_arg(s)
  s = tostring(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(ch)
    if ch == '"' or ch == "\\" then return "\\" .. ch end
    return ("\\x%02x"):format(ch:byte())
  end) .. '"'
end

--- T.alive(pid): true while pid is a process that has not exited (a zombie
-- has exited).
function T.alive(pid)
  if not pid then return false end
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a") or ""
  f:close()
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function lines(s)
  local t = {}
  for line in ((s or ""):gsub("\r", "") .. "\n"):gmatch("(.-)\n") do t[#t + 1] = line end
  if t[#t] == "" then t[#t] = nil end
  return t
end

local function trim(s)
  return (tostring(s or ""):gsub("^%s+", ""):gsub("%s+$", ""))
end

-- polls fn() (true: done; false/nil, why: not yet) until timeout seconds.
local function wait_for(what, timeout, fn)
  local deadline = posix.now() + (timeout or DEFAULT_TIMEOUT)
  local why
  while true do
    local ok, res, reason = pcall(fn)
    if ok and res then return res end
    why = ok and reason or res
    if posix.now() > deadline then
      error(("topology: timed out waiting for %s: %s"):format(what, tostring(why)), 0)
    end
    posix.sleep(POLL)
  end
end
T.wait_for = wait_for

-- a unique directory number per process (busted reloads this module per
-- spec file: the counter lives in the registry).
local function next_dir(kind)
  local reg = debug.getregistry()
  reg.hicache_topology_n = (reg.hicache_topology_n or 0) + 1
  local dir = ("%s/extra%d-%s%d"):format(H.dir, posix.getpid(), kind, reg.hicache_topology_n)
  assert(H.execute("rm -rf " .. sh_quote(dir) .. " && mkdir -p " .. sh_quote(dir)), "mkdir " .. dir)
  return dir
end

-- ports handed out by this process and still in use (not picked twice).
local taken = {}
local rng_state
local function random_below(n)
  -- math.random is seeded alike in processes started in the same second
  -- (busted's seed): mix in the pid and the clock.
  if not rng_state then
    rng_state = (posix.getpid() * 7919 + math.floor(posix.now() * 1e6)) % 2147483647
  end
  rng_state = (rng_state * 48271 + math.random(0, 65535)) % 2147483647
  return rng_state % n
end

local function port_free(port)
  local socket = require "socket"
  local s = socket.tcp()
  s:setoption("reuseaddr", true)
  local ok = s:bind("127.0.0.1", port)
  s:close()
  return ok ~= nil
end

-- a loopback port in [20000, 22700] whose bus port (+10000) is free too.
local function pick_port()
  for _ = 1, 200 do
    local port = PORT_LOW + random_below(PORT_HIGH - PORT_LOW + 1)
    if not taken[port] and port_free(port) and port_free(port + 10000) then
      taken[port] = true
      return port
    end
  end
  error("topology: no free port in 20000-22700")
end

-- ---- one redis-server --------------------------------------------------------
-- node = {port =, dir =, pid =, conf_lines = function(port) -> {lines},
--         sentinel = bool, password =, tls = {...} | nil}

-- redis-cli for node (password in REDISCLI_AUTH, TLS options), under
-- `timeout` (a SIGSTOPped server accepts and never answers): 10 s, or
-- 60 s for the cluster manager (no_addr).
local function cli_prefix(node, no_addr)
  local parts = {}
  if node.password then parts[#parts + 1] = "REDISCLI_AUTH=" .. sh_quote(node.password) end
  parts[#parts + 1] = no_addr and "timeout 60 redis-cli" or "timeout 10 redis-cli -h 127.0.0.1 -p " .. node.port
  if node.tls then
    parts[#parts + 1] = "--tls --cacert " .. sh_quote(H.tls_dir .. "/ca.crt")
    if node.tls.client_certs then
      parts[#parts + 1] = ("--cert %s --key %s"):format(sh_quote(H.tls_dir .. "/client.crt"),
        sh_quote(H.tls_dir .. "/client.key"))
    end
  end
  return table.concat(parts, " ")
end

-- redis-cli with argv arguments -> its output (raw: replies one a line,
-- errors as their text; \r and the trailing newlines removed), exit code.
local function cli(node, ...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = sh_quote((select(i, ...))) end
  local out, code = H.shell(cli_prefix(node) .. " " .. table.concat(args, " "))
  return (out:gsub("\r", ""):gsub("\n+$", "")), code
end

-- redis-cli fed command lines on stdin (each a list of arguments, quoted
-- with cli_arg): binary-safe. extra: redis-cli options (e.g. "--no-raw").
local function cli_stdin(node, commands, extra)
  local text = {}
  for i, cmd in ipairs(commands) do
    local q = {}
    for j, a in ipairs(cmd) do q[j] = cli_arg(a) end
    text[i] = table.concat(q, " ")
  end
  local path = node.dir .. "/stdin." .. tostring(random_below(1e9))
  write_file(path, table.concat(text, "\n") .. "\n")
  local out, code = H.shell(cli_prefix(node) .. " " .. (extra or "") .. " < " .. sh_quote(path))
  os.remove(path)
  return (out:gsub("\r", ""):gsub("\n+$", "")), code
end

-- redis-cli's quoted form ("a\x00b", sdscatrepr) -> the bytes.
local REPR_ESC = { n = "\n", r = "\r", t = "\t", a = "\a", b = "\b" }
local function unrepr(q)
  local out, i = {}, 2
  while i < #q do
    local ch = q:sub(i, i)
    if ch == "\\" then
      local e = q:sub(i + 1, i + 1)
      if e == "x" then
        out[#out + 1] = string.char(tonumber(q:sub(i + 2, i + 3), 16))
        i = i + 4
      else
        out[#out + 1] = REPR_ESC[e] or e
        i = i + 2
      end
    else
      out[#out + 1] = ch
      i = i + 1
    end
  end
  return table.concat(out)
end

local function node_pid(node)
  return tonumber(trim(read_file(node.dir .. "/redis.pid")))
end

local function launch_cmd(node)
  return "redis-server " .. sh_quote(node.dir .. "/redis.conf") .. (node.sentinel and " --sentinel" or "")
end

-- writes the conf for node.port and launches it (daemonize yes: returns at
-- once). fresh = false keeps the conf (restart: a sentinel rewrote it).
local function launch(nodes, fresh)
  local cmds = {}
  for _, node in ipairs(nodes) do
    if fresh then
      write_file(node.dir .. "/redis.conf", table.concat(node.conf_lines(node.port), "\n") .. "\n")
      os.remove(node.dir .. "/redis.log")
    end
    os.remove(node.dir .. "/redis.pid")
    node.log_offset = #(read_file(node.dir .. "/redis.log") or "")
    cmds[#cmds + 1] = launch_cmd(node)
  end
  local out, code = H.shell("(" .. table.concat(cmds, " && ") .. ")")
  if code ~= 0 then error("topology: redis-server: " .. out, 0) end
end

-- "up" once the pid file exists (written after the ports are bound), the
-- process lives and answers PING (PONG, or NOAUTH without a password).
local function probe(node)
  local log = (read_file(node.dir .. "/redis.log") or ""):sub((node.log_offset or 0) + 1)
  if log:find("Address already in use", 1, true) then return "clash" end
  local pid = node_pid(node)
  if not pid then return nil end
  if not T.alive(pid) then return "died" end
  local out = cli(node, "PING")
  if out == "PONG" or out:find("NOAUTH", 1, true) then
    node.pid = pid
    return "up"
  end
  return nil
end

local function log_tail(node)
  local log = read_file(node.dir .. "/redis.log") or "(no log)"
  return log:sub(-1500)
end

-- starts these nodes (in parallel), picking new ports on a clash.
local function start_nodes(nodes, timeout)
  local pending = {}
  for _, node in ipairs(nodes) do
    node.port = node.port or pick_port()
    pending[#pending + 1] = node
  end
  local attempts = 0
  while #pending > 0 do
    attempts = attempts + 1
    if attempts > 20 then error("topology: could not start redis-server (ports)", 0) end
    launch(pending, true)
    local deadline = posix.now() + (timeout or 10)
    local retry = {}
    local left = pending
    while #left > 0 do
      local still = {}
      for _, node in ipairs(left) do
        local st = probe(node)
        if st == "clash" then
          local pid = node_pid(node)
          if pid then posix.kill(pid, 9) end
          taken[node.port] = nil
          node.port = pick_port()
          retry[#retry + 1] = node
        elseif st == "died" then
          error(("topology: redis-server on port %d died:\n%s"):format(node.port, log_tail(node)), 0)
        elseif st ~= "up" then
          still[#still + 1] = node
        end
      end
      left = still
      if #left > 0 then
        if posix.now() > deadline then
          error(("topology: redis-server on port %d did not start:\n%s"):format(left[1].port,
            log_tail(left[1])), 0)
        end
        posix.sleep(POLL)
      end
    end
    pending = retry
  end
end

-- SIGKILL (also when stopped) and wait until gone; forget the pid file.
local function kill9(node)
  local pid = node.pid or node_pid(node)
  if pid then
    posix.kill(pid, 9)
    wait_for("redis-server " .. pid .. " to die", 10, function() return not T.alive(pid) end)
  end
  os.remove(node.dir .. "/redis.pid")
  node.pid = nil
end

local function restart(node)
  if node.pid and T.alive(node.pid) then
    error(("topology: restart: the server on port %d is running (kill9 it first)"):format(node.port), 0)
  end
  launch({ node }, false)
  wait_for(("redis-server on port %d to answer"):format(node.port), 20, function()
    local st = probe(node)
    if st == "died" or st == "clash" then
      error(("restart on port %d failed (%s):\n%s"):format(node.port, st, log_tail(node)), 0)
    end
    return st == "up", st
  end)
end

-- SIGKILL every node (after SIGCONT: a SIGSTOPped one too), wait until all
-- are gone, then drop the pid files (kept until then: spec/run.sh's
-- stop_extra_redis finds them if this raises).
local function stop_all(nodes)
  local pids = {}
  for _, node in ipairs(nodes) do
    for _, pid in ipairs { node.pid or false, node_pid(node) or false } do
      if pid and T.alive(pid) then
        posix.kill(pid, 18)
        posix.kill(pid, 9)
        pids[#pids + 1] = pid
      end
    end
  end
  for _, pid in ipairs(pids) do
    wait_for("redis-server " .. pid .. " to die", 10, function() return not T.alive(pid) end)
  end
  for _, node in ipairs(nodes) do
    node.pid = nil
    os.remove(node.dir .. "/redis.pid")
    taken[node.port] = nil
  end
end

local function by_port(nodes, port, what)
  port = tonumber(port)
  for _, node in ipairs(nodes) do
    if node.port == port then return node end
  end
  error(("topology: %s: no node on port %s"):format(what, tostring(port)), 3)
end

-- ---- Redis Cluster -----------------------------------------------------------

-- CLUSTER NODES text -> list of {id, port, flags = {set}, master_id, slots
-- = {"a-b", ...}, myself}.
local function parse_nodes(text)
  local t = {}
  for _, line in ipairs(lines(text)) do
    local f = {}
    for w in line:gmatch("%S+") do f[#f + 1] = w end
    if #f >= 8 then
      local n = { id = f[1], port = tonumber(f[2]:match(":(%d+)@")), flags = {}, master_id = f[4], slots = {} }
      for flag in f[3]:gmatch("[^,]+") do n.flags[flag] = true end
      n.myself = n.flags.myself
      for i = 9, #f do
        if f[i]:sub(1, 1) ~= "[" then n.slots[#n.slots + 1] = f[i] end
      end
      t[#t + 1] = n
    end
  end
  return t
end

local function is_failing(n)
  return n.flags.fail or n.flags["fail?"] or n.flags.handshake or n.flags.noaddr
end

-- the slot map as a node sees it, normalized: masters with their slots,
-- replicas with their master.
local function slot_map(parsed)
  local t = {}
  for _, n in ipairs(parsed) do
    if n.flags.master then
      t[#t + 1] = ("M %s %s %s"):format(n.id, tostring(n.port), table.concat(n.slots, " "))
    else
      t[#t + 1] = ("S %s %s %s"):format(n.id, tostring(n.port), n.master_id)
    end
  end
  table.sort(t)
  return table.concat(t, "\n")
end

local function slot_in(slots, slot)
  for _, r in ipairs(slots) do
    local a, b = r:match("^(%d+)%-(%d+)$")
    a, b = tonumber(a or r), tonumber(b or r)
    if a and slot >= a and slot <= b then return true end
  end
  return false
end

T.slot_in = slot_in

local function live(nodes)
  local t = {}
  for _, node in ipairs(nodes) do
    if node.pid and T.alive(node.pid) then t[#t + 1] = node end
  end
  return t
end

-- one redis-cli per live node: CLUSTER INFO, CLUSTER NODES, INFO replication.
local function cluster_status(nodes)
  local parts = {}
  local list = live(nodes)
  for _, node in ipairs(list) do
    parts[#parts + 1] = ("echo '@@@node %d'; printf '%s' | %s"):format(node.port,
      "CLUSTER INFO\\nECHO @@@sep\\nCLUSTER NODES\\nECHO @@@sep\\nINFO replication\\n", cli_prefix(node))
  end
  local out = H.shell("(" .. table.concat(parts, "; ") .. ")")
  local st, cur = {}, nil
  for _, line in ipairs(lines(out)) do
    local port = line:match("^@@@node (%d+)$")
    if port then
      cur = { port = tonumber(port), info = {}, nodes = {}, repl = {} }
      cur.field = cur.info
      st[#st + 1] = cur
    elseif cur and line == "@@@sep" then
      cur.field = cur.field == cur.info and cur.nodes or cur.repl
    elseif cur then
      cur.field[#cur.field + 1] = line
    end
  end
  for _, s in ipairs(st) do
    s.info, s.nodes, s.repl = table.concat(s.info, "\n"), table.concat(s.nodes, "\n"), table.concat(s.repl, "\n")
  end
  return st, list
end

-- nil when the cluster is settled, else the reason it is not.
local function cluster_unsettled(nodes)
  local st, list = cluster_status(nodes)
  if #list == 0 then return "no live node" end
  if #st ~= #list then return "not every live node answered" end
  local livep = {}
  for _, node in ipairs(list) do livep[node.port] = true end
  local map0
  for _, s in ipairs(st) do
    local state = s.info:match("cluster_state:(%a+)")
    if state ~= "ok" then return ("port %d: cluster_state:%s"):format(s.port, tostring(state)) end
    local parsed = parse_nodes(s.nodes)
    for _, n in ipairs(parsed) do
      if is_failing(n) and (livep[n.port] or n.flags.handshake) then
        local f = {}
        for k in pairs(n.flags) do f[#f + 1] = k end
        return ("port %d sees %s as %s"):format(s.port, tostring(n.port), table.concat(f, ","))
      end
    end
    local map = slot_map(parsed)
    if map0 == nil then
      map0 = map
    elseif map ~= map0 then
      return ("port %d disagrees on the slot map:\n%s\nvs\n%s"):format(s.port, map, map0)
    end
    if s.repl:find("role:slave", 1, true) and not s.repl:find("master_link_status:up", 1, true) then
      return ("replica %d: master link down"):format(s.port)
    end
  end
  return nil
end

-- the view of the first live node that answers.
local function cluster_view(nodes)
  for _, node in ipairs(live(nodes)) do
    local out, code = cli(node, "CLUSTER", "NODES")
    if code == 0 and out:find("myself", 1, true) then return parse_nodes(out), node end
  end
  error("topology: no live cluster node answers CLUSTER NODES", 0)
end

local function install_cluster_methods(c)
  local nodes = c.nodes
  local function node_of(port, what) return by_port(nodes, port, what) end

  function c.cli(port, ...) return cli(node_of(port, "cli"), ...) end
  function c.call(port, ...) return cli_stdin(node_of(port, "call"), { H.pack(...) }) end

  function c.node(port) return node_of(port, "node") end

  function c.wait_ok(timeout)
    wait_for("cluster_state:ok and one slot map on every node", timeout, function()
      local why = cluster_unsettled(nodes)
      return why == nil, why
    end)
  end

  function c.masters()
    local t = {}
    for _, n in ipairs((cluster_view(nodes))) do
      if n.flags.master and not is_failing(n) then
        t[#t + 1] = { port = n.port, id = n.id, slots = n.slots }
      end
    end
    table.sort(t, function(a, b) return a.port < b.port end)
    return t
  end

  function c.replicas()
    local parsed = cluster_view(nodes)
    local ports = {}
    for _, n in ipairs(parsed) do ports[n.id] = n.port end
    local t = {}
    for _, n in ipairs(parsed) do
      if n.flags.slave and not is_failing(n) then
        t[#t + 1] = { port = n.port, id = n.id, master_port = ports[n.master_id], master_id = n.master_id }
      end
    end
    table.sort(t, function(a, b) return a.port < b.port end)
    return t
  end

  function c.slot(key)
    local node = live(nodes)[1] or error("topology: no live node", 2)
    local out = cli_stdin(node, { { "CLUSTER", "KEYSLOT", key } })
    return assert(tonumber(out), "CLUSTER KEYSLOT: " .. out)
  end

  local function slot_owner(slot)
    for _, n in ipairs((cluster_view(nodes))) do
      if n.flags.master and not n.flags.fail and slot_in(n.slots, slot) then return n end
    end
    return nil
  end

  function c.owner(key)
    local n = slot_owner(c.slot(key))
    return n and n.port
  end

  function c.slot_owner(slot)
    local n = slot_owner(slot)
    return n and n.port
  end

  function c.kill9(port) kill9(node_of(port, "kill9")) end

  function c.restart(port) restart(node_of(port, "restart")) end

  -- mode: nil (the replica and its master agree), "FORCE" (the master is
  -- down) or "TAKEOVER" (no agreement of the other masters).
  function c.failover(replica_port, mode, timeout)
    local node = node_of(replica_port, "failover")
    local args = { "CLUSTER", "FAILOVER" }
    if mode then args[#args + 1] = mode end
    local out = cli(node, H.unpack(args))
    if out ~= "OK" then error("topology: CLUSTER FAILOVER on " .. replica_port .. ": " .. out, 2) end
    wait_for(("port %d to become a master"):format(node.port), timeout, function()
      local role = cli(node, "ROLE")
      return role:match("^[^\n]*") == "master", role
    end)
    c.wait_ok(timeout)
  end

  -- the full resharding protocol for one slot (as redis-cli --cluster
  -- reshard does it). opts.pause_between(info) is called once the slot is
  -- MIGRATING/IMPORTING and opts.before_pause keys (default: half of them,
  -- rounded up) have moved; info = {slot, source, target, moved = {keys},
  -- remaining = {keys}}. opts.batch: keys per MIGRATE (default 100).
  function c.migrate_slot(slot, to_port, mopts)
    mopts = mopts or {}
    slot = assert(tonumber(slot), "migrate_slot: slot")
    local target = node_of(to_port, "migrate_slot")
    local src = slot_owner(slot) or error("topology: migrate_slot: no master owns slot " .. slot, 2)
    local source = node_of(src.port, "migrate_slot")
    local view = cluster_view(nodes)
    local target_id
    for _, n in ipairs(view) do
      if n.port == target.port then target_id = n.id end
    end
    assert(target_id, "migrate_slot: target not in the cluster")
    local moved = {}
    if source ~= target then
      local function ok(out, what)
        if out ~= "OK" then error(("topology: migrate_slot: %s: %s"):format(what, out), 0) end
      end
      ok(cli(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.id), "SETSLOT IMPORTING")
      ok(cli(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id), "SETSLOT MIGRATING")
      -- the keys still in the slot on the source, in redis-cli's quoted form
      local function keys_in_slot(n)
        local out = cli_stdin(source, { { "CLUSTER", "GETKEYSINSLOT", slot, n } }, "--no-raw")
        local t = {}
        for _, line in ipairs(lines(out)) do
          local q = line:match('^%s*%d+%) (".*")$')
          if q then
            t[#t + 1] = unrepr(q)
          elseif line ~= "(empty array)" and line ~= "" then
            error("topology: migrate_slot: GETKEYSINSLOT: " .. out, 0)
          end
        end
        return t
      end
      local function migrate(keys)
        local cmd = { "MIGRATE", "127.0.0.1", target.port, "", 0, 5000 }
        if c.password then
          cmd[#cmd + 1] = "AUTH"
          cmd[#cmd + 1] = c.password
        end
        cmd[#cmd + 1] = "KEYS"
        for _, k in ipairs(keys) do cmd[#cmd + 1] = k end
        local out = cli_stdin(source, { cmd })
        if out ~= "OK" and out ~= "NOKEY" then error("topology: migrate_slot: MIGRATE: " .. out, 0) end
        for _, k in ipairs(keys) do moved[#moved + 1] = k end
      end
      local batch = mopts.batch or 100
      if mopts.pause_between then
        local keys = keys_in_slot(1000000)
        local n = mopts.before_pause or math.ceil(#keys / 2)
        local first, rest = {}, {}
        for i, k in ipairs(keys) do
          if i <= n then first[#first + 1] = k else rest[#rest + 1] = k end
        end
        for i = 1, #first, batch do migrate({ H.unpack(first, i, math.min(#first, i + batch - 1)) }) end
        mopts.pause_between { slot = slot, source = source.port, target = target.port, moved = first,
          remaining = rest }
      end
      while true do
        local keys = keys_in_slot(batch)
        if #keys == 0 then break end
        migrate(keys)
      end
      -- the target first (it bumps its epoch), the source, then every master
      ok(cli(target, "CLUSTER", "SETSLOT", slot, "NODE", target_id), "SETSLOT NODE (target)")
      ok(cli(source, "CLUSTER", "SETSLOT", slot, "NODE", target_id), "SETSLOT NODE (source)")
      for _, n in ipairs(view) do
        if n.flags.master and not n.flags.fail and n.port ~= source.port and n.port ~= target.port then
          local other = node_of(n.port, "migrate_slot")
          if other.pid then cli(other, "CLUSTER", "SETSLOT", slot, "NODE", target_id) end
        end
      end
    end
    c.wait_ok(mopts.timeout)
    return moved
  end
end

--- T.start_cluster(opts) -> c (see the top of this file and spec/README.md).
function T.start_cluster(opts)
  opts = opts or {}
  local nmasters = opts.masters or 3
  local nreplicas = opts.replicas or 1
  if nmasters < 3 then error("start_cluster: redis-cli --cluster create needs at least 3 masters", 2) end
  local total = nmasters * (1 + nreplicas)
  local tls = opts.tls and { client_certs = opts.client_certs } or nil
  local t0 = posix.now()

  local c = { nodes = {}, seeds = {}, tls = opts.tls and true or false, password = opts.password }
  local nodes = c.nodes
  install_cluster_methods(c)
  for _ = 1, total do
    local node = { dir = next_dir("c"), tls = tls, password = opts.password }
    function node.conf_lines(port)
      local conf = {
        "bind 127.0.0.1", "daemonize yes",
        "pidfile " .. node.dir .. "/redis.pid", "logfile " .. node.dir .. "/redis.log", "dir " .. node.dir,
        'save ""', "appendonly no", "enable-debug-command yes",
        "cluster-enabled yes", "cluster-config-file " .. node.dir .. "/nodes.conf",
        "cluster-node-timeout 1000", "cluster-port " .. (port + 10000),
        "repl-diskless-sync yes", "repl-diskless-sync-delay 0",
      }
      if tls then
        local cert = opts.cert or "server"
        conf[#conf + 1] = "port 0"
        conf[#conf + 1] = "tls-port " .. port
        conf[#conf + 1] = "tls-cluster yes"
        conf[#conf + 1] = "tls-replication yes"
        conf[#conf + 1] = ("tls-cert-file %s/%s.crt"):format(H.tls_dir, cert)
        conf[#conf + 1] = ("tls-key-file %s/%s.key"):format(H.tls_dir, cert)
        conf[#conf + 1] = ("tls-ca-cert-file %s/ca.crt"):format(H.tls_dir)
        conf[#conf + 1] = "tls-auth-clients " .. (opts.client_certs and "yes" or "no")
        -- the nodes' own connections (bus, replication, MIGRATE) present a
        -- client certificate: the cluster bus always asks for one (without
        -- it, --cluster create waits forever for the nodes to join)
        conf[#conf + 1] = ("tls-client-cert-file %s/client.crt"):format(H.tls_dir)
        conf[#conf + 1] = ("tls-client-key-file %s/client.key"):format(H.tls_dir)
      else
        conf[#conf + 1] = "port " .. port
      end
      if opts.password then
        conf[#conf + 1] = "requirepass " .. cli_arg(opts.password)
        conf[#conf + 1] = "masterauth " .. cli_arg(opts.password)
      end
      for _, line in ipairs(opts.conf or {}) do conf[#conf + 1] = line end
      return conf
    end
    nodes[#nodes + 1] = node
  end

  local stopped = false
  function c.stop()
    if stopped then return end
    stopped = true
    stop_all(nodes)
  end

  local ok, err = pcall(function()
    start_nodes(nodes)
    c.timings = { servers = posix.now() - t0 }
    for i, node in ipairs(nodes) do c.seeds[i] = "127.0.0.1:" .. node.port end
    local cmd = { cli_prefix(nodes[1], true), "--cluster create" }
    for _, s in ipairs(c.seeds) do cmd[#cmd + 1] = s end
    cmd[#cmd + 1] = "--cluster-replicas " .. nreplicas .. " --cluster-yes"
    local out, code = H.shell(table.concat(cmd, " "))
    if code ~= 0 or not out:find("[OK] All 16384 slots covered", 1, true) then
      error("topology: redis-cli --cluster create failed:\n" .. out, 0)
    end
    c.timings.create = posix.now() - t0
    c.wait_ok()
  end)
  if not ok then
    c.stop()
    error(err, 2)
  end
  c.started_in = posix.now() - t0
  return c
end

-- ---- Sentinel ----------------------------------------------------------------

-- SENTINEL replicas / sentinels output (raw: the fields of every entry, one
-- a line) -> list of {field = value}.
local function parse_entries(text)
  local t, cur = {}, nil
  local ls = lines(text)
  local i = 1
  while i < #ls do
    if ls[i] == "name" then
      cur = {}
      t[#t + 1] = cur
    end
    if cur then cur[ls[i]] = ls[i + 1] end
    i = i + 2
  end
  return t
end

--- T.start_sentinel(opts) -> s (see the top of this file and spec/README.md).
function T.start_sentinel(opts)
  opts = opts or {}
  local t0 = posix.now()
  local s = { master_name = "mymaster", sentinels = {}, data_ports = {}, nodes = {},
              password = opts.password, sentinel_password = opts.sentinel_password }
  local name = s.master_name
  local data, sentinels = {}, {}

  local function data_node(role)
    local node = { dir = next_dir("s"), password = opts.password, role = role }
    function node.conf_lines(port)
      local conf = {
        "bind 127.0.0.1", "port " .. port, "daemonize yes",
        "pidfile " .. node.dir .. "/redis.pid", "logfile " .. node.dir .. "/redis.log", "dir " .. node.dir,
        'save ""', "appendonly no", "enable-debug-command yes",
        "repl-diskless-sync yes", "repl-diskless-sync-delay 0",
      }
      if role == "replica" then conf[#conf + 1] = "replicaof 127.0.0.1 " .. data[1].port end
      if opts.password then
        conf[#conf + 1] = "requirepass " .. cli_arg(opts.password)
        conf[#conf + 1] = "masterauth " .. cli_arg(opts.password)
      end
      for _, line in ipairs(opts.conf or {}) do conf[#conf + 1] = line end
      return conf
    end
    data[#data + 1] = node
    s.nodes[#s.nodes + 1] = node
    return node
  end
  local function sentinel_node()
    local node = { dir = next_dir("s"), password = opts.sentinel_password, sentinel = true }
    function node.conf_lines(port)
      local conf = {
        "bind 127.0.0.1", "port " .. port, "daemonize yes",
        "pidfile " .. node.dir .. "/redis.pid", "logfile " .. node.dir .. "/redis.log", "dir " .. node.dir,
        ("sentinel monitor %s 127.0.0.1 %d 2"):format(name, data[1].port),
        ("sentinel down-after-milliseconds %s 1000"):format(name),
        ("sentinel failover-timeout %s 3000"):format(name),
        ("sentinel parallel-syncs %s 1"):format(name),
      }
      if opts.password then conf[#conf + 1] = ("sentinel auth-pass %s %s"):format(name, cli_arg(opts.password)) end
      if opts.sentinel_password then conf[#conf + 1] = "requirepass " .. cli_arg(opts.sentinel_password) end
      for _, line in ipairs(opts.sentinel_conf or {}) do conf[#conf + 1] = line end
      return conf
    end
    sentinels[#sentinels + 1] = node
    s.nodes[#s.nodes + 1] = node
    return node
  end

  local stopped = false
  function s.stop()
    if stopped then return end
    stopped = true
    stop_all(s.nodes)
  end

  local function node_of(port, what) return by_port(s.nodes, port, what) end
  function s.cli(port, ...) return cli(node_of(port, "cli"), ...) end
  function s.call(port, ...) return cli_stdin(node_of(port, "call"), { H.pack(...) }) end
  function s.node(port) return node_of(port, "node") end
  function s.kill9(port) kill9(node_of(port, "kill9")) end
  function s.restart(port) restart(node_of(port, "restart")) end

  local function live_sentinels()
    local t = {}
    for _, node in ipairs(sentinels) do
      if node.pid and T.alive(node.pid) then t[#t + 1] = node end
    end
    return t
  end

  -- the master's port as sentinel node reports it (nil: unknown)
  local function reported(node)
    local out = cli(node, "SENTINEL", "get-master-addr-by-name", name)
    local ls = lines(out)
    return tonumber(ls[2]), out
  end

  function s.master()
    for _, node in ipairs(live_sentinels()) do
      local port = reported(node)
      if port then return port end
    end
    error("topology: no live sentinel reports " .. name, 2)
  end

  -- every live sentinel: reports master_port, knows the other data node as
  -- a replica, and knows the other sentinels.
  local function sentinels_settled(master_port)
    local nlive = #live_sentinels()
    for _, node in ipairs(live_sentinels()) do
      local port, out = reported(node)
      if port ~= master_port then return false, ("sentinel %d reports %s"):format(node.port, out) end
      local replicas = parse_entries((cli(node, "SENTINEL", "replicas", name)))
      for _, d in ipairs(data) do
        if d.port ~= master_port then
          local known = false
          for _, r in ipairs(replicas) do
            if tonumber(r.port) == d.port and not (r.flags or ""):find("down", 1, true) then known = true end
          end
          if not known then return false, ("sentinel %d does not know replica %d"):format(node.port, d.port) end
        end
      end
      local others = parse_entries((cli(node, "SENTINEL", "sentinels", name)))
      if #others < #sentinels - 1 then
        return false, ("sentinel %d knows %d other sentinels"):format(node.port, #others)
      end
    end
    return nlive > 0, "no live sentinel"
  end

  local function replica_up(node, master_port)
    local repl = cli(node, "INFO", "replication")
    return repl:find("role:slave", 1, true) ~= nil and repl:find("master_port:" .. master_port .. "\n", 1, true) ~= nil
      and repl:find("master_link_status:up", 1, true) ~= nil, repl
  end

  local ok, err = pcall(function()
    local master = data_node("master")
    start_nodes({ master })
    local replica = data_node("replica")
    start_nodes({ replica })
    wait_for("the replica's master link", DEFAULT_TIMEOUT, function() return replica_up(replica, master.port) end)
    for _ = 1, 3 do sentinel_node() end
    start_nodes(sentinels)
    for i, node in ipairs(sentinels) do s.sentinels[i] = "127.0.0.1:" .. node.port end
    s.data_ports = { master.port, replica.port }
    wait_for("the sentinels to know the master, the replica and each other", DEFAULT_TIMEOUT, function()
      return sentinels_settled(master.port)
    end)
  end)
  if not ok then
    s.stop()
    error(err, 2)
  end

  --- s.failover{timeout =, natural =}: SENTINEL FAILOVER on a live
  -- sentinel; returns the new master's port once every live sentinel
  -- reports it, it says ROLE master, and the old master (when alive) is its
  -- replica with the link up. The sentinels switch in about 1 s but only
  -- turn a live old master into a replica 8 s later (+convert-to-slave):
  -- unless natural = true, the harness sends it that REPLICAOF (and CONFIG
  -- REWRITE) itself once the switch is done (s.reconfigured_old_master).
  function s.failover(fopts)
    fopts = fopts or {}
    local timeout, natural = fopts.timeout, fopts.natural
    local old = s.master()
    local new
    for _, d in ipairs(data) do
      if d.port ~= old then new = d end
    end
    local asked = wait_for("SENTINEL FAILOVER to be accepted", timeout, function()
      local node = live_sentinels()[1]
      if not node then return false, "no live sentinel" end
      local out = cli(node, "SENTINEL", "FAILOVER", name)
      if out == "OK" then return node end
      if not out:find("NOGOODSLAVE", 1, true) and not out:find("INPROG", 1, true) then
        error("SENTINEL FAILOVER: " .. out, 0)
      end
      return false, out
    end)
    local old_node = node_of(old, "failover")
    local reconfigured = false
    wait_for(("port %d to be master everywhere"):format(new.port), timeout, function()
      for _, node in ipairs(live_sentinels()) do
        local port, out = reported(node)
        if port ~= new.port then return false, ("sentinel %d reports %s"):format(node.port, out) end
      end
      local role = cli(new, "ROLE")
      if role:match("^[^\n]*") ~= "master" then return false, "ROLE of the new master: " .. role end
      if not (old_node.pid and T.alive(old_node.pid)) then return true end
      if not natural and not reconfigured and cli(old_node, "ROLE"):match("^[^\n]*") == "master" then
        -- what the sentinels send the old master 8 s after the switch
        -- (+convert-to-slave waits SENTINEL_PUBLISH_PERIOD * 4)
        cli_stdin(old_node, { { "MULTI" }, { "REPLICAOF", "127.0.0.1", new.port }, { "CONFIG", "REWRITE" },
          { "EXEC" } })
        reconfigured = true
      end
      return replica_up(old_node, new.port)
    end)
    s.asked = asked.port
    s.reconfigured_old_master = reconfigured
    return new.port
  end

  s.started_in = posix.now() - t0
  return s
end

return T
