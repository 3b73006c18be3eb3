-- The cache API against both backends: the same specs on a real Redis and
-- on backend = "memory" (the in-process node, src/transport/hc_mem.c),
-- then what only the memory backend has (a bound, eviction, a name, fork)
-- and a differential check of its commands and scripts against Redis.
local H = require "helper"
local hicache = H.hicache
local testing = require "hicache.testing"
local posix = H.posix
local null = H.null

local function sleep(s) posix.sleep(s) end

local function unique(what)
  local reg = debug.getregistry()
  reg.hicache_backends_unique = (reg.hicache_backends_unique or 0) + 1
  return ("%s%d-%d"):format(what, posix.getpid(), reg.hicache_backends_unique)
end

-- A cache of a backend (extra options opts); memory caches share the node
-- called "backends".
local function make(backend, opts)
  opts = opts or {}
  if backend == "memory" then
    opts.backend, opts.name = "memory", opts.name or "backends"
    return assert(hicache.new(opts))
  end
  return H.cache(opts)
end

-- The Lua expression that makes the same cache in another Lua state of
-- this process (spec/helpers/hc_lua_threads.c).
local function make_code(backend, prefix)
  if backend == "memory" then
    return ('require("hicache").new{backend = "memory", name = "backends", prefix = %q, timeout = 10}'):format(prefix)
  end
  return ('require("hicache").new{host = os.getenv("HICACHE_TEST_HOST"), '
    .. 'port = tonumber(os.getenv("HICACHE_TEST_PORT")), prefix = %q, timeout = 10, pool = {size = 32, wait = 10}}')
    :format(prefix)
end

-- Runs chunk (a Lua source called with phase, i, n) in n threads of a
-- helper process; returns the lines it printed, by what printed them.
local function threads(n, chunk)
  local path = H.dir .. "/" .. unique("chunk") .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(chunk)
  f:close()
  local out, code = H.shell(("%s/hc_lua_threads %d %s"):format(H.build, n, path))
  os.remove(path)
  assert(code == 0, out)
  local r = { thread = {} }
  for line in out:gmatch("[^\n]+") do
    local who, text = line:match("^(%a+ ?%d*): (.*)$")
    if who == "before" or who == "after" then r[who] = text
    elseif who then r.thread[tonumber(who:match("%d+"))] = text end
  end
  return r, out
end

local function sorted(t)
  table.sort(t)
  return t
end

