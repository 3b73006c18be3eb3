-- The cache API on a Redis Cluster (issue 13): one cluster of 3 masters +
-- 3 replicas (spec/helpers/topology.lua) for the whole file (and a small
-- one with requirepass for the AUTH test). Every test
-- spreads its keys over the 3 masters (CLUSTER KEYSLOT and the slot map
-- say where each value key lives) and reads what matters back with
-- redis-cli on the owning node. Then: command routing, split and merge;
-- the refusals (a key-less command, reserve without a key, options);
-- nodes(), node_command, pool_stats().cluster, the URL form, AUTH; tags
-- whose tag key lives in another slot than the value; and the no-stale
-- promise across slots: every write path revokes a fill in flight on any
-- master, clear()/delete_pattern() wake its waiters, and real processes
-- racing readers against writers get no stale read.
local H = require "helper"
local T = require "helpers.topology"
local testing = require "hicache.testing"
local keys_mod = require "hicache.keys"
local hicache = H.hicache
local posix = H.posix

local function sorted(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  return s
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local slot_in = T.slot_in -- is slot in a node's ranges ("0-5460", "7000")

describe("a cache on a Redis Cluster", function()
  local c         -- the cluster
  local masters   -- c.masters() (no failover, no migration in this file)
  local slots = {}
  local n = 0

  lazy_setup(function()
    c = T.start_cluster()
    masters = c.masters()
    assert(#masters == 3, "3 masters expected")
  end)
  lazy_teardown(function()
    if c then c.stop() end
  end)

  -- the slot of a Redis key (memoized: CLUSTER KEYSLOT through redis-cli)
  local function slot(name)
    local s = slots[name]
    if s == nil then
      s = (c.slot(name))
      slots[name] = s
    end
    return s
  end
  -- the port of the master serving that key
  local function owner(name)
    local s = slot(name)
    for _, m in ipairs(masters) do
      if slot_in(m.slots, s) then return m.port end
    end
    error("no master serves slot " .. s)
  end
  local function on_owner(name, ...) return (c.cli(owner(name), ...)) end
  local function get_on_owner(name) return on_owner(name, "GET", name) end
  local function exists_on_owner(name) return on_owner(name, "EXISTS", name) == "1" end

  -- a cache with a prefix of its own, on the cluster
  local function new_cache(opts)
    n = n + 1
    local o = { cluster = c.seeds, prefix = "cl" .. n, timeout = 2 }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(hicache.new(o))
  end

  -- `per` keys of cache per master: stem1, stem2, ... as needed; the list
  -- and {port = {keys}}.
  local function spread(cache, stem, per, name_of)
    per = per or 1
    name_of = name_of or function(k) return cache:_key(k) end
    local list, by = {}, {}
    for i = 1, 1000 do
      local k = stem .. i
      local p = owner(name_of(k))
      by[p] = by[p] or {}
      if #by[p] < per then
        by[p][#by[p] + 1] = k
        list[#list + 1] = k
        if #list == per * #masters then return list, by end
      end
    end
    error("could not spread keys over the masters")
  end

  it("nodes() are the masters; node_command runs on the node named, without redirection", function()
    local cache = new_cache()
    local want = {}
    for i, m in ipairs(masters) do want[i] = "127.0.0.1:" .. m.port end
    assert.same(sorted(want), sorted(cache:nodes()))
    local keys, by = spread(cache, "n", 2)
    assert.equal(3, count(by))
    for _, k in ipairs(keys) do assert.is_true(cache:set(k, 1, 60)) end
    for _, m in ipairs(masters) do
      local node = "127.0.0.1:" .. m.port
      local info = assert(cache:node_command(node, "INFO", "server"))
      assert.is_truthy(info:find("tcp_port:" .. m.port .. "\r\n", 1, true))
      local dbsize = assert(cache:node_command(node, "DBSIZE"))
      assert.equal(tonumber((c.cli(m.port, "DBSIZE"))), dbsize)
      assert.is_true(dbsize >= 2)
      -- a key of this node is read there; a key of another node is not
      -- followed: the node's own MOVED reply
      assert.equal("1", cache:node_command(node, "GET", cache:_key(by[m.port][1])))
      local other = masters[m == masters[1] and 2 or 1].port
      local v, err = cache:node_command(node, "GET", cache:_key(by[other][1]))
      assert.is_nil(v)
      assert.matches("^MOVED %d+ 127%.0%.0%.1:" .. other .. "$", err)
    end
    assert.same({ nil, "no such node" }, { cache:node_command("127.0.0.1:1", "PING") })
    cache:clear()
  end)

  it("get, set, add, incr, decr, ttl, expire, touch, persist, has_key, delete on every master", function()
    local cache = new_cache()
    local keys, by = spread(cache, "k")
    assert.equal(3, count(by))
    for _, k in ipairs(keys) do
      local name = cache:_key(k)
      assert.is_true(cache:set(k, 41, 60))
      assert.equal("41", get_on_owner(name))
      assert.equal(41, cache:get(k))
      assert.equal(42, cache:incr(k))
      assert.equal(40, cache:decr(k, 2))
      assert.equal("40", get_on_owner(name))
      assert.is_false(cache:add(k, 1))
      assert.is_false(cache:set(k, 8, 60, { nx = true }))
      assert.is_true(cache:set(k, 7, 60, { xx = true }))
      assert.equal("7", get_on_owner(name))
      assert.is_true(cache:has_key(k))
      local ttl = cache:ttl(k)
      assert.is_true(ttl > 50 and ttl <= 60, tostring(ttl))
      assert.is_true(cache:expire(k, 100))
      local pttl = tonumber(on_owner(name, "PTTL", name))
      assert.is_true(pttl > 90000 and pttl <= 100000, tostring(pttl))
      assert.is_true(cache:touch(k, 200))
      pttl = tonumber(on_owner(name, "PTTL", name))
      assert.is_true(pttl > 190000 and pttl <= 200000, tostring(pttl))
      assert.is_true(cache:persist(k))
      assert.equal("-1", on_owner(name, "TTL", name))
      assert.equal(0, cache:ttl(k))
      assert.is_true(cache:delete(k))
      assert.is_false(exists_on_owner(name))
      assert.is_nil(cache:get(k))
      assert.equal("d", cache:get(k, "d"))
      assert.is_false(cache:has_key(k))
      assert.is_nil(cache:ttl(k))
      assert.is_false(cache:delete(k))
      assert.same({ nil, "not found" }, { cache:incr(k) })
      assert.is_true(cache:add(k, { list = { 1, 2 }, k = k }))
      assert.same({ list = { 1, 2 }, k = k }, cache:get(k))
      assert.is_true(exists_on_owner(name))
    end
    -- raw strings: what the cache writes is what the node holds, and back
    local raw = new_cache { serializer = "raw" }
    for _, k in ipairs((spread(raw, "s"))) do
      local name = raw:_key(k)
      assert.is_true(raw:set(k, "hello " .. k))
      assert.equal("hello " .. k, get_on_owner(name))
      assert.equal("OK", on_owner(name, "SET", name, "from redis-cli"))
      assert.equal("from redis-cli", raw:get(k))
    end
    cache:clear()
    raw:clear()
  end)

  it("set_many, get_many and delete_many are split over the masters and merged", function()
    local cache = new_cache()
    local keys, by = spread(cache, "m", 4)
    assert.equal(3, count(by))
    local map = {}
    for i, k in ipairs(keys) do map[k] = i end
    assert.same({}, cache:set_many(map, 60))
    for i, k in ipairs(keys) do assert.equal(tostring(i), get_on_owner(cache:_key(k))) end
    local list = { H.unpack(keys) }
    list[#list + 1] = "missing"
    assert.same(map, cache:get_many(list))
    assert.same({ [keys[12]] = 12, [keys[1]] = 1 }, cache:get_many { keys[12], keys[1], keys[12], "missing" })
    -- tables, and one undecodable value next to them
    local tmap = {}
    for i, k in ipairs(keys) do tmap[k] = { i = i } end
    assert.same({}, cache:set_many(tmap, 60))
    local bad = cache:_key(keys[5])
    assert.equal("OK", on_owner(bad, "SET", bad, "\193"))
    local got, errs = cache:get_many(keys)
    assert.equal(11, count(got))
    assert.same({ i = 6 }, got[keys[6]])
    assert.same({ keys[5] }, (function()
      local t = {}
      for k in pairs(errs) do t[#t + 1] = k end
      return t
    end)())
    assert.equal(12, cache:delete_many(list))
    assert.same({}, cache:get_many(keys))
    for _, k in ipairs(keys) do assert.is_false(exists_on_owner(cache:_key(k))) end
    assert.equal(0, cache:delete_many(keys))
  end)

  it("incr_version moves an entry to its new name on another master", function()
    local cache = new_cache()
    local v2 = cache:with_version(2)
    local k
    for i = 1, 200 do
      if owner(cache:_key("v" .. i)) ~= owner(v2:_key("v" .. i)) then
        k = "v" .. i
        break
      end
    end
    assert(k, "no key whose two versions live on two masters")
    assert.is_true(cache:set(k, 5, 60))
    assert.equal(2, cache:incr_version(k))
    assert.is_nil(cache:get(k))
    assert.equal(5, v2:get(k))
    assert.equal("5", get_on_owner(v2:_key(k)))
    assert.is_false(exists_on_owner(cache:_key(k)))
    local ttl = v2:ttl(k)
    assert.is_true(ttl > 50 and ttl <= 60, tostring(ttl))
    assert.same({ nil, "not found" }, { cache:incr_version(k) })
    assert.equal(1, v2:incr_version(k, -1))
    assert.equal(5, cache:get(k))
    assert.is_false(exists_on_owner(v2:_key(k)))
    cache:clear()
  end)

  it("keys(), delete_pattern() and clear() reach every master, and only their namespace", function()
    local cache, other = new_cache(), new_cache()
    local a = spread(cache, "a:", 3)
    local b = spread(cache, "b:", 3)
    local all = {}
    for _, list in ipairs { a, b } do
      for _, k in ipairs(list) do
        assert.is_true(cache:set(k, 1, 60))
        assert.is_true(other:set(k, 2, 60))
        all[#all + 1] = k
      end
    end
    local seen = {}
    for k in cache:keys() do seen[#seen + 1] = k end
    assert.same(sorted(all), sorted(seen))
    seen = {}
    for k in cache:keys("a:*") do seen[#seen + 1] = k end
    assert.same(sorted(a), sorted(seen))
    assert.equal(9, cache:delete_pattern("a:*"))
    for _, k in ipairs(a) do assert.is_false(exists_on_owner(cache:_key(k))) end
    for _, k in ipairs(b) do assert.is_true(exists_on_owner(cache:_key(k))) end
    assert.equal(9, cache:clear())
    for _, k in ipairs(b) do assert.is_false(exists_on_owner(cache:_key(k))) end
    assert.equal(0, cache:clear())
    -- the other namespace is untouched, on every master
    seen = {}
    for k in other:keys() do seen[#seen + 1] = k end
    assert.same(sorted(all), sorted(seen))
    for _, k in ipairs(all) do assert.equal("2", get_on_owner(other:_key(k))) end
    assert.equal(18, other:clear())
  end)

  it("command routes by the first key; MGET, DEL, UNLINK, EXISTS, TOUCH are split and merged", function()
    local cache = new_cache()
    local keys = spread(cache, "r")
    local f = {}
    for i, k in ipairs(keys) do f[i] = cache:_key(k) end
    for i = 1, 3 do
      assert.equal("OK", cache:command("SET", f[i], "v" .. i))
      assert.equal("v" .. i, get_on_owner(f[i]))
    end
    local missing = cache:_key("nothing")
    assert.same({ "v1", H.null, "v2", "v3", "v1" }, cache:command("MGET", f[1], missing, f[2], f[3], f[1]))
    assert.equal(4, cache:command("EXISTS", f[1], f[2], f[3], f[1]))
    assert.equal(3, cache:command("TOUCH", f[3], f[2], f[1], missing))
    assert.equal(2, cache:command("DEL", f[1], f[2], missing))
    assert.equal(1, cache:command("UNLINK", f[3], f[1]))
    assert.same({ H.null, H.null, H.null }, cache:command("MGET", f[1], f[2], f[3]))
    -- EVAL's key comes after numkeys
    assert.equal("OK", cache:command("EVAL", "return redis.call('SET', KEYS[1], ARGV[1])", 1, f[2], "by eval"))
    assert.equal("by eval", get_on_owner(f[2]))
    assert.equal("by eval", cache:command("GET", f[2]))
    -- a server error reply of the node is the reply
    assert.same({ nil, "WRONGTYPE Operation against a key holding the wrong kind of value" },
      { cache:command("LPUSH", f[2], "x") })
    -- key-less commands any node may answer
    assert.equal("PONG", cache:command("PING"))
    assert.equal("hi", cache:command("ECHO", "hi"))
    assert.equal(2, #cache:command("TIME"))
    cache:command("DEL", f[2])
  end)

  it("pipeline: commands for several nodes, replies in the caller's order", function()
    local cache = new_cache()
    local keys = spread(cache, "p")
    local f = {}
    for i, k in ipairs(keys) do f[i] = cache:_key(k) end
    local r = assert(cache:pipeline {
      { "SET", f[1], 1 }, { "INCR", f[2] }, { "SET", f[3], "x" }, { "INCR", f[1] },
      { "LPUSH", f[3], "y" }, { "MGET", f[1], f[2], f[3] }, { "PING" }, { "DEL", f[1], f[2], f[3] },
    })
    assert.same({ "OK", 1, "OK", 2, { false, "WRONGTYPE Operation against a key holding the wrong kind of value" },
      { "2", "1", "x" }, "PONG", 3 }, r)
    for i = 1, 3 do assert.is_false(exists_on_owner(f[i])) end
    assert.same({}, cache:pipeline {})
  end)

  it("a key-less command raises at the caller's line; SCRIPT runs on every master", function()
    local cache = new_cache()
    for _, cmd in ipairs { { "INFO" }, { "DBSIZE" }, { "FLUSHDB" }, { "KEYS", "*" }, { "SCAN", 0 },
                           { "RANDOMKEY" }, { "EVAL", "return 1", 0 }, { "MULTI" } } do
      local line
      local ok, err = pcall(function()
        line = debug.getinfo(1, "l").currentline; cache:command(H.unpack(cmd))
      end)
      assert.is_false(ok)
      assert.equal(("spec/cluster_spec.lua:%d: bad argument #1 to 'command' ('%s' has no key: on a cluster it is "
        .. "refused (use cache:node_command(node, ...) with a node of cache:nodes()))"):format(line, cmd[1]), err)
      ok, err = pcall(function()
        line = debug.getinfo(1, "l").currentline; cache:pipeline { { "GET", "x" }, cmd }
      end)
      assert.is_false(ok)
      assert.matches("^spec/cluster_spec%.lua:" .. line .. ": bad argument #1 to 'pipeline' %('" .. cmd[1]
        .. "' has no key", err)
    end
    -- SCRIPT LOAD reaches every master: EVALSHA works whatever the key's node
    local sha = assert(cache:command("SCRIPT", "LOAD", "return 'loaded ' .. KEYS[1]"))
    for _, m in ipairs(masters) do
      assert.equal("1", c.cli(m.port, "SCRIPT", "EXISTS", sha))
    end
    for _, k in ipairs((spread(cache, "e"))) do
      assert.equal("loaded " .. cache:_key(k), cache:command("EVALSHA", sha, 1, cache:_key(k)))
    end
  end)

  it("reserve needs a key, and pins the connection to that key's node", function()
    local cache = new_cache()
    local line
    local ok, err = pcall(function() line = debug.getinfo(1, "l").currentline; cache:reserve() end)
    assert.is_false(ok)
    assert.equal(("spec/cluster_spec.lua:%d: bad argument #1 to 'reserve' (a key expected: on a cluster the "
      .. "connection goes to its node)"):format(line), err)
    for _, k in ipairs((spread(cache, "x"))) do
      local name = cache:_key(k)
      local conn = assert(cache:reserve(name))
      assert.equal(owner(name), tonumber(conn:command("CONFIG", "GET", "port")[2]))
      assert.equal("OK", conn:command("MULTI"))
      assert.equal("QUEUED", conn:command("SET", name, "in multi"))
      assert.equal("QUEUED", conn:command("INCR", name))
      assert.same({ "OK", { false, "ERR value is not an integer or out of range" } }, conn:command("EXEC"))
      conn:release()
      assert.equal("in multi", get_on_owner(name))
    end
    cache:clear()
  end)

  it("options: the URL form, seeds that are down, what a cluster refuses", function()
    local seeds = c.seeds
    local url = ("redis+cluster://%s,%s"):format(seeds[1], seeds[2])
    n = n + 1
    local cache = assert(hicache.new { url = url, prefix = "cl" .. n })
    assert.equal(3, #cache:nodes())
    for _, k in ipairs((spread(cache, "u"))) do
      assert.is_true(cache:set(k, 3))
      assert.equal("3", get_on_owner(cache:_key(k)))
    end
    cache:clear()
    -- the first seed refuses: the next one is asked
    local dead = H.silent_listener()
    local dead_port = dead.port
    dead.stop()
    local c2 = assert(hicache.new { url = ("redis+cluster://127.0.0.1:%d,%s"):format(dead_port, seeds[3]),
                                    prefix = "cl" .. n })
    assert.equal(3, #c2:nodes())
    -- no seed answers
    local c3, err = hicache.new { cluster = { "127.0.0.1:" .. dead_port }, prefix = "x", connect_timeout = 0.5 }
    assert.is_nil(c3)
    assert.matches("^no cluster seed answered: ", err)
    -- a server without cluster mode (the test server) is not a seed
    c3, err = hicache.new { cluster = { H.host .. ":" .. H.port }, prefix = "x" }
    assert.is_nil(c3)
    assert.matches("^no cluster seed answered: .*ERR This instance has cluster support disabled", err)
    -- refusals are option errors, at the caller's line
    local bad = {
      { { cluster = seeds, db = 1 }, "invalid option 'db': a cluster has only database 0" },
      { { url = "redis+cluster://" .. seeds[1] .. "/2" }, "invalid option 'url': a cluster has only database 0" },
      { { cluster = seeds, l1 = true }, "invalid option 'l1': is not available with 'cluster' yet" },
      { { cluster = seeds, host = "127.0.0.1" }, "invalid option 'host': cannot be combined with 'cluster'" },
      { { cluster = seeds, backend = "memory" },
        "invalid option 'cluster': cannot be used with backend = \"memory\" (there is no server)" },
      { { cluster = {} }, "invalid option 'cluster': must be a non-empty list of \"host:port\" strings" },
      { { cluster = { "127.0.0.1" } }, "invalid option 'cluster': entries must be \"host:port\" (or \"[IPv6]:port\")" },
      { { cluster = seeds, sentinels = seeds }, "invalid option 'sentinels': cannot be combined with 'cluster'" },
    }
    for _, case in ipairs(bad) do
      local line
      local ok, e = pcall(function() line = debug.getinfo(1, "l").currentline; hicache.new(case[1]) end)
      assert.is_false(ok)
      assert.equal(("spec/cluster_spec.lua:%d: %s"):format(line, case[2]), e)
    end
    -- the cosocket transport: refused (outside OpenResty it is refused anyway)
    local ok, e = pcall(hicache.new, { cluster = seeds, transport = "cosocket" })
    assert.is_false(ok)
    assert.matches("invalid option '%a+'", e)
  end)

  it("pool_stats() adds the nodes' pools up and has .cluster", function()
    local cache = new_cache { timeout = 2.25 }   -- pools of their own
    local st = assert(cache:pool_stats())
    assert.same({ ask = 0, moved = 0, retries = 0, masters = 3, map_loads = st.cluster.map_loads,
                  nodes = st.cluster.nodes }, st.cluster)
    assert.is_true(st.cluster.map_loads >= 1)
    for _, k in ipairs((spread(cache, "ps"))) do assert.is_true(cache:set(k, 1)) end
    st = assert(cache:pool_stats())
    assert.is_true(st.cluster.nodes >= 3, tostring(st.cluster.nodes))
    assert.equal(3, st.cluster.masters)
    assert.equal(0, st.cluster.moved)
    assert.equal(0, st.cluster.ask)
    assert.is_true(st.created >= 3, "connections made: " .. st.created)   -- one per master at least
    assert.equal(st.created, st.idle)
    assert.equal(0, st.in_use)
    assert.equal("closed", st.breaker)
    cache:clear()
    assert.is_true(cache:close())
    assert.same({ nil, "closed" }, { cache:pool_stats() })
    assert.same({ nil, "closed" }, { cache:get("ps1") })
  end)

  describe("tags in other slots than their entries", function()
    it("after invalidate_tag returns, no read path returns the old value", function()
      local cache = new_cache()
      local keys = spread(cache, "t")
      -- tags on every master too, each in another slot than the entries
      local prefix = "cl" .. n
      local function tag_key(t) return prefix .. ":tag:{" .. t .. "}" end
      local tags = spread(cache, "tag", 1, tag_key)
      for _, k in ipairs(keys) do
        for _, t in ipairs(tags) do
          assert.not_equal(slot(cache:_key(k)), slot(tag_key(t)))
          assert.is_false(exists_on_owner(tag_key(t)))
        end
      end
      for round = 1, 3 do
        for _, k in ipairs(keys) do
          assert.is_true(cache:set(k, "old" .. round, 60, { tags = tags }))
        end
        for _, k in ipairs(keys) do
          assert.equal("old" .. round, cache:get(k))
          assert.equal("old" .. round, cache:get(k, nil, { tags = tags }))
        end
        assert.equal(3, count(cache:get_many(keys, { tags = tags })))
        assert.equal(3, count(cache:get_many(keys)))
        assert.is_true(cache:invalidate_tag(tags[round]))    -- one tag of the three, on one master
        for _, k in ipairs(keys) do
          assert.is_nil(cache:get(k))
          assert.is_nil(cache:get(k, nil, { tags = tags }))
          assert.is_false(cache:has_key(k))
          assert.is_nil(cache:ttl(k))
          local v, err, st = cache:get_or_set(k, function() return "new" .. round end, { tags = tags })
          assert.same({ "new" .. round, nil, "miss" }, { v, err, st })
          assert.equal("new" .. round, cache:get(k, nil, { tags = tags }))
        end
        assert.same({}, (function()
          local t = {}
          for k, v in pairs(cache:get_many(keys, { tags = tags })) do
            if v ~= "new" .. round then t[k] = v end
          end
          return t
        end)())
      end
      -- a fill that started before invalidate_tag is not stored after it
      for _, k in ipairs(keys) do
        local v, _, st = cache:get_or_set(k .. "f", function()
          assert.is_true(cache:invalidate_tag(tags[2]))
          return "computed before"
        end, { tags = tags })
        assert.same({ "computed before", "miss" }, { v, st })
        assert.is_nil(cache:get(k .. "f"))
        assert.is_nil(cache:get(k .. "f", nil, { tags = tags }))
      end
      -- an entry is a miss for a read naming other tags (a typo)
      assert.is_true(cache:set(keys[1], "x", 60, { tags = { tags[1] } }))
      assert.is_nil(cache:get(keys[1], nil, { tags = { tags[2] } }))
      assert.equal("x", cache:get(keys[1], nil, { tags = { tags[1] } }))
      cache:clear()
      cache:invalidate_tag(tags)
    end)

    it("a lost tag key hides its entries on every master", function()
      local cache = new_cache()
      local keys = spread(cache, "lt")
      for _, k in ipairs(keys) do assert.is_true(cache:set(k, k, 60, { tags = { "gone" } })) end
      local tag = ("cl%d:tag:{gone}"):format(n)
      assert.is_true(exists_on_owner(tag))
      assert.equal("1", on_owner(tag, "DEL", tag))   -- an eviction, a restart
      for _, k in ipairs(keys) do
        assert.is_nil(cache:get(k))
        assert.is_nil(cache:get(k, nil, { tags = { "gone" } }))
      end
      assert.same({}, cache:get_many(keys))
      cache:clear()
    end)
  end)

  it("get_or_set: miss, hit, neg_ttl, stale and early on every master", function()
    local cache = new_cache()
    for _, k in ipairs((spread(cache, "g"))) do
      local runs = 0
      local function fn() runs = runs + 1; return { k = k, run = runs } end
      assert.same({ { k = k, run = 1 }, nil, "miss" }, { cache:get_or_set(k, fn) })
      assert.same({ { k = k, run = 1 }, nil, "hit" }, { cache:get_or_set(k, fn) })
      assert.is_true(exists_on_owner(cache:_key(k)))
      -- nil results: stored only with neg_ttl
      assert.same({ nil, nil, "miss" }, { cache:get_or_set(k .. "n", function() return nil end, { neg_ttl = 60 }) })
      assert.same({ nil, nil, "hit" }, { cache:get_or_set(k .. "n", error, { neg_ttl = 60 }) })
      -- a failed computation stores nothing
      assert.same({ nil, "db down" }, { cache:get_or_set(k .. "e", function() return nil, "db down" end) })
      assert.is_false(exists_on_owner(cache:_key(k .. "e")))
      -- stale-while-revalidate
      assert.same({ "v1", nil, "miss" }, { cache:get_or_set(k .. "s", function() return "v1" end,
        { ttl = 0.2, stale = 30 }) })
      posix.sleep(0.3)
      local v, _, st = cache:get_or_set(k .. "s", function() return "v2" end, { ttl = 60, stale = 30 })
      assert.is_true((v == "v1" and st == "stale") or (v == "v2" and st == "miss"), tostring(v) .. " " .. tostring(st))
      assert.equal("v2", cache:get(k .. "s"))
      -- early recomputation: entries carry their compute time
      assert.same({ "e1", nil, "miss" },
        { cache:get_or_set(k .. "x", function() return "e1" end, { ttl = 60, early = 1 }) })
      assert.same({ "e1", nil, "hit" }, { cache:get_or_set(k .. "x", error, { ttl = 60, early = 1 }) })
    end
    cache:clear()
  end)

  it("memoize, on_write, batch and key builders on every master", function()
    local cache = new_cache()
    local calls = 0
    local f = cache:memoize(function(a, b) calls = calls + 1; return a + b, "sum" end,
      { name = "add", ttl = 60, tags = function(a) return { "a:" .. a } end })
    local args = spread(cache, "", 2, function(i) return cache:_key(f:key(tonumber(i), 1)) end)
    for _, a in ipairs(args) do
      a = tonumber(a)
      assert.same({ a + 1, "sum" }, { f(a, 1) })
      assert.same({ a + 1, "sum" }, { f(a, 1) })
      assert.same({ a + 1, "sum" }, { f:peek(a, 1) })
      assert.is_true(exists_on_owner(cache:_key(f:key(a, 1))))
    end
    assert.equal(#args, calls)
    assert.is_true(f:invalidate(tonumber(args[1]), 1))
    assert.is_nil(f:peek(tonumber(args[1]), 1))
    assert.is_true(cache:invalidate_tag("a:" .. args[2]))
    assert.is_nil(f:peek(tonumber(args[2]), 1))
    assert.same({ tonumber(args[3]) + 1, "sum" }, { f:peek(tonumber(args[3]), 1) })
    -- a write path and a batch, over keys of every master
    local keys = spread(cache, "w")
    for _, k in ipairs(keys) do assert.is_true(cache:set(k, 1, 60, { tags = { "w" } })) end
    local writer = cache:on_write(function(x) return "wrote " .. x end, { keys = function() return keys end })
    assert.equal("wrote 1", writer(1))
    assert.same({}, cache:get_many(keys))
    for _, k in ipairs(keys) do assert.is_true(cache:set(k, 1, 60)) end
    assert.equal(3, cache:batch():invalidate(keys):invalidate_tag("w"):commit())
    for _, k in ipairs(keys) do assert.is_false(exists_on_owner(cache:_key(k))) end
    -- keys.define builders
    local dash = keys_mod.define("dash", { { "user_id", "integer" }, keys_mod.set("perms") })
    local built = spread(cache, "", 1, function(i)
      return cache:_key(dash { user_id = tonumber(i), perms = { "r" } })
    end)
    for _, i in ipairs(built) do
      local key = dash { user_id = tonumber(i), perms = { "r", "w", "r" } }
      assert.same({ "d" .. i, nil, "miss" }, { cache:get_or_set(key, function() return "d" .. i end) })
      assert.equal("d" .. i, cache:get(dash { user_id = tonumber(i), perms = { "w", "r" } }))
      assert.equal(1, cache:get(key, 1, { tags = { "nope" } }))
    end
    cache:clear()
    cache:invalidate_tag { "w" }
  end)

  it("locks: grants, waits, fences and release on every master", function()
    local cache = new_cache()
    local prefix = "cl" .. n
    local names = spread(cache, "lock", 1, function(l) return prefix .. ":lock:{" .. l .. "}" end)
    for _, l in ipairs(names) do
      local lk = assert(cache:lock(l, { ttl = 5 }))
      local name = prefix .. ":lock:{" .. l .. "}"
      assert.equal(lk.token, get_on_owner(name))
      assert.same({ nil, "timeout" }, { cache:lock(l, { wait = 0.05 }) })
      assert.is_true(lk:owned())
      assert.is_true(lk:extend(10, { replace = true }))
      local pttl = tonumber(on_owner(name, "PTTL", name))
      assert.is_true(pttl > 9000 and pttl <= 10000, tostring(pttl))
      assert.is_true(lk:release())
      assert.is_false(exists_on_owner(name))
      local l2 = assert(cache:lock(l))
      assert.is_true(l2.fence > lk.fence)
      -- the fence survives the loss of the fence key
      on_owner(name .. ":fence", "DEL", name .. ":fence")
      l2:release()
      local l3 = assert(cache:lock(l))
      assert.is_true(l3.fence > l2.fence)
      l3:release()
      assert.same({ 5, "x" }, { cache:with_lock(l, nil, function(a, b) return a + b, "x" end, 2, 3) })
    end
    -- a waiter is woken by the release
    local l = names[2]
    local held = assert(cache:lock(l, { ttl = 30 }))
    local pid = posix.fork()
    if pid == 0 then
      posix.sleep(0.3)
      held:release()
      posix._exit(0)
    end
    local t0 = posix.now()
    local got = assert(cache:lock(l, { ttl = 5, wait = 20 }))
    local waited = posix.now() - t0
    assert.equal(0, posix.waitpid(pid))
    assert.is_true(waited < 15, "slept out the lock's ttl: " .. waited)
    got:release()
    -- locks live outside the namespace: clear() keeps them
    local kept = assert(cache:lock(names[3]))
    cache:set("x", 1)
    cache:clear()
    assert.is_true(kept:owned())
    kept:release()
  end)

  it("hicache.testing with a cluster (URL and seeds)", function()
    local url = "redis+cluster://" .. table.concat(c.seeds, ",")
    for _, opts in ipairs { { url = url }, { cluster = c.seeds } } do
      local cache = testing.cache(opts)
      local rec = testing.record(cache)
      local keys = spread(cache, "tc")
      for _, k in ipairs(keys) do
        assert.is_true(cache:set(k, 1, 60, { tags = { "tt" } }))
        assert.is_cached(cache, k)
        assert.is_cached(cache, k, { "tt" })
      end
      cache:invalidate_tag("tt")
      for _, k in ipairs(keys) do assert.is_not_cached(cache, k) end
      assert.same({ "set set " .. keys[1], "set set " .. keys[2], "set set " .. keys[3], "invalidate invalidate" },
        rec:lines())
      rec:stop()
    end
    testing.cleanup()
  end)

  it("tags work whatever the prefix: the TAGS script split by key reads its key count exactly", function()
    -- the tag keys of prefix "7x" start with a digit: a key count read past
    -- its own bytes took "2" + "7x:tag:{a}" for 27 keys (a crash, under ASan an overflow)
    for _, prefix in ipairs { "7x", "12", "{app}", "a{b}c" } do
      local cache = new_cache { prefix = prefix }
      assert.is_true(cache:set("t1", "v", 60, { tags = { "red", "green", "blue" } }))
      assert.is_true(cache:set("t2", "w", 60, { tags = { "red" } }))
      assert.equal("v", cache:get("t1", nil, { tags = { "red", "green", "blue" } }))
      assert.is_true(cache:invalidate_tag("green"))
      assert.is_nil(cache:get("t1"))
      assert.equal("w", cache:get("t2"))
      assert.is_true(cache:clear() >= 1)
    end
  end)

  it("refuses a prefix whose braces would move a key's companions to another slot", function()
    for _, prefix in ipairs { "x{y", "{}", "a}b", "{", "{a}{b}" } do
      local ok, err = pcall(hicache.new, { cluster = c.seeds, prefix = prefix })
      assert.is_false(ok)
      assert.matches("invalid option 'prefix': on a cluster, braces only as one {hash tag}", err, 1, true)
    end
  end)

  it("node_command keeps its arguments alive while it finds the node (no cluster too)", function()
    local single = assert(hicache.new { host = H.host, port = H.port })
    local node = assert(single:nodes())[1]
    pcall(collectgarbage, "generational") -- Lua 5.4 (LuaJIT has only the incremental collector)
    for i = 1, 300 do
      local arg = string.rep("x", 100) .. i
      assert.equal(arg, single:node_command(node, "ECHO", arg))
    end
    pcall(collectgarbage, "incremental")
    local cache = new_cache()
    local nodes = assert(cache:nodes())
    for i = 1, 100 do assert.equal("e" .. i, cache:node_command(nodes[1 + i % #nodes], "ECHO", "e" .. i)) end
  end)

  it("with AUTH on every node: the password reaches every node's pool", function()
    local pc = T.start_cluster { password = "Cl-S3cret", replicas = 0 }
    local ok, e = pcall(function()
      local url = ("redis+cluster://:%s@%s,%s"):format("Cl-S3cret", pc.seeds[1], pc.seeds[2])
      local cache = assert(hicache.new { url = url, prefix = "auth" })
      local pm = pc.masters()
      assert.equal(3, #cache:nodes())
      local done = {}
      for i = 1, 200 do
        local k = "a" .. i
        local p = pc.owner(cache:_key(k))
        if not done[p] then
          done[p] = true
          assert.is_true(cache:set(k, i))
          assert.equal(tostring(i), (pc.cli(p, "GET", cache:_key(k))))
        end
        if count(done) == #pm then break end
      end
      assert.equal(3, count(done))
      -- a wrong password: the cluster cannot be loaded
      local bad, err = hicache.new { url = ("redis+cluster://:wrong@%s"):format(pc.seeds[1]), prefix = "auth" }
      assert.is_nil(bad)
      assert.matches("auth failed: WRONGPASS", err)
      assert.is_nil(err:find("Cl-S3cret", 1, true))
      assert.is_nil(tostring(cache):find("Cl-S3cret", 1, true))
    end)
    pc.stop()
    assert(ok, e)
  end)

  -- The no-stale promise across slots: a value key, its lease and wake key
  -- share a slot; tags and the namespace epoch (clear, delete_pattern) live
  -- in slots of their own, on other masters.
  describe("no stale fill on a Redis Cluster", function()
    local nn = 0

    local function ns_cache()
      nn = nn + 1
      return assert(hicache.new { cluster = c.seeds, prefix = "ns" .. nn, timeout = 5 })
    end
    local function keys_on_masters(cache, stem)
      local list, seen = {}, {}
      for i = 1, 1000 do
        local p = c.owner(cache:_key(stem .. i))
        if not seen[p] then
          seen[p] = true
          list[#list + 1] = stem .. i
          if #list == #masters then return list end
        end
      end
      error("could not spread keys over the masters")
    end

    -- path, the write (done inside fn), what a get returns afterwards (nostale_spec's list)
    local function paths(cc)
      return {
        { "set", function(k) assert.is_true(cc:set(k, "new")) end, "new" },
        { "set with tags", function(k) assert.is_true(cc:set(k, "new", 60, { tags = { "t2" } })) end,
          "new" },
        { "set nx", function(k) assert.is_true(cc:set(k, "new", nil, { nx = true })) end, "new" },
        { "add", function(k) assert.is_true(cc:add(k, "new")) end, "new" },
        { "set_many", function(k) assert.same({}, cc:set_many({ [k] = "new", other = 1 })) end, "new" },
        { "incr (no such key)", function(k) assert.same({ nil, "not found" }, { cc:incr(k) }) end, nil },
        { "delete", function(k) assert.is_false(cc:delete(k)) end, nil },
        { "delete_many", function(k) assert.equal(0, cc:delete_many({ k, "other2" })) end, nil },
        { "invalidate", function(k) assert.is_true(cc:invalidate(k)) end, nil },
        { "invalidate_tag", function() assert.is_true(cc:invalidate_tag("t")) end, nil, tagged_only = true },
        { "delete_pattern", function(k) assert.equal(0, cc:delete_pattern(k:sub(1, 2) .. "*")) end, nil },
        -- delete_pattern revokes every fill of the namespace, matched or not
        { "delete_pattern (another pattern)", function() assert.equal(0, cc:delete_pattern("zz*")) end, nil },
        { "clear", function() assert.equal(0, cc:clear()) end, nil },
        { "incr_version (no such key)", function(k)
            assert.same({ nil, "not found" }, { cc:incr_version(k) })
          end, nil },
        { "batch:commit", function(k) assert.equal(0, cc:batch():invalidate(k):commit()) end, nil },
        { "on_write", function(k)
            assert.equal("done", cc:on_write(function() return "done" end, { keys = function() return k end })())
          end, nil },
      }
    end

    for _, kind in ipairs { "plain", "tagged", "enveloped" } do
      local opts = ({ plain = {}, tagged = { tags = { "t" } }, enveloped = { stale = 30 } })[kind]
      it("every write path revokes a " .. kind .. " fill of a key on each master", function()
        local cc = ns_cache()
        local list = paths(cc)
        for i, p in ipairs(list) do
          if not p.tagged_only or kind == "tagged" then
            for _, key in ipairs(keys_on_masters(cc, "k" .. i .. "m")) do
              local v, _, st = cc:get_or_set(key, function()
                p[2](key)
                return "old"
              end, opts)
              assert.equal("old", v, p[1])
              assert.equal("miss", st, p[1])
              -- the fill was not stored after the write
              assert.equal(p[3], cc:get(key), p[1] .. " on " .. c.owner(cc:_key(key)))
              if kind == "tagged" then
                local want = p[3]
                if p[3] == "new" then
                  want = nil -- a read naming tag t: the untagged (or t2) entry is a miss
                end
                assert.equal(want, cc:get(key, nil, { tags = { "t" } }), p[1])
              end
            end
            cc:clear()
          end
        end
        cc:invalidate_tag { "t", "t2" }
      end)
    end

    it("clear() and delete_pattern() wake the waiters of fills on every master", function()
      local admin = H.admin()
      for _, how in ipairs { "clear", "delete_pattern" } do
        local cc = ns_cache()
        local prefix = "ns" .. nn
        local keys = keys_on_masters(cc, "w")
        local ctl = "clwake:" .. posix.getpid() .. ":" .. how
        admin:command("DEL", ctl .. ":started", ctl .. ":result")
        local pids = {}
        for _, key in ipairs(keys) do
          local filler = posix.fork()
          if filler == 0 then
            local ok = pcall(function()
              assert(hicache.new { cluster = c.seeds, prefix = prefix }):get_or_set(key, function()
                H.cache():command("RPUSH", ctl .. ":started", key)
                posix.sleep(30)
                return "slow"
              end, { lease_ttl = 60 })
            end)
            posix._exit(ok and 0 or 1)
          end
          pids[#pids + 1] = filler
        end
        for _ = 1, #keys do
          assert.is_table(admin:command("BLPOP", ctl .. ":started", 10), "a filler did not start")
        end
        local waiters = {}
        for _, key in ipairs(keys) do
          local w = posix.fork()
          if w == 0 then
            local ok, e = pcall(function()
              local v, err, st = assert(hicache.new { cluster = c.seeds, prefix = prefix }):get_or_set(key,
                function() return "fresh" end, { lease_ttl = 60, wait = 10, on_wait_timeout = "error" })
              H.cache():command("RPUSH", ctl .. ":result",
                ("%s %s %s %s"):format(key, tostring(v), tostring(st or err), posix.now()))
            end)
            if not ok then io.stderr:write("waiter: ", tostring(e), "\n") end
            posix._exit(ok and 0 or 1)
          end
          waiters[#waiters + 1] = w
        end
        posix.sleep(0.5) -- the waiters block on the leases
        local t0 = posix.now()
        -- (a woken waiter's own fill may be stored and deleted before it returns)
        local deleted, err
        if how == "clear" then deleted, err = cc:clear() else deleted, err = cc:delete_pattern("w*") end
        assert.is_true(deleted ~= nil and deleted <= #keys, tostring(err))
        for _, w in ipairs(waiters) do assert.equal(0, posix.waitpid(w)) end
        for _, f in ipairs(pids) do
          posix.kill(f, 9)
          posix.waitpid(f)
        end
        local results = admin:command("LRANGE", ctl .. ":result", 0, -1)
        assert.equal(#keys, #results)
        local line = {}
        for _, r in ipairs(results) do
          local key, v, st, t1 = r:match("^(%S+) (%S+) (%S+) (%S+)$")
          assert.equal("fresh", v, r)
          assert.equal("miss", st, r)
          -- woken, not back by itself after its 10 s wait (woken: milliseconds)
          assert.is_true(tonumber(t1) - t0 < 5, how .. " did not wake the waiter of " .. key)
          line[#line + 1] = ("%s %.1f ms"):format(c.owner(cc:_key(key)), (tonumber(t1) - t0) * 1000)
        end
        print(("\n%s woke the waiters of 3 masters after: %s"):format(how, table.concat(line, ", ")))
        admin:command("DEL", ctl .. ":started", ctl .. ":result")
        cc:clear()
      end
    end)

    -- spec/race_spec.lua's method on the cluster: the "database" is a
    -- version number (on the test server); a writer bumps it, writes or
    -- invalidates by the path under test, then raises the floor; a read that
    -- returns less than the floor it saw when it started is stale. The key
    -- rotates every 100 ms (so its slot does), the tag's key has a slot of
    -- its own; readers fill with tagged get_or_set, or read with get /
    -- get_many naming the tag.
    local SECONDS = H.valgrind and 0.4 or 1.5
    local TAG = "race:t"
    local rows = {}
    local function coin() return math.random() < 0.5 end
    local function rkey() return "rec:" .. math.floor(posix.now() * 10) end
    local scenarios = {
      { "invalidate_tag", writers = 2, write = function(cc) return cc:invalidate_tag(TAG) == true end },
      { "set with tags (half the writes delete)", writers = 1, write = function(cc, k, ver)
          if coin() then return cc:set(k, ver, 60, { tags = { TAG } }) == true end
          return cc:delete(k) ~= nil
        end },
      { "set_many with tags' readers", writers = 1, write = function(cc, k, ver)
          return cc:set_many({ [k] = ver, other = ver }, 60) ~= nil
        end },
      { "clear()", writers = 2, write = function(cc) return cc:clear() ~= nil end },
      { "delete_pattern(\"re*\")", writers = 2, write = function(cc) return cc:delete_pattern("re*") ~= nil end },
      { "incr_version", writers = 2, write = function(cc, k)
          local _, err = cc:incr_version(k)
          return err == nil or err == "not found"
        end },
    }
    teardown(function()
      io.write(("\ncluster race: 6 readers (4 tagged get_or_set, get, get_many), %.1f s per path\n"):format(SECONDS))
      io.write(("%-40s %8s %7s %6s %6s\n"):format("path", "reads", "writes", "fills", "stale"))
      for _, r in ipairs(rows) do
        io.write(("%-40s %8d %7d %6d %6d\n"):format(r.path, r.reads, r.writes, r.fills, r.stale))
      end
    end)
    for _, s in ipairs(scenarios) do
      it("race: no stale read after " .. s[1] .. " returns", function()
        local admin = H.admin()
        local prefix = "race" .. posix.getpid()
        local ctl = {}
        for _, k in ipairs { "db", "floor", "reads", "writes", "fills", "stale", "stop", "samples" } do
          ctl[k] = "clracectl:" .. k
          admin:command("DEL", ctl[k])
        end
        admin:command("SET", ctl.db, 0)
        admin:command("SET", ctl.floor, -1e15)
        admin:command("SET", ctl.stop, 0)
        local cleaner = assert(hicache.new { cluster = c.seeds, prefix = prefix })
        cleaner:clear()
        cleaner:invalidate_tag(TAG)
        local readers, writers = 6, s.writers
        local codes = H.fork_all(readers + writers, function(i)
          math.randomseed(posix.getpid() * 7919 + i)
          local a = H.cache()
          local cc = assert(hicache.new { cluster = c.seeds, prefix = prefix, timeout = 5 })
          local fills = 0
          local function load()
            fills = fills + 1
            local v = tonumber(a:command("GET", ctl.db))
            posix.sleep(math.random() * 0.03)
            return v
          end
          if i > readers then
            local ok, err = pcall(function()
              local deadline, writes = posix.now() + SECONDS, 0
              while posix.now() < deadline do
                local ver = a:command("INCR", ctl.db)
                if s.write(cc, rkey(), ver) then
                  a:command("EVAL", "if tonumber(redis.call('GET', KEYS[1])) < tonumber(ARGV[1]) then "
                    .. "redis.call('SET', KEYS[1], ARGV[1]) end", 1, ctl.floor, ver)
                end
                writes = writes + 1
                if coin() then posix.sleep(math.random() * 0.003) end
              end
              a:command("INCRBY", ctl.writes, writes)
            end)
            a:command("INCR", ctl.stop)
            assert(ok, err)
          else
            local reads, stale = 0, 0
            local tagged = { ttl = 60, lease_ttl = 5, tags = { TAG } }
            while tonumber(a:command("GET", ctl.stop)) < writers do
              local floor = tonumber(a:command("GET", ctl.floor))
              local k = rkey()
              local v
              if i <= 4 then v = cc:get_or_set(k, load, tagged)
              elseif i == 5 then v = cc:get(k, nil, { tags = { TAG } })
              else v = (cc:get_many({ k, "other" }, { tags = { TAG } }) or {})[k] end
              if H.mtype(v) == "integer" then
                reads = reads + 1
                if v < floor then
                  stale = stale + 1
                  if stale <= 5 then
                    a:command("RPUSH", ctl.samples, ("reader %d read %d < floor %d"):format(i, v, floor))
                  end
                end
              end
            end
            a:command("INCRBY", ctl.reads, reads)
            a:command("INCRBY", ctl.stale, stale)
          end
          a:command("INCRBY", ctl.fills, fills)
        end)
        H.all_zero(codes)
        local function num(k) return tonumber(admin:command("GET", ctl[k])) or 0 end
        rows[#rows + 1] = { path = s[1], reads = num "reads", writes = num "writes", fills = num "fills",
                            stale = num "stale" }
        cleaner:clear()
        cleaner:invalidate_tag(TAG)
        local samples = admin:command("LRANGE", ctl.samples, 0, -1)
        assert.is_true(num "writes" > 0 and num "reads" > 0, "no traffic")
        assert.equal(0, num "stale", table.concat(samples, "; "))
      end)
    end
  end)
end)
