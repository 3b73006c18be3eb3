-- `hicache stats` (lua/hicache/cli/stats.lua) run as a real process
-- (bin/hicache with the interpreter of the run): the server's view from
-- INFO next to what real processes published with stats_publish, as text
-- and as JSON; --family; nothing published; usage and connection errors;
-- on a cluster, INFO summed over the masters and the publishers' hashes
-- found on every master.
local H = require "helper"
local T = require "helpers.topology"
local cjson = require "cjson"
local posix = H.posix

local n = 0
local function fresh_prefix()
  n = n + 1
  return ("clistats%d-%d-%d"):format(posix.getpid(), n, math.random(1e6))
end

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs `hicache stats ARGS...`: stdout, stderr, exit code.
local function hicache_stats(...)
  local args = { "stats" }
  for i = 1, select("#", ...) do args[#args + 1] = sh_quote((select(i, ...))) end
  local errfile = os.tmpname()
  local out, code = H.shell(("{ %s bin/hicache %s 2>%s; }"):format(H.lua_bin, table.concat(args, " "), errfile))
  local f = assert(io.open(errfile))
  local err = f:read("a")
  f:close()
  os.remove(errfile)
  return out, err, code
end

local URL = "redis://" .. H.host .. ":" .. H.port

-- Three real processes publish under prefix; process i (1..3) has, in
-- family user, 10 * i hits and 10 - i misses, in family page 0 hits and
-- 3 * i misses, and one set (user). Returns their pids.
local function publish_three(url, prefix)
  local pids = {}
  for i = 1, 3 do
    local out, code = H.lua(([[
      local hicache = require "hicache"
      local c = assert(hicache.new { url = %q, prefix = %q, stats_publish = { interval = 3600 } })
      assert(c:set("user:1", 1))
      for _ = 1, %d do assert(c:get("user:1") == 1) end
      for j = 1, %d do assert(c:get("user:no" .. j) == nil) end
      for j = 1, %d do assert(c:get("page:" .. j) == nil) end
      assert(c:stats_publish())
      io.write(require("hctest").getpid())
    ]]):format(url, prefix, i * 10, 10 - i, i * 3))
    assert.equal(0, code, out)
    pids[i] = assert(tonumber(out), out)
  end
  return pids
end

-- The rows of the text output that start with one of the words (after
-- the indentation), split into columns.
local function rows(out, first)
  local t = {}
  for line in out:gmatch("[^\n]+") do
    local cols = {}
    for w in line:gmatch("%S+") do cols[#cols + 1] = w end
    if cols[1] == first or (first == nil and cols[1]) then t[#t + 1] = cols end
  end
  return t
end

describe("hicache stats", function()
  it("says plainly that nothing was published, after the server's view (exit 0)", function()
    local prefix = fresh_prefix()
    local out, err, code = hicache_stats(URL, "--prefix", prefix)
    assert.equal(0, code, err)
    assert.equal("", err)
    assert.matches("^server redis://" .. H.host:gsub("%.", "%%.") .. ":" .. H.port .. " %(1 master%)\n", out)
    assert.matches("\n  keyspace  hits %d+  misses %d+  hit rate %S+\n", out) -- "-" without lookups
    assert.matches("\n  keys      evicted %d+  expired %d+\n", out)
    assert.matches("\n  memory    used [%d.]+%a?  maxmemory %S+  policy %S+\n", out)
    assert.matches('\nno published stats under prefix "' .. prefix:gsub("%-", "%%-")
      .. '" %(processes publish with hicache.new{stats_publish = true}%)\n$', out)
    local json = cjson.decode((hicache_stats(URL, "--prefix", prefix, "--json")))
    assert.same({}, json.processes)
    assert.same({}, json.families)
    assert.equal(prefix, json.prefix)
  end)

  it("shows each process and each family summed over them, by traffic, with hit rates", function()
    local prefix = fresh_prefix()
    local pids = publish_three(URL, prefix)
    H.admin():command("SET", prefix .. ":stats:not-a-hash", "x") -- under the name, not a published hash
    local out, err, code = hicache_stats(URL, "--prefix", prefix)
    assert.equal(0, code, err)
    assert.equal("", err)
    assert.matches('\npublished by 3 processes %(prefix "' .. prefix:gsub("%-", "%%-") .. '"%)\n', out)
    local host = (H.shell("hostname"):gsub("%s+$", ""))
    local procs = rows(out, host)
    assert.equal(3, #procs)
    for i, p in ipairs(procs) do -- sorted by host, pid: the pids grow here
      assert.equal(tostring(pids[i]), p[2])
      assert.matches("^%x%x%x%x%x%x%x%x$", p[3])
      assert.matches("^%d+[%a.%d]*$", p[4]) -- the age of the last publish
      local hits, misses = 10 * i, 10 - i + 3 * i
      assert.same({ tostring(hits), tostring(misses), ("%.1f%%"):format(100 * hits / (hits + misses)), "1", "0" },
        { p[5], p[6], p[7], p[8], p[9] })
    end
    local header = rows(out, "FAMILY")
    assert.same({ { "FAMILY", "PROCS", "HITS", "MISSES", "HIT", "RATE", "SETS", "DELETES", "ERRORS" } }, header)
    local fams = {}
    for _, r in ipairs(rows(out)) do
      if r[1] == "user" or r[1] == "page" then fams[#fams + 1] = r end
    end
    -- user: 60 hits, 24 misses, 3 sets (87); page: 0 hits, 18 misses (18)
    assert.same({
      { "user", "3", "60", "24", "71.4%", "3", "0", "0" },
      { "page", "3", "0", "18", "0.0%", "0", "0", "0" },
    }, fams)
  end)

  it("--json: the same as one JSON object", function()
    local prefix = fresh_prefix()
    local pids = publish_three(URL, prefix)
    local out, err, code = hicache_stats(URL, "--prefix", prefix, "--json")
    assert.equal(0, code, err)
    assert.equal("", err)
    assert.matches("^{.*}\n$", out)
    local j = cjson.decode(out)
    assert.equal(prefix, j.prefix)
    assert.same({ H.host .. ":" .. H.port }, j.server.nodes)
    for _, k in ipairs { "keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys", "used_memory",
                         "maxmemory" } do
      assert.is_number(j.server[k], k)
    end
    assert.is_true(j.server.keyspace_hits >= 60, "the publishers' hits are the server's too")
    assert.near(j.server.keyspace_hits / (j.server.keyspace_hits + j.server.keyspace_misses), j.server.hit_rate, 1e-9)
    assert.is_string(j.server.used_memory_human)
    assert.is_string(j.server.maxmemory_policy)
    assert.equal(3, #j.processes)
    for i, p in ipairs(j.processes) do
      assert.equal(pids[i], p.pid)
      assert.equal(("%s:stats:%s:%d:%s"):format(prefix, p.host, p.pid, p.id), p.key)
      assert.equal(3600, p.interval)
      assert.equal(H.hicache._VERSION, p.hicache)
      assert.is_true(p.age_ms >= 0 and p.updated > 1.6e12 and p.started > 1.6e9)
      local hits, misses = 10 * i, 10 - i + 3 * i
      assert.equal(hits, p.hits)
      assert.equal(misses, p.misses)
      assert.near(hits / (hits + misses), p.hit_rate, 1e-9)
      assert.equal(hits, p.total.hits)
      assert.equal(1, p.total.sets)
      assert.equal(10 * i, p.families.user.hits)
      assert.equal(3 * i, p.families.page.misses)
      assert.equal(1, p.ops.publish.count)
      assert.equal(1 + 10 * i + 10 - i + 3 * i, p.ops.get.count + p.ops.set.count)
    end
    assert.equal(2, #j.families)
    local user, page = j.families[1], j.families[2]
    assert.same({ "user", 3, 60, 24, 3 }, { user.family, user.processes, user.hits, user.misses, user.sets })
    assert.near(60 / 84, user.hit_rate, 1e-9)
    assert.same({ "page", 3, 0, 18 }, { page.family, page.processes, page.hits, page.misses })
    assert.equal(0, page.hit_rate)
  end)

  it("--family F: only that family, per process and summed", function()
    local prefix = fresh_prefix()
    local pids = publish_three(URL, prefix)
    local out, err, code = hicache_stats(URL, "--prefix", prefix, "--family", "page")
    assert.equal(0, code, err)
    assert.matches('\npublished by 3 processes %(prefix "' .. prefix:gsub("%-", "%%-") .. '", family "page"%)\n', out)
    local host = (H.shell("hostname"):gsub("%s+$", ""))
    for i, p in ipairs(rows(out, host)) do
      assert.same({ tostring(pids[i]), "0", tostring(3 * i), "0.0%", "0" }, { p[2], p[5], p[6], p[7], p[8] })
    end
    assert.is_nil(out:find("\n  user ", 1, true))
    assert.matches("\n  page +3 +0 +18 +0%.0%% +0 +0 +0\n", out)
    local j = cjson.decode((hicache_stats(URL, "--prefix", prefix, "--family", "page", "--json")))
    assert.equal("page", j.family)
    assert.equal(1, #j.families)
    assert.equal(6, j.processes[2].misses)
    -- a family nobody published
    out, err, code = hicache_stats(URL, "--prefix", prefix, "--family", "nope")
    assert.equal(0, code, err)
    assert.matches('\nno published stats for prefix "[^"]+", family "nope"\n$', out)
  end)

  it("usage errors exit 2, an unreachable server exits 1, each with one line on stderr", function()
    local out, err, code = hicache_stats()
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal("hicache: stats: a Redis URL is required (hicache stats URL [--prefix P] [--json] [--family F])\n",
      err)
    out, err, code = hicache_stats(URL, "--bogus")
    assert.same({ "", "hicache: stats: unknown option '--bogus'\n", 2 }, { out, err, code })
    out, err, code = hicache_stats(URL, "extra")
    assert.same({ "", "hicache: stats: unexpected argument 'extra'\n", 2 }, { out, err, code })
    out, err, code = hicache_stats(URL, "--family", "a:b")
    assert.same({ "", "hicache: stats: --family needs a key family: the text of a key before its first ':'\n", 2 },
      { out, err, code })
    out, err, code = hicache_stats("redis://user:secret-pw@127.0.0.1:1", "--timeout", "2")
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("^hicache: stats: cannot reach redis://user:%*%*%*@127%.0%.0%.1:1: [^\n]+\n$", err)
  end)

  describe("on a cluster", function()
    local c
    lazy_setup(function() c = T.start_cluster { masters = 3, replicas = 0 } end)
    lazy_teardown(function() if c then c.stop() end end)

    local function info_sum(field)
      local sum = 0
      for _, m in ipairs(c.masters()) do
        sum = sum + assert(tonumber(c.cli(m.port, "INFO", "stats"):match(field .. ":(%d+)")))
      end
      return sum
    end

    it("sums INFO over the masters and finds the hashes published on every master", function()
      local url = "redis+cluster://" .. table.concat(c.seeds, ",")
      local pids = {}
      local prefix
      -- prefixes whose three hashes (one per process) do not all land on one
      -- master are the point; the prefix picks the slots, so try a few
      local spread = false
      for _ = 1, 10 do
        prefix = fresh_prefix()
        pids = publish_three(url, prefix)
        local owners = {}
        for _, m in ipairs(c.masters()) do
          local keys = c.cli(m.port, "KEYS", prefix .. ":stats:*")
          if keys:find("%S") then owners[#owners + 1] = m.port end
        end
        if #owners > 1 then
          spread = true
          break
        end
      end
      assert.is_true(spread, "the hashes of 3 processes landed on one master 10 times")
      local before = info_sum("keyspace_hits")
      local out, err, code = hicache_stats(url, "--prefix", prefix, "--json")
      local after = info_sum("keyspace_hits")
      assert.equal(0, code, err)
      local j = cjson.decode(out)
      assert.equal(3, #j.server.nodes)
      assert.is_true(j.server.keyspace_hits >= before and j.server.keyspace_hits <= after,
        ("keyspace_hits %d summed over the masters: between %d and %d"):format(j.server.keyspace_hits, before, after))
      assert.is_true(before > 0)
      assert.equal(3, #j.processes)
      for i, p in ipairs(j.processes) do
        assert.equal(pids[i], p.pid)
        assert.equal(10 * i, p.families.user.hits)
      end
      assert.same({ "user", 60, 24 }, { j.families[1].family, j.families[1].hits, j.families[1].misses })
      out, err, code = hicache_stats(url, "--prefix", prefix)
      assert.equal(0, code, err)
      assert.matches(" %(3 masters%)\n", out)
    end)
  end)
end)