local function all_keys(c, pattern)
  local out = {}
  for k in c:keys(pattern) do out[#out + 1] = k end
  return sorted(out)
end

-- The scripts' sources: the C string literals of hc_scripts.c.
local function script_sources()
  local f = assert(io.open("src/core/hc_scripts.c"))
  local text = f:read("a")
  f:close()
  local out = {}
  for name, body in text:gmatch("static const char (%w+)_src%[%] =(.-);\n") do
    local parts = {}
    for lit in body:gmatch('"(.-[^\\])"') do
      parts[#parts + 1] = (lit:gsub("\\(.)", { n = "\n", ["\\"] = "\\", ["'"] = "'", ['"'] = '"' }))
    end
    out[name] = table.concat(parts)
  end
  return out
end

for _, backend in ipairs { "redis", "memory" } do
  describe(backend .. " backend", function()
    local c, prefix
    before_each(function()
      prefix = unique("bk")
      c = make(backend, { prefix = prefix })
    end)
    after_each(function() c:clear() end)

    it("get, set, add: values, defaults, nx/xx, TTLs that expire", function()
      assert.is_true(c:set("k", { a = 1, list = { 1, 2, "x" } }))
      assert.same({ a = 1, list = { 1, 2, "x" } }, c:get("k"))
      assert.equal("dflt", c:get("missing", "dflt"))
      assert.is_nil(c:get("missing"))
      assert.is_false(c:set("k", 2, nil, { nx = true }))
      assert.is_true(c:set("k", 3, nil, { xx = true }))
      assert.is_false(c:set("nope", 3, nil, { xx = true }))
      assert.equal(3, c:get("k"))
      assert.is_true(c:add("new", "a"))
      assert.is_false(c:add("new", "b"))
      assert.equal("a", c:get("new"))
      assert.is_true(c:set("short", "v", 0.15))
      assert.equal("v", c:get("short"))
      sleep(0.4)
      assert.is_nil(c:get("short"))
      assert.is_true(c:add("short", "again")) -- an expired entry is no entry
    end)

    it("get_many and set_many", function()
      assert.same({}, c:set_many({ a = 1, b = "two", c = { 3 } }))
      assert.same({ a = 1, b = "two", c = { 3 } }, c:get_many({ "a", "b", "c", "d" }))
      assert.same({}, c:get_many({}))
    end)

    it("incr and decr: atomic, errors for a missing key, a non-integer and overflow", function()
      local v, err = c:incr("n")
      assert.is_nil(v)
      assert.equal("not found", err)
      c:set("n", 5)
      assert.equal(6, c:incr("n"))
      assert.equal(16, c:incr("n", 10))
      assert.equal(13, c:decr("n", 3))
      assert.equal(13, c:get("n"))
      c:set("s", "text")
      v, err = c:incr("s")
      assert.is_nil(v)
      assert.equal("not an integer", err)
      c:command("SET", c:_key("big"), "9223372036854775807") -- as hicache stores an int64 (its text)
      v, err = c:incr("big")
      assert.is_nil(v)
      assert.equal("overflow", err)
    end)

    it("ttl, expire, touch, persist, has_key", function()
      c:set("k", 1, 100)
      local t = c:ttl("k")
      assert.is_true(t > 99 and t <= 100, tostring(t))
      assert.is_true(c:expire("k", 5))
      t = c:ttl("k")
      assert.is_true(t > 4 and t <= 5, tostring(t))
      assert.is_true(c:touch("k", 50))
      assert.is_true(c:ttl("k") > 5)
      assert.is_true(c:persist("k"))
      assert.equal(0, c:ttl("k"))
      assert.is_false(c:persist("k"))
      assert.is_nil(c:ttl("missing"))
      assert.is_false(c:expire("missing", 5))
      assert.is_true(c:has_key("k"))
      assert.is_false(c:has_key("missing"))
      assert.is_true(c:expire("k", 0.15))
      sleep(0.4)
      assert.is_false(c:has_key("k"))
    end)

    it("delete and delete_many count what a get would have seen", function()
      c:set_many({ a = 1, b = 2, c = 3 })
      assert.is_true(c:delete("a"))
      assert.is_false(c:delete("a"))
      assert.equal(2, c:delete_many({ "b", "c", "zz" }))
      assert.equal(0, c:delete_many({}))
      assert.same({}, c:get_many({ "a", "b", "c" }))
    end)

    it("keys, delete_pattern, clear: glob patterns, binary keys, only this namespace", function()
      local other = make(backend, { prefix = prefix .. "x" })
      other:set("user:1", "not mine")
      c:set_many({ ["user:1"] = 1, ["user:2"] = 2, ["user:10"] = 10, ["post:1"] = "p", ["a*b"] = 0,
                   ["z\0q"] = "nul" })
      assert.same({ "a*b", "post:1", "user:1", "user:10", "user:2", "z\0q" }, all_keys(c))
      assert.same({ "user:1", "user:10", "user:2" }, all_keys(c, "user:*"))
      assert.same({ "user:1", "user:2" }, all_keys(c, "user:?"))
      assert.same({ "user:1", "user:10" }, all_keys(c, "user:1*"))
      assert.same({ "user:2" }, all_keys(c, "user:[^1]"))
      assert.same({ "user:1", "user:2" }, all_keys(c, "user:[0-9]"))
      assert.same({ "a*b" }, all_keys(c, "a\\*b"))
      assert.same({ "z\0q" }, all_keys(c, "z?q"))
      assert.equal(3, c:delete_pattern("user:*"))
      assert.same({ "a*b", "post:1", "z\0q" }, all_keys(c))
      assert.equal(3, c:clear())
      assert.same({}, all_keys(c))
      assert.equal("not mine", other:get("user:1"))
      other:clear()
    end)

    it("tags: a read sees an entry while its tags are current", function()
      c:set("t1", "v1", nil, { tags = { "group", "g2" } })
      c:set("t2", "v2", nil, { tags = { "group" } })
      assert.equal("v1", c:get("t1", nil, { tags = { "g2", "group" } }))
      assert.equal("v1", c:get("t1"))
      assert.is_nil(c:get("t1", nil, { tags = { "group" } })) -- another tag list: a miss
      assert.is_true(c:invalidate_tag("group"))
      assert.is_nil(c:get("t1"))
      assert.is_nil(c:get("t2", nil, { tags = { "group" } }))
      assert.is_false(c:has_key("t2"))
      assert.same({}, all_keys(c, "t*"))
      c:set("t2", "v3", nil, { tags = { "group" } })
      assert.equal("v3", c:get("t2", nil, { tags = { "group" } }))
      assert.is_true(c:add("t1", "fresh"))
    end)

    it("get_or_set: miss then hit, a failed computation stores nothing, tags, neg_ttl", function()
      local runs = 0
      local function fn() runs = runs + 1; return { n = runs } end
      local v, err, st = c:get_or_set("g", fn)
      assert.same({ { n = 1 }, nil, "miss" }, { v, err, st })
      v, err, st = c:get_or_set("g", fn)
      assert.same({ { n = 1 }, nil, "hit" }, { v, err, st })
      v, err, st = c:get_or_set("f", function() return nil, "db down" end)
      assert.same({ nil, "db down", nil }, { v, err, st })
      v, err, st = c:get_or_set("f", function() return "ok" end) -- the lease was released
      assert.same({ "ok", nil, "miss" }, { v, err, st })
      v = c:get_or_set("tg", function() return "tagged" end, { tags = { "tt" } })
      assert.equal("tagged", v)
      assert.equal("tagged", (c:get_or_set("tg", fn, { tags = { "tt" } })))
      c:invalidate_tag("tt")
      v, err, st = c:get_or_set("tg", function() return "again" end, { tags = { "tt" } })
      assert.same({ "again", nil, "miss" }, { v, err, st })
      v, err, st = c:get_or_set("neg", function() return nil end, { neg_ttl = 10 })
      assert.same({ nil, nil, "miss" }, { v, err, st })
      v, err, st = c:get_or_set("neg", fn, { neg_ttl = 10 })
      assert.same({ nil, nil, "hit" }, { v, err, st })
      assert.equal(1, runs)
    end)

    it("get_or_set: 8 threads on one cold key compute once (the keeper holds the lease), the others wait", function()
      local r = threads(8, ([[
        local phase, i = ...
        local c = %s
        if phase == "before" then _G.keep = c; c:command("DEL", c:_key("runs")); return end
        if phase == "after" then return tostring(c:command("GET", c:_key("runs"))) end
        local v, err, st = c:get_or_set("cold", function()
          c:command("INCR", c:_key("runs"))
          require("hicache.core").sleep(0.5) -- five lease_ttl: the keeper keeps the lease
          return "value-" .. i
        end, { ttl = 60, wait = 20, lease_ttl = 0.1 })
        assert(v, err)
        return st .. " " .. v
      ]]):format(make_code(backend, prefix)))
      assert.equal("1", r.after)
      local value, statuses = nil, {}
      for i = 1, 8 do
        local st, v = r.thread[i]:match("^(%S+) (.*)$")
        value = value or v
        assert.equal(value, v)
        statuses[st] = (statuses[st] or 0) + 1
      end
      assert.equal(1, statuses.miss)
      assert.equal(7, (statuses.waited or 0) + (statuses.hit or 0))
      assert.is_true((statuses.waited or 0) >= 1) -- waiters were woken, not only late readers
    end)

    it("locks: exclusion across 6 threads and fences that increase with every grant", function()
      local r = threads(6, ([[
        local phase, i = ...
        local c = %s
        if phase == "before" then _G.keep = c; c:command("DEL", c:_key("counter"), c:_key("fences")); return end
        if phase == "after" then
          local f = c:command("LRANGE", c:_key("fences"), 0, -1)
          return tostring(c:command("GET", c:_key("counter"))) .. " " .. table.concat(f, ",")
        end
        for _ = 1, 5 do
          local l = assert(c:lock("L", { ttl = 10, wait = 30 }))
          local v = c:command("GET", c:_key("counter"))
          local n = v == require("hicache").null and 0 or tonumber(v)
          require("hicache.core").sleep(0.002)
          c:command("SET", c:_key("counter"), tostring(n + 1)) -- lost if two held the lock
          c:command("RPUSH", c:_key("fences"), string.format("%%.0f", l.fence))
          assert(l:release())
        end
      ]]):format(make_code(backend, prefix)))
      local count, fences = r.after:match("^(%d+) (.*)$")
      assert.equal("30", count)
      local last = 0
      local n = 0
      for f in fences:gmatch("%d+") do
        n = n + 1
        assert.is_true(tonumber(f) > last, fences)
        last = tonumber(f)
      end
      assert.equal(30, n)
    end)

    it("locks: timeout, release, extend, owned", function()
      local l = assert(c:lock("one", { ttl = 5 }))
      local l2, err = c:lock("one", { ttl = 5, wait = 0 })
      assert.is_nil(l2)
      assert.equal("timeout", err)
      assert.is_true(l:owned())
      assert.is_true(l:extend(10))
      assert.is_true(l:release())
      assert.is_false(l:owned())
      local l3 = assert(c:lock("one", { ttl = 0.2 }))
      assert.is_true(l3.fence > l.fence)
      sleep(0.4)
      local l4 = assert(c:lock("one", { ttl = 5, wait = 0 })) -- the first expired
      local ok, rerr = l3:release()
      assert.is_nil(ok)
      assert.equal("not owned", rerr)
      l4:release()
    end)

    it("memoize: cached per arguments, invalidate recomputes", function()
      local calls = 0
      local f = c:memoize(function(a, b) calls = calls + 1; return a + b, "sum" end, { name = "add" })
      assert.same({ 3, "sum" }, { f(1, 2) })
      assert.same({ 3, "sum" }, { f(1, 2) })
      assert.same({ 7, "sum" }, { f(3, 4) })
      assert.equal(2, calls)
      assert.is_true(f:invalidate(1, 2))
      f(1, 2)
      assert.equal(3, calls)
    end)

    it("on_write and batch invalidate keys and tags", function()
      local db = { name = "Ada" }
      local rename = c:on_write(function(name) db.name = name; return "done" end, {
        keys = function() return "profile" end, tags = function() return { "people" } end,
      })
      c:set("profile", db.name)
      c:set("roster", { db.name }, nil, { tags = { "people" } })
      assert.equal("done", rename("Grace"))
      assert.is_nil(c:get("profile"))
      assert.is_nil(c:get("roster", nil, { tags = { "people" } }))
      c:set("x", 1)
      c:set("y", 2, nil, { tags = { "yy" } })
      local b = c:batch():invalidate("x"):invalidate_tag("yy")
      assert.equal(1, c:get("x"))
      assert.equal(1, b:commit())
      assert.is_nil(c:get("x"))
      assert.is_nil(c:get("y"))
    end)

    it("stats count what happened", function()
      local s = make(backend, { prefix = prefix, stats = true })
      s:stats_reset()
      s:get("a")
      s:set("a", 1)
      s:get("a")
      s:get_or_set("b", function() return 2 end)
      s:delete("a")
      local st = assert(s:stats())
      assert.equal(1, st.hits)
      assert.equal(2, st.misses) -- the get and the get_or_set's miss
      assert.equal(2, st.sets) -- the set and the fill
      assert.equal(1, st.deletes)
      assert.equal(2, st.ops.get.count)
      assert.equal(1, st.ops.get_or_set.count)
      assert.equal(0, st.errors)
    end)

    it("hicache.testing: an isolated cache, recorded statuses, is_cached", function()
      local t = testing.cache(backend == "memory" and { backend = "memory", name = "backends" } or nil)
      local rec = testing.record(t)
      t:get_or_set("p", function() return 1 end)
      t:get_or_set("p", function() return 1 end)
      assert.same({ "miss", "hit" }, rec:statuses("p"))
      assert.is_cached(t, "p")
      t:delete("p")
      assert.is_not_cached(t, "p")
      assert.is_nil(c:get("p")) -- another prefix
      testing.cleanup()
    end)
  end)
end

-- ---------------------------------------------------------------------------
describe("memory backend only", function()
  local function mem(opts)
    opts = opts or {}
    opts.backend = "memory"
    return assert(hicache.new(opts))
  end

  it("options: what names a server is refused; defaults", function()
    for _, kv in ipairs {
      { "url", "redis://x" }, { "host", "h" }, { "port", 1 }, { "path", "/p" }, { "db", 1 }, { "password", "p" },
      { "username", "u" }, { "tls", true }, { "transport", "blocking" }, { "l1", true },
    } do
      local ok, err = pcall(hicache.new, { backend = "memory", [kv[1]] = kv[2] })
      assert.is_false(ok)
      assert.matches("invalid option '" .. kv[1] .. "': cannot be used with backend = \"memory\"", err, 1, true)
    end
    local ok, err = pcall(hicache.new, { backend = "mem" })
    assert.is_false(ok)
    assert.matches("invalid option 'backend': must be \"redis\" or \"memory\"", err, 1, true)
    ok, err = pcall(hicache.new, { max_bytes = 1e6 })
    assert.is_false(ok)
    assert.matches("invalid option 'max_bytes': is an option of backend = \"memory\"", err, 1, true)
    ok, err = pcall(hicache.new, { backend = "memory", max_bytes = 10 })
    assert.is_false(ok)
    assert.matches("invalid option 'max_bytes'", err, 1, true)
    ok, err = pcall(hicache.new, { backend = "memory", name = "" })
    assert.is_false(ok)
    assert.matches("invalid option 'name'", err, 1, true)
    -- pool options and the breaker are accepted (and have nothing to do)
    local c = mem { pool = { size = 1, wait = 0 }, breaker = false, prefix = "opts" }
    assert.matches("^hicache.client %(memory://default%)", tostring(c))
    assert.is_true(c:set("k", 1))
    c:clear()
  end)

  it("the argument error is raised at the caller's line", function()
    local ok, err = pcall(function() hicache.new { backend = "memory", host = "x" } end)
    assert.is_false(ok)
    assert.matches("backends_spec.lua:%d+:", err)
  end)

  it("caches with the same name and limits share one store; other names do not", function()
    local a = mem { name = "share", prefix = "p" }
    local b = mem { name = "share", prefix = "p", timeout = 2 } -- another pool, the same node
    local other = mem { name = "other", prefix = "p" }
    local bigger = mem { name = "share", prefix = "p", max_bytes = 32 * 1024 * 1024 }
    a:set("k", "shared")
    assert.equal("shared", b:get("k"))
    assert.is_nil(other:get("k"))
    assert.is_nil(bigger:get("k")) -- other limits: another store
    a:clear()
  end)

  it("never holds more than max_bytes, evicts, and refuses a value above its limit", function()
    local c = mem { name = "bound", max_bytes = 1024 * 1024, prefix = "b" }
    local value = string.rep("x", 1000)
    for i = 1, 3000 do assert(c:set("k" .. i, value, 0)) end
    local keys = c:command("KEYS", "*")
    local bytes = 0
    for _, k in ipairs(keys) do bytes = bytes + #k + c:command("STRLEN", k) end
    assert.is_true(#keys < 3000, "nothing was evicted")
    assert.is_true(#keys > 300, "the store holds too little: " .. #keys)
    assert.is_true(bytes <= 1024 * 1024, "over budget: " .. bytes)
    assert.equal(value, c:get("k3000")) -- the newest survives
    local ok, err = c:set("huge", string.rep("y", 100 * 1024))
    assert.is_nil(ok)
    assert.equal("OOM command not allowed when used memory > 'maxmemory'.", err)
    assert.equal(#keys, c:command("DBSIZE"))
    c:command("FLUSHDB")
    assert.equal(0, c:command("DBSIZE"))
  end)

  it("max_items bounds the number of entries", function()
    local c = mem { name = "items", max_items = 160, prefix = "i" }
    for i = 1, 1000 do assert(c:set("k" .. i, i, 0)) end
    local n = c:command("DBSIZE")
    assert.is_true(n <= 160 and n > 16, tostring(n))
  end)

  it("commands it does not run give clear errors, and the cache goes on", function()
    local c = mem { prefix = "u" }
    for _, cmd in ipairs { { "MULTI" }, { "WATCH", "k" }, { "SUBSCRIBE", "ch" }, { "SELECT", "1" },
                           { "CLIENT", "ID" }, { "HSET", "h", "f", "v" }, { "FOO" } } do
      local r, err = c:command(H.unpack(cmd))
      assert.is_nil(r)
      assert.equal(("ERR unknown command '%s' (not supported by the memory backend)"):format(cmd[1]), err)
    end
    local r, err = c:command("EVAL", "return 1", 0)
    assert.is_nil(r)
    assert.matches("not supported by the memory backend", err, 1, true)
    r, err = c:command("SCRIPT", "LOAD", "return 1")
    assert.is_nil(r)
    assert.matches("not supported by the memory backend", err, 1, true)
    r, err = c:command("EVALSHA", string.rep("a", 40), 0)
    assert.is_nil(r)
    assert.equal("NOSCRIPT No matching script. Please use EVAL.", err)
    assert.is_true(c:set("k", 1))
    assert.equal(1, c:get("k"))
    c:clear()
  end)

  it("BLPOP waits for a push, and no longer than the connection's timeout", function()
    local c = mem { prefix = "w", timeout = 0.3 }
    local r, err = c:command("BLPOP", "w:list", 0) -- for ever, bounded by the timeout
    assert.is_nil(r)
    assert.equal("timeout", err)
    assert.equal(null, c:command("BLPOP", "w:list", "0.05"))
    c:command("RPUSH", "w:list", "a", "b")
    assert.same({ "w:list", "a" }, c:command("BLPOP", "w:other", "w:list", 1))
    assert.equal("PONG", c:command("PING")) -- the connection goes on
    local conn = assert(c:reserve())
    assert(conn:set_timeout(5))
    assert.equal(null, conn:command("BLPOP", "w:later", "0.2"))
    conn:release()
    c:command("DEL", "w:list")
    -- a push from another thread wakes a waiter at once
    local out = threads(2, [[
      local phase, i = ...
      if phase ~= "thread" then return end
      local c = require("hicache").new{backend = "memory", prefix = "w", timeout = 30}
      if i == 1 then
        local r = assert(c:command("BLPOP", "w:later", 20))
        return r[2]
      end
      require("hicache.core").sleep(0.2)
      c:command("RPUSH", "w:later", "pushed")
    ]])
    assert.equal("pushed", out.thread[1])
  end)

  it("SCRIPT FLUSH: hicache loads its scripts again (NOSCRIPT) and goes on", function()
    local c = mem { prefix = "sf" }
    assert.is_true(c:set("k", 1))
    local sha = c:command("SCRIPT", "LOAD", script_sources().write)
    assert.same({ 1, 0 }, c:command("SCRIPT", "EXISTS", sha, string.rep("0", 40)))
    assert.equal("OK", c:command("SCRIPT", "FLUSH"))
    assert.same({ 0 }, c:command("SCRIPT", "EXISTS", sha))
    local r, err = c:command("EVALSHA", sha, 0, "100000")
    assert.is_nil(r)
    assert.equal("NOSCRIPT No matching script. Please use EVAL.", err)
    assert.is_true(c:set("k", 2)) -- reloaded after NOSCRIPT
    assert.equal(2, c:get("k"))
    assert.same({ 1 }, c:command("SCRIPT", "EXISTS", sha))
    c:clear()
  end)

  it("a forked child starts with an empty store; the parent's is untouched", function()
    local c = mem { prefix = "fork" }
    c:set("parent", "p")
    local pid = posix.fork()
    if pid == 0 then
      local ok = pcall(function()
        assert(c:get("parent") == nil, "the child sees the parent's data")
        assert(c:set("child", "c"))
        assert(c:get("child") == "c")
        local l = assert(c:lock("fl", { ttl = 5 }))
        assert(l:release())
        assert(c:get_or_set("g", function() return 1 end) == 1)
      end)
      posix._exit(ok and 0 or 1)
    end
    assert.equal(0, posix.waitpid(pid))
    assert.equal("p", c:get("parent"))
    assert.is_nil(c:get("child"))
    c:clear()
  end)

  it("scripts from threads of one process are atomic: no lost increments", function()
    local r = threads(4, [[
      local phase = ...
      local c = require("hicache").new{backend = "memory", name = "atomic", prefix = "a"}
      if phase == "before" then _G.keep = c; c:set("n", 0, 0); return end
      if phase == "after" then return tostring(c:get("n")) end
      for _ = 1, 500 do assert(c:incr("n")) end
    ]])
    assert.equal("2000", r.after)
  end)
end)

-- ---------------------------------------------------------------------------
-- The node's replies against the real server's: the same commands, the
-- same scripts (by SHA, their sources read from src/core/hc_scripts.c).

-- What a reply says, with what legitimately differs taken out: a TTL's
-- exact value, and the text of an error that ends a script (Redis adds
-- where in the script it happened).
local function norm(v, err, script)
  if v == nil then
    return { err = script and err:match("^(%S+)") or err }
  end
  if type(v) == "table" then
    local t = {}
    for i, x in ipairs(v) do t[i] = x == null and "<nil>" or x end
    return t
  end
  if v == null then return "<nil>" end
  return v
end

describe("memory backend: the same replies as Redis", function()
  local m, r, pre
  local src = script_sources()
  local sha = {}
  before_each(function()
    pre = unique("diff") .. ":"
    m = assert(hicache.new { backend = "memory", name = "diff" .. pre, prefix = "d" })
    r = H.cache { prefix = "d" }
  end)
  after_each(function()
    local keys = r:command("KEYS", pre .. "*")
    if #keys > 0 then r:command("DEL", H.unpack(keys)) end
  end)

  local function both(...)
    local a, ae = m:command(...)
    local b, be = r:command(...)
    return norm(a, ae), norm(b, be)
  end

  it("SCRIPT LOAD of hicache's sources gives their real SHA1s", function()
    local n = 0
    for name, s in pairs(src) do
      n = n + 1
      local a, b = both("SCRIPT", "LOAD", s)
      assert.equal(b, a, name)
      assert.equal(40, #a)
      sha[name] = a
      assert.same({ 1 }, m:command("SCRIPT", "EXISTS", a))
    end
    assert.equal(6, n)
  end)

  it("commands: values and error strings", function()
    local k = function(s) return pre .. s end
    local cmds = {
      { "GET", k "a" }, { "SET", k "a", "v" }, { "GET", k "a" }, { "SET", k "a", "w", "NX" },
      { "SET", k "a", "w", "XX", "GET" }, { "SET", k "b", "w", "XX" }, { "SET", k "a", "x", "EX", "0" },
      { "SET", k "a", "x", "EX", "y" }, { "SET", k "a", "x", "KEEPTTL", "PX", "5" }, { "SET", k "a", "x", "NX", "XX" },
      { "SET", k "a", "x", "PX" }, { "SET", k "a", "1", "PX", "100000" }, { "SET", k "a", "2", "KEEPTTL" },
      { "INCR", k "a" }, { "INCRBY", k "a", "-10" }, { "DECRBY", k "a", "x" }, { "DECR", k "a" },
      { "INCR", k "a", "1" },
      { "SET", k "i", "9223372036854775807" }, { "INCR", k "i" }, { "DECRBY", k "i", "-9223372036854775808" },
      { "SET", k "s", "01" }, { "INCR", k "s" }, { "SET", k "s", "hello world" }, { "INCR", k "s" },
      { "GETRANGE", k "s", "0", "3" }, { "GETRANGE", k "s", "-3", "-1" }, { "GETRANGE", k "s", "5", "2" },
      { "GETRANGE", k "s", "100", "200" }, { "GETRANGE", k "s", "-100", "2" }, { "GETRANGE", k "s", "-1", "-5" },
      { "GETRANGE", k "none", "0", "5" }, { "GETRANGE", k "s", "a", "1" }, { "STRLEN", k "s" }, { "STRLEN", k "none" },
      { "APPEND", k "s", "!" }, { "APPEND", k "new", "abc" }, { "GET", k "new" },
      { "RPUSH", k "l", "a", "b", "c" }, { "LPUSH", k "l", "z" }, { "LLEN", k "l" }, { "LRANGE", k "l", "0", "-1" },
      { "LRANGE", k "l", "-2", "100" }, { "LRANGE", k "l", "5", "1" }, { "GET", k "l" }, { "INCR", k "l" },
      { "APPEND", k "l", "x" }, { "RPUSH", k "s", "x" }, { "RPUSH", k "l2", "1" }, { "SET", k "l2", "x", "GET" },
      { "LPOP", k "l" }, { "RPOP", k "l" }, { "LPOP", k "l", "5" }, { "LPOP", k "l" },
      { "LPOP", k "l", "2" }, { "LPOP", k "l", "-1" }, { "LPOP", k "l", "x" }, { "LPOP", k "l2", "0" },
      { "EXISTS", k "l" }, { "TYPE", k "l" }, { "TYPE", k "s" },
      { "TYPE", k "l2" }, { "MGET", k "s", k "l2", k "none" }, { "MSET", k "m1", "1", k "m2" },
      { "MSET", k "m1", "1", k "m2", "2" }, { "MGET", k "m1", k "m2" }, { "EXISTS", k "m1", k "m2", k "m1", k "no" },
      { "DEL", k "m1", k "m2", k "no" }, { "UNLINK", k "m1" }, { "RENAME", k "no", k "x" }, { "RENAME", k "s", k "s2" },
      { "GET", k "s2" }, { "EXISTS", k "s" }, { "RENAME", k "s2", k "s2" }, { "SETNX", k "s2", "q" },
      { "SETNX", k "n1", "q" },
      { "GETSET", k "n1", "r" }, { "GETDEL", k "n1" }, { "GETDEL", k "n1" }, { "TTL", k "none" }, { "PTTL", k "s2" },
      { "PERSIST", k "s2" }, { "EXPIRE", k "s2", "100", "GT" }, { "EXPIRE", k "s2", "100", "XX" },
      { "EXPIRE", k "s2", "100", "NX" }, { "EXPIRE", k "s2", "100", "NX" }, { "EXPIRE", k "s2", "50", "GT" },
      { "EXPIRE", k "s2", "50", "LT" }, { "EXPIRE", k "s2", "1", "NX", "XX" }, { "EXPIRE", k "s2", "1", "GT", "LT" },
      { "EXPIRE", k "s2", "1", "FOO" }, { "EXPIRE", k "s2", "x" }, { "PERSIST", k "s2" }, { "PERSIST", k "s2" },
      { "PEXPIRE", k "s2", "-1" }, { "EXISTS", k "s2" }, { "PEXPIRE", k "none", "100" }, { "SETEX", k "e", "0", "v" },
      { "PSETEX", k "e", "100000", "v" }, { "GET", k "e" }, { "GET" }, { "GET", k "a", k "b" }, { "SET", k "a" },
      { "ECHO", "hi" }, { "PING" }, { "PING", "x" }, { "BLPOP", k "l", "x" }, { "BLPOP", k "l", "-1" },
      { "SCAN", "x" }, { "SCAN", "0", "COUNT", "0" }, { "SCAN", "0", "MATCH" }, { "FLUSHDB", "NOW" },
    }
    for i, cmd in ipairs(cmds) do
      local a, b = both(H.unpack(cmd))
      if type(b) == "number" and (cmd[1] == "PTTL" or cmd[1] == "TTL") and b > 0 then a, b = a > 0, true end
      assert.same(b, a, ("#%d %s"):format(i, table.concat(cmd, " ")))
    end
    -- KEYS and SCAN find the same keys
    local km, kr = sorted(m:command("KEYS", pre .. "*")), sorted(r:command("KEYS", pre .. "*"))
    assert.same(kr, km)
    assert.same(kr, sorted(m:command("SCAN", "0", "MATCH", pre .. "*", "COUNT", "1000")[2]))
    assert.same({ pre .. "l2" }, m:command("SCAN", "0", "MATCH", pre .. "*", "TYPE", "list")[2])
  end)

  it("2,000 random commands and script calls answer as on Redis", function()
    for name, s in pairs(src) do -- a node of its own: load them there
      sha[name] = m:command("SCRIPT", "LOAD", s)
      r:command("SCRIPT", "LOAD", s)
    end
    math.randomseed(12345)
    local K = { "a", "b", "c", "l", "t" }
    local function key() return pre .. K[math.random(#K)] end
    local tagged = "\201\0\0\0\0\72\2\2\0\0\0\5HEADRvalue" -- a tagged envelope's first bytes: header "HEADR"
    local V = { "1", "v", "-5", "9223372036854775807", "", tagged, "e1:tok", "e1", "e2:tok", "x y" }
    local function val() return V[math.random(#V)] end
    local PX = { "0", "100000", "-1", "x", "200000" }
    local function px() return PX[math.random(#PX)] end
    local function write_items()
      local keys, args = {}, { "100000" }
      for _ = 1, math.random(3) do
        local op = ({ "set", "nx", "xx", "del", "incr", "rename", "fill", "tag", "bogus" })[math.random(9)]
        if op == "set" then
          keys[#keys + 1], keys[#keys + 2], keys[#keys + 3] = key(), key(), key()
          args[#args + 1], args[#args + 2], args[#args + 3] = op, val(), px()
        elseif op == "nx" or op == "xx" then
          keys[#keys + 1], keys[#keys + 2], keys[#keys + 3] = key(), key(), key()
          local known = ({ "", tagged:sub(1, 17), "other" })[math.random(3)]
          args[#args + 1], args[#args + 2], args[#args + 3] = op, val(), px()
          args[#args + 1], args[#args + 2] = known, ({ "0", "1" })[math.random(2)]
        elseif op == "del" or op == "tag" then
          keys[#keys + 1] = key()
          if op == "del" then keys[#keys + 1], keys[#keys + 2] = key(), key() end
          args[#args + 1] = op
        elseif op == "incr" then
          keys[#keys + 1], keys[#keys + 2], keys[#keys + 3] = key(), key(), key()
          args[#args + 1], args[#args + 2] = op, ({ "1", "-3", "x", "9223372036854775807" })[math.random(4)]
        elseif op == "rename" then
          for _ = 1, 6 do keys[#keys + 1] = key() end
          args[#args + 1] = op
        elseif op == "fill" then
          for _ = 1, 4 do keys[#keys + 1] = key() end
          args[#args + 1], args[#args + 2], args[#args + 3] = op, val(), val()
          args[#args + 1], args[#args + 2] = val(), px()
        else
          args[#args + 1] = op
        end
      end
      local cmd = { "EVALSHA", sha.write, #keys }
      for _, x in ipairs(keys) do cmd[#cmd + 1] = x end
      for _, x in ipairs(args) do cmd[#cmd + 1] = x end
      return cmd
    end
    local function pick(t) return t[math.random(#t)] end
    local gens = {
      function() return { "SET", key(), val() } end,
      function() return { "SET", key(), val(), "PX", px() } end,
      function() return { "SET", key(), val(), ({ "NX", "XX", "GET", "KEEPTTL" })[math.random(4)] } end,
      function() return { "GET", key() } end,
      function() return { "INCRBY", key(), ({ "1", "-1", "x", "100" })[math.random(4)] } end,
      function() return { "DEL", key(), key() } end,
      function() return { "EXISTS", key(), key() } end,
      function() return { "RPUSH", key(), val(), val() } end,
      function() return { "LPUSH", key(), val() } end,
      function() return { "LPOP", key() } end,
      function() return { "RPOP", key() } end,
      function() return { "LLEN", key() } end,
      function() return { "LRANGE", key(), "0", "-1" } end,
      function() return { "GETRANGE", key(), tostring(math.random(-20, 20)), tostring(math.random(-20, 20)) } end,
      function() return { "STRLEN", key() } end,
      function() return { "APPEND", key(), val() } end,
      function() return { "TYPE", key() } end,
      function() return { "MGET", key(), key() } end,
      function() return { "RENAME", key(), key() } end,
      function() return { "PTTL", key() } end,
      function() return { "PERSIST", key() } end,
      function() return { "PEXPIRE", key(), ({ "100000", "-1", "x", "300000" })[math.random(4)] } end,
      function() return { "EXPIRE", key(), "500", ({ "NX", "XX", "GT", "LT" })[math.random(4)] } end,
      write_items, write_items, write_items,
      function() return { "EVALSHA", sha.lease, 3, key(), key(), key(), "tok", px(), pick { "0", "1" }, "e1", px() }
      end,
      function() return { "EVALSHA", sha.release, 2, key(), key(), val(), px() } end,
      function()
        local ms = pick { "0", "100000", "-5", "x" }
        return { "EVALSHA", sha.tags, 2, key(), key(), pick { "p", "x" }, ms, "tk1", "tk2" }
      end,
      function() return { "EVALSHA", sha.extend, 1, key(), val(), pick { "100000", "x", "-1" }, pick { "0", "1" } } end,
      function() return { "EVALSHA", sha.acquire, 2, pre .. "lock", pre .. "fence", val(), px(), "100000" } end,
    }
    -- what every key holds: type, whether it expires, value
    local function state(c)
      local q = {}
      for _, kk in ipairs(K) do
        q[#q + 1] = { "TYPE", pre .. kk }
        q[#q + 1] = { "PTTL", pre .. kk }
      end
      local t = assert(c:pipeline(q))
      local v = {}
      for j, kk in ipairs(K) do
        local ty, pttl = t[2 * j - 1], t[2 * j]
        local value = ty == "list" and c:command("LRANGE", pre .. kk, 0, -1)
          or ty == "string" and c:command("GET", pre .. kk) or ""
        v[#v + 1] = { ty, pttl >= 0 and "ttl" or pttl, value }
      end
      return v
    end
    local last
    for i = 1, 2000 do
      local cmd = gens[math.random(#gens)]()
      local script = cmd[1] == "EVALSHA"
      local a, ae = m:command(H.unpack(cmd))
      local b, be = r:command(H.unpack(cmd))
      a, b = norm(a, ae, script), norm(b, be, script)
      -- times: a TTL left, a fence (from the clock) are compared by sign
      if cmd[1] == "PTTL" and type(b) == "number" and b >= 0 and type(a) == "number" then a, b = a >= 0, true end
      if type(a) == "table" and type(b) == "table" and type(a[2]) == "number" and type(b[2]) == "number" and
         ((cmd[2] == sha.lease and b[1] == 3) or cmd[2] == sha.acquire) then
        a[2], b[2] = a[2] >= 0, b[2] >= 0
      end
      local sa, sb = state(m), state(r)
      local same = require("luassert.util").deepcompare
      if not same(a, b, true) or not same(sa, sb, true) then
        local shown = {}
        for j, x in ipairs(cmd) do shown[j] = ("%q"):format(tostring(x)) end
        assert.same(b, a, ("#%d %s (before: %s)"):format(i, table.concat(shown, " "), tostring(last)))
        assert.same(sb, sa, ("state after #%d %s (before: %s)"):format(i, table.concat(shown, " "), tostring(last)))
      end
      last = table.concat(cmd, " ", 1, math.min(#cmd, 12))
    end
    -- and the keys hold the same things
    for _, kk in ipairs(K) do
      local a, b = both("TYPE", pre .. kk)
      assert.same(b, a)
      if b == "list" then a, b = both("LRANGE", pre .. kk, 0, -1) else a, b = both("GET", pre .. kk) end
      assert.same(b, a)
    end
  end)
end)
