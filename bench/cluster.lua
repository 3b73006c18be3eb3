-- bench/cluster.lua: hicache on a Redis Cluster against one Redis node
-- (issue 13). `make bench` (bench/run.sh, BENCH_ONLY=cluster for this part
-- alone), or: spec/run.sh --exec lua5.4 bench/cluster.lua. It starts a
-- throwaway cluster of 3 masters without replicas
-- (spec/helpers/topology.lua) next to the harness's plain redis-server,
-- and measures, interleaved round by round (the order rotating), median
-- of ROUNDS (default 7) rounds, after a warm-up of every path:
--  1. get hit of a 10-field table (bench/common.lua's): 30 keys spread
--     over the 3 masters, on the cluster vs the same keys on the single
--     node vs a plain client per master (host/port, each key sent to its
--     master: the cluster's servers without the router); then the same
--     three with only the keys of one master (one server process on each
--     side). ops/s, client CPU, and the ratios (medians of the per-round
--     ratios). Goal: cluster >= 0.95x single.
--  2. get_many(100) of the same value: 100 keys hash-tagged into 3 slots,
--     one per master (so each master's share is one MGET), on the cluster
--     (one MGET per master, all sent before any is read) vs the same
--     get_many on the single node vs "by hand": one
--     cache:node_command(master, "MGET", <its keys>) after the other, with
--     and without cache:decode of each value. Then 100 untagged keys
--     ("m1".."m100", about 100 slots), which the router splits into one
--     MGET per slot, vs the single node (no by-hand row: a node refuses an
--     MGET across slots with CROSSSLOT).
-- N (default 20000) gets per measurement, N/20 get_many. Placement as
-- bench.lua's: BENCH_PIN=same (default) puts every redis-server (the
-- cluster's and the single one) and this process on the last CPU; split
-- puts the servers on the last CPU and this process on the one before;
-- none leaves them to the scheduler.
package.path = "bench/?.lua;lua/?.lua;lua/?/init.lua;spec/?.lua;" .. package.path
local hicache = require("hicache")
local core = require("hicache.core")
local common = dofile("bench/common.lua")
-- spec/helper.lua (which topology.lua requires) reads the harness's
-- variables: spec/run.sh --exec sets them, and LUA_PATH/LUA_CPATH for hctest.
local T = require("helpers.topology")

local host = os.getenv("HICACHE_TEST_HOST") or "127.0.0.1"
local port = tonumber(os.getenv("HICACHE_TEST_PORT") or "6379")
local N = tonumber(os.getenv("N") or "") or 20000
local ROUNDS = math.max(5, tonumber(os.getenv("ROUNDS") or "") or 7)
local N_MANY = math.max(50, N // 20)
local now = core.now
local V = common.VALUE

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  return s[(#s + 1) // 2]
end

-- ---- placement ---------------------------------------------------------------

local PIN = os.getenv("BENCH_PIN") or "same"
if PIN ~= "same" and PIN ~= "split" and PIN ~= "none" then
  error("BENCH_PIN must be same, split or none, not " .. PIN)
end
local ncpu = tonumber(io.popen("nproc 2>/dev/null"):read("a"):match("%d+") or "") or 1
local function self_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end
local function read_pid(path)
  local f = io.open(path)
  local pid = f and f:read("a"):match("%d+")
  if f then f:close() end
  return pid
end
-- every server's pid (the harness's and the cluster's) -> a placement line
local function place(server_pids)
  if PIN == "none" then return "not pinned (BENCH_PIN=none)" end
  local cs = ncpu - 1
  local cc = PIN == "split" and math.max(ncpu - 2, 0) or cs
  if PIN == "split" and ncpu < 2 then return "not pinned: BENCH_PIN=split needs 2 CPUs" end
  local cmds = {}
  for _, pid in ipairs(server_pids) do cmds[#cmds + 1] = ("taskset -a -pc %d %s >/dev/null 2>&1"):format(cs, pid) end
  cmds[#cmds + 1] = ("taskset -a -pc %d %s >/dev/null 2>&1"):format(cc, self_pid())
  if not os.execute(table.concat(cmds, " && ")) then return "not pinned: taskset failed (util-linux)" end
  if PIN == "same" then
    return ("the %d redis-servers and this process on CPU %d (BENCH_PIN=same)"):format(#server_pids, cs)
  end
  return ("the %d redis-servers on CPU %d, this process on CPU %d (BENCH_PIN=split)"):format(#server_pids, cs, cc)
end

-- ---- measuring -----------------------------------------------------------------

-- fn(n) timed: ops/s and client CPU µs per op (os.clock: user + system).
local function timed(n, fn)
  local c0, t0 = os.clock(), now()
  fn(n)
  local t1, c1 = now(), os.clock()
  return n / (t1 - t0), (c1 - c0) / n * 1e6
end

-- rows = {{name, fn}, ...}: every row once per round, the order rotating
-- by one each round; returns per row {ops = {...}, cpu = {...}}.
local function interleave(n, rows)
  local res = {}
  for i = 1, #rows do
    res[i] = { ops = {}, cpu = {} }
    rows[i][2](math.max(1, n // 10)) -- warm-up: connections, scripts, caches
  end
  for r = 1, ROUNDS do
    for j = 0, #rows - 1 do
      local i = (r - 1 + j) % #rows + 1
      res[i].ops[r], res[i].cpu[r] = timed(n, rows[i][2])
    end
  end
  return res
end

-- median of the per-round ratios a/b (both measured in the same round)
local function ratio(a, b)
  local t = {}
  for r = 1, #a.ops do t[r] = a.ops[r] / b.ops[r] end
  return median(t)
end

local function fmt_int(x)
  local s = ("%.0f"):format(x)
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

local function row_line(name, m, vs)
  local ops = median(m.ops)
  return ("| %s | %s | %.2f | %.2f | %s |"):format(name, fmt_int(ops), 1e6 / ops, median(m.cpu), vs)
end

-- ---- the benchmark ---------------------------------------------------------------

local function run(c)
  local single = assert(hicache.new { host = host, port = port, prefix = common.PREFIX })
  local cl = assert(hicache.new { cluster = c.seeds, prefix = common.PREFIX })
  local masters = cl:nodes()
  assert(#masters == 3, "expected 3 masters, got " .. #masters)

  -- the slot map (master address per slot) and a key's slot, asked once
  local owner_of_slot = {}
  for _, r in ipairs(assert(cl:node_command(masters[1], "CLUSTER", "SLOTS"))) do
    local addr = ("%s:%d"):format(r[3][1], r[3][2])
    for s = r[1], r[2] do owner_of_slot[s] = addr end
  end
  local function owner(key)
    local slot = assert(cl:node_command(masters[1], "CLUSTER", "KEYSLOT", cl:_key(key)))
    return owner_of_slot[slot]
  end

  -- 1. get hit: 30 keys over the 3 masters
  local hit_keys, per_master = {}, {}
  for i = 1, 30 do
    hit_keys[i] = "h" .. i
    local o = assert(owner(hit_keys[i]))
    per_master[o] = (per_master[o] or 0) + 1
  end
  for _, m in ipairs(masters) do assert(per_master[m], "no hit key on " .. m) end
  for _, k in ipairs(hit_keys) do
    assert(single:set(k, V, 0))
    assert(cl:set(k, V, 0))
  end
  -- a get loop over keys, each sent by clients[j] (one cache, or per key)
  local function get_loop(keys, clients)
    local K = #keys
    return function(n)
      for i = 1, n do
        local j = i % K + 1
        local cache = clients[j] or clients
        if cache:get(keys[j]) == nil then error("get hit failed: a miss or an error", 0) end
      end
    end
  end
  -- the same gets, each sent by a plain client (host/port) straight to the
  -- master that serves the key: the cluster's servers without the router
  local direct, direct_of = {}, {}
  for _, m in ipairs(masters) do
    local h, p = m:match("^(.*):(%d+)$")
    direct[m] = assert(hicache.new { host = h, port = tonumber(p), prefix = common.PREFIX })
  end
  for i, k in ipairs(hit_keys) do direct_of[i] = direct[owner(k)] end
  -- the keys of one master only: one server process on the cluster side too
  local one_keys = {}
  for i, k in ipairs(hit_keys) do
    if direct_of[i] == direct[masters[1]] then one_keys[#one_keys + 1] = k end
  end
  local gets = interleave(N, {
    { "single", get_loop(hit_keys, single) },
    { "cluster", get_loop(hit_keys, cl) },
    { "direct", get_loop(hit_keys, direct_of) },
    { "single_one", get_loop(one_keys, single) },
    { "cluster_one", get_loop(one_keys, cl) },
    { "direct_one", get_loop(one_keys, direct[masters[1]]) },
  })
  for _, d in pairs(direct) do d:close() end

  -- 2. get_many(100): keys tagged into one slot per master
  local tag_of = {} -- master -> a hash tag whose slot it serves
  local t = 0
  while true do
    local missing = false
    for _, m in ipairs(masters) do missing = missing or tag_of[m] == nil end
    if not missing then break end
    t = t + 1
    assert(t < 1000, "no hash tag found for every master")
    local o = owner("{t" .. t .. "}")
    if tag_of[o] == nil then tag_of[o] = "t" .. t end
  end
  local tagged, by_node, by_node_keys = {}, {}, {}
  for i = 1, common.MANY do
    local m = masters[(i - 1) % #masters + 1]
    local key = ("{%s}k%d"):format(tag_of[m], i)
    tagged[i] = key
    by_node[m] = by_node[m] or { "MGET" }
    by_node_keys[m] = by_node_keys[m] or {}
    by_node[m][#by_node[m] + 1] = cl:_key(key)
    by_node_keys[m][#by_node_keys[m] + 1] = key
    assert(owner(key) == m, "hash tag not on its master")
  end
  local map = {}
  for _, k in ipairs(tagged) do map[k] = V end
  for _, k in ipairs(common.many_keys) do map[k] = V end
  assert(single:set_many(map, 0))
  assert(cl:set_many(map, 0))

  local spread = {}
  for _, k in ipairs(common.many_keys) do spread[owner(k)] = true end
  for _, m in ipairs(masters) do assert(spread[m], "no untagged key on " .. m) end

  local unpack = table.unpack
  local function many_loop(cache, keys)
    return function(n)
      for _ = 1, n do
        local got, err = cache:get_many(keys)
        if got == nil then error("get_many failed: " .. tostring(err), 0) end
      end
    end
  end
  -- by hand: one MGET per master, one after the other; with decode, the
  -- values decoded into a {key = value} map, as get_many returns them
  local last_hand -- the map of the last call (checked below)
  local function by_hand(decode)
    local dec = cl.decode
    return function(n)
      local node_command = cl.node_command
      for _ = 1, n do
        local out = {}
        for _, m in ipairs(masters) do
          local vals, err = node_command(cl, m, unpack(by_node[m]))
          if vals == nil then error("MGET on " .. m .. ": " .. tostring(err), 0) end
          if decode then
            local keys = by_node_keys[m]
            for i = 1, #keys do
              local v = vals[i]
              if v then out[keys[i]] = dec(cl, v) end
            end
          end
        end
        last_hand = out
      end
    end
  end

  -- every path reads the 100 values it should
  local function count(got)
    local k = 0
    for _, v in pairs(got) do
      assert(v.id == 42)
      k = k + 1
    end
    return k
  end
  assert(count(assert(single:get_many(tagged))) == 100)
  assert(count(assert(cl:get_many(tagged))) == 100)
  assert(count(assert(cl:get_many(common.many_keys))) == 100)
  by_hand(true)(1)
  assert(count(last_hand) == 100, "the by-hand MGETs did not read the 100 values")

  local many = interleave(N_MANY, {
    { "single", many_loop(single, tagged) },
    { "cluster", many_loop(cl, tagged) },
    { "hand", by_hand(true) },
    { "hand_raw", by_hand(false) },
    { "single_spread", many_loop(single, common.many_keys) },
    { "cluster_spread", many_loop(cl, common.many_keys) },
  })
  cl:close()
  single:close()
  return gets, many, per_master, #one_keys
end

-- ---- main ------------------------------------------------------------------------

local t0 = now()
local c = T.start_cluster { masters = 3, replicas = 0 }
local ok, gets, many, per_master, n_one = pcall(function()
  local pids = { read_pid((os.getenv("HICACHE_TEST_DIR") or "") .. "/redis.pid") }
  for _, node in ipairs(c.nodes) do pids[#pids + 1] = tostring(node.pid) end
  print(("(%s; cluster of 3 masters, no replicas, started in %.1f s)\n"):format(place(pids), now() - t0))
  return run(c)
end)
c.stop()
if not ok then error(gets, 0) end

local g1, g2 = gets[1], gets[2]
local spread = {}
for _, v in pairs(per_master) do spread[#spread + 1] = v end
table.sort(spread)
print(("## Redis Cluster: get hit of a 10-field table (N=%d, median of %d rounds, interleaved)\n"):format(N, ROUNDS))
print("| path | ops/s | µs/op | CPU µs/op | vs single node |")
print("| --- | ---: | ---: | ---: | ---: |")
print(row_line("single node (`host`/`port`)", g1, "1.00x"))
print(row_line(("cluster of 3 masters (30 keys: %s per master)"):format(table.concat(spread, "/")), g2,
  ("**%.3fx**"):format(ratio(g2, g1))))
print(row_line("the same 3 masters without the router (a plain client per master)", gets[3],
  ("%.3fx"):format(ratio(gets[3], g1))))
print(row_line(("single node, the %d keys of one master"):format(n_one), gets[4], "1.00x"))
print(row_line("cluster, the keys of one master", gets[5], ("**%.3fx**"):format(ratio(gets[5], gets[4]))))
print(row_line("that master without the router (a plain client)", gets[6], ("%.3fx"):format(ratio(gets[6], gets[4]))))
print(("\ncluster / single get hit = %.3fx over 3 masters, %.3fx on one master (goal >= 0.95x);"):format(
  ratio(g2, g1), ratio(gets[5], gets[4])))
print(("cluster / the same masters without the router = %.3fx (3 masters), %.3fx (one master)\n"):format(
  ratio(g2, gets[3]), ratio(gets[5], gets[6])))

local m = many
print(("## Redis Cluster: get_many(100) (N=%d, median of %d rounds, interleaved)\n"):format(N_MANY, ROUNDS))
print("| path | ops/s | µs/op | CPU µs/op | vs single node |")
print("| --- | ---: | ---: | ---: | ---: |")
print(row_line("single node get_many, keys in 3 slots", m[1], "1.00x"))
print(row_line("cluster get_many, keys in 3 slots (one MGET per master, in parallel)", m[2],
  ("%.3fx"):format(ratio(m[2], m[1]))))
print(row_line("by hand: 3 sequential `node_command(master, \"MGET\", ...)` + `decode`", m[3],
  ("%.3fx"):format(ratio(m[3], m[1]))))
print(row_line("by hand: the same 3 MGETs, no decoding", m[4], ("%.3fx"):format(ratio(m[4], m[1]))))
print(row_line("single node get_many, keys in ~100 slots", m[5], "1.00x"))
print(row_line("cluster get_many, keys in ~100 slots (one MGET per slot)", m[6],
  ("%.3fx"):format(ratio(m[6], m[5]))))
print(("\ncluster get_many / single get_many = %.3fx (3 slots), %.3fx (~100 slots);"):format(
  ratio(m[2], m[1]), ratio(m[6], m[5])))
print(("cluster get_many / 3 sequential MGETs + decode = %.3fx; / 3 sequential raw MGETs = %.3fx\n"):format(
  ratio(m[2], m[3]), ratio(m[2], m[4])))
print(("(cluster bench: %.1f s)"):format(now() - t0))
