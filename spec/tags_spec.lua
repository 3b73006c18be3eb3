local H = require "helper"
local keys = require "hicache.keys"

describe("tags, memoize and write-path invalidation", function()
  local c, admin
  before_each(function()
    c = H.cache { prefix = "tg" }
    admin = H.admin()
  end)
  after_each(function() c:clear() end)

  it("set / get with tags; invalidate_tag makes every tagged entry a miss", function()
    assert.is_true(c:set("a", 1, 60, { tags = { "user:42" } }))
    assert.is_true(c:set("b", 2, 60, { tags = { "user:42", "org:7" } }))
    assert.is_true(c:set("c", 3, 60, { tags = { "org:7" } }))
    assert.equal(1, c:get("a", nil, { tags = { "user:42" } }))
    assert.equal(2, c:get("b", nil, { tags = { "user:42", "org:7" } }))
    assert.is_true(c:invalidate_tag("user:42"))
    assert.is_nil(c:get("a", nil, { tags = { "user:42" } }))
    assert.equal("dflt", c:get("b", "dflt", { tags = { "user:42", "org:7" } }))
    assert.equal(3, c:get("c", nil, { tags = { "org:7" } }))   -- other tags untouched
    assert.is_true(c:invalidate_tag { "org:7" })
    assert.is_nil(c:get("c", nil, { tags = { "org:7" } }))
  end)

  it("invalidate_tag is O(1): one INCR, whatever the number of entries", function()
    local n = H.valgrind and 2000 or 100000
    local cmds = {}
    -- 100k tagged entries, written the way the tagged set script names them
    for i = 1, n do cmds[i] = { "SET", "{tg:1:e" .. i .. "}@0.0", "x" } end
    assert(admin:pipeline(cmds))
    local before = tonumber(admin:command("INFO", "stats"):match("total_commands_processed:(%d+)"))
    assert.is_true(c:invalidate_tag("bulk"))
    local after = tonumber(admin:command("INFO", "stats"):match("total_commands_processed:(%d+)"))
    -- INFO itself, EVALSHA (+ SCRIPT LOAD the first time), and one INCR inside
    assert.is_true(after - before <= 5, "commands: " .. (after - before))
    assert.equal("1", admin:command("GET", "tg:tag:{bulk}"))
    assert.is_nil(c:get("e1", nil, { tags = { "bulk" } }))      -- now a miss
    c:clear()
    assert.equal(0, admin:command("EXISTS", "{tg:1:e1}@0.0"))   -- clear() removes tagged entries
  end)

  it("get_or_set with tags, and the seeds' permission-downgrade scenario", function()
    -- a dashboard keyed by user id and permissions, tagged by user
    local perms = { [42] = { "read", "admin" } }
    local dashboard = keys.define("dashboard", { { "user_id", "integer" } })
    local function render(user_id)
      return c:get_or_set(dashboard { user_id = user_id }, function()
        return { user = user_id, can_admin = perms[user_id][2] == "admin" }
      end, { ttl = 300, tags = { "user:" .. user_id } })
    end
    local v, st = render(42)
    assert.is_true(v.can_admin)
    assert.equal("miss", st)
    v, st = render(42)
    assert.is_true(v.can_admin)
    assert.equal("hit", st)
    -- the permission change write path
    local revoke = c:on_write(function(user_id) perms[user_id] = { "read" } end, {
      tags = function(user_id) return { "user:" .. user_id } end,
    })
    revoke(42)
    v, st = render(42)                -- takes effect immediately, not after 300 s
    assert.is_false(v.can_admin)
    assert.equal("miss", st)
  end)

  it("a tagged fill that started before invalidate_tag is never served after it", function()
    local v = c:get_or_set("t", function()
      c:invalidate_tag("grp")          -- lands mid-computation
      return "old"
    end, { tags = { "grp" } })
    assert.equal("old", v)
    assert.is_nil(c:get("t", nil, { tags = { "grp" } }))
    assert.equal("new", (c:get_or_set("t", function() return "new" end, { tags = { "grp" } })))
  end)

  it("invalidate(key) also hides the key's tagged entries", function()
    c:get_or_set("k", function() return 1 end, { tags = { "x" } })
    assert.equal(1, c:get("k", nil, { tags = { "x" } }))
    c:invalidate("k")
    assert.is_nil(c:get("k", nil, { tags = { "x" } }))
  end)

  it("memoize keeps every result, caches nil only with neg_ttl, and re-raises errors", function()
    local calls = 0
    local f = c:memoize(function(a, b)
      calls = calls + 1
      return a + b, "sum", nil, a * b
    end, { name = "sum", ttl = 60 })
    assert.same({ 5, "sum", nil, 6, n = 4 }, table.pack(f(2, 3)))
    assert.same({ 5, "sum", nil, 6, n = 4 }, table.pack(f(2, 3)))
    assert.equal(1, calls)
    assert.same({ 9, "sum", nil, 20, n = 4 }, table.pack(f(4, 5)))
    assert.equal(2, calls)
    assert.equal("sum:i2:i3", f:key(2, 3))
    assert.same({ 5, "sum", nil, 6, n = 4 }, table.pack(f:peek(2, 3)))
    assert.is_true(f:invalidate(2, 3))
    assert.is_nil(f:peek(2, 3))
    f(2, 3)
    assert.equal(3, calls)

    local nils = 0
    local g = c:memoize(function() nils = nils + 1 end, { name = "nothing" })
    g(); g()
    assert.equal(2, nils)                          -- nil is not cached by default
    local h = c:memoize(function() nils = nils + 1 end, { name = "nothing2", neg_ttl = 30 })
    h(); h()
    assert.equal(3, nils)                          -- cached for neg_ttl

    local e = c:memoize(function(x) error("no " .. x) end, { name = "err" })
    local ok, err = pcall(e, "way")
    assert.is_false(ok)
    assert.matches("no way", err)
    assert.has_error(function() c:memoize(print, {}) end)                 -- name is required
    assert.has_error(function() f({}) end)                                 -- cannot key a table
  end)

  it("memoize with a key builder and tags from the arguments", function()
    local profile = keys.define("profile", { { "id", "integer" } })
    local loads = 0
    local get_profile = c:memoize(function(id) loads = loads + 1; return { id = id } end, {
      name = "profile", key = function(id) return profile { id = id } end,
      tags = function(id) return { "user:" .. id } end,
    })
    assert.same({ id = 7 }, get_profile(7))
    assert.same({ id = 7 }, get_profile(7))
    assert.equal(1, loads)
    c:invalidate_tag("user:7")
    get_profile(7)
    assert.equal(2, loads)
  end)

  it("on_write invalidates even when the writer raises", function()
    c:set("p:1", "cached")
    local write = c:on_write(function(id) error("db write failed after a partial write " .. id) end, {
      keys = function(id) return { "p:" .. id } end,
    })
    local ok, err = pcall(write, 1)
    assert.is_false(ok)
    assert.matches("partial write 1", err)
    assert.is_nil(c:get("p:1"))
    local w2 = c:on_write(function(a, b) return a .. b, "ok" end, { keys = function() return "x" end })
    assert.same({ "ab", "ok" }, { w2("a", "b") })
    assert.has_error(function() c:on_write(print, {}) end)
  end)

  it("a deferred batch is committed in one round trip, or rolled back", function()
    c:set_many({ a = 1, b = 2, c = 3 })
    c:set("t", 1, 60, { tags = { "tt" } })
    local batch = c:batch()
    batch:invalidate("a"):invalidate({ "b" }):invalidate_tag("tt")
    assert.equal(1, c:get("a"))                     -- nothing happens before commit
    local before = tonumber(admin:command("INFO", "commandstats"):match("cmdstat_evalsha:calls=(%d+)") or 0)
    assert.is_truthy(batch:commit())
    local after = tonumber(admin:command("INFO", "commandstats"):match("cmdstat_evalsha:calls=(%d+)"))
    assert.equal(before + 1, after)
    assert.is_nil(c:get("a"))
    assert.is_nil(c:get("b"))
    assert.equal(3, c:get("c"))
    assert.is_nil(c:get("t", nil, { tags = { "tt" } }))
    assert.has_error(function() batch:invalidate("c") end)
    local rb = c:batch()
    rb:invalidate("c")
    rb:rollback()
    assert.equal(3, c:get("c"))
  end)

  it("checks tags", function()
    assert.has_error(function() c:set("k", 1, 10, { tags = "x" }) end)
    assert.has_error(function() c:set("k", 1, 10, { tags = { "" } }) end)
    assert.has_error(function() c:set("k", 1, 10, { tags = { "a" }, nx = true }) end)
    assert.has_error(function() c:invalidate_tag(5) end)
    assert.has_error(function() c:get_or_set("k", print, { tags = { 1 } }) end)
  end)
end)
