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

  it("invalidate_tag is O(1): one command, whatever the number of entries", function()
    local n = H.valgrind and 2000 or 100000
    -- 100k entries carrying the tag: one real tagged entry, copied
    assert.is_true(c:set("e1", "x", 600, { tags = { "bulk" } }))
    local dump = admin:command("DUMP", "tg:1:e1")
    for from = 2, n, 5000 do
      local cmds = {}
      for i = from, math.min(from + 4999, n) do cmds[#cmds + 1] = { "RESTORE", "tg:1:e" .. i, 600000, dump } end
      assert(admin:pipeline(cmds))
    end
    assert.equal("x", c:get("e" .. n, nil, { tags = { "bulk" } }))
    c:invalidate_tag("warm-up")                                 -- loads the script
    local before = tonumber(admin:command("INFO", "stats"):match("total_commands_processed:(%d+)"))
    assert.is_true(c:invalidate_tag("bulk"))
    local after = tonumber(admin:command("INFO", "stats"):match("total_commands_processed:(%d+)"))
    -- INFO itself, EVALSHA and one UNLINK inside
    assert.is_true(after - before <= 4, "commands: " .. (after - before))
    assert.equal(0, admin:command("EXISTS", "tg:tag:{bulk}"))
    for _, i in ipairs { 1, 2, math.floor(n / 2), n } do
      assert.is_nil(c:get("e" .. i, nil, { tags = { "bulk" } }))   -- now misses
      assert.is_nil(c:get("e" .. i))
    end
    assert.equal(0, c:clear())                                  -- none of them counts as an entry
    assert.equal(0, admin:command("EXISTS", "tg:1:e1"))         -- but clear() removes them
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
    local v, _, st = render(42)
    assert.is_true(v.can_admin)
    assert.equal("miss", st)
    v, _, st = render(42)
    assert.is_true(v.can_admin)
    assert.equal("hit", st)
    -- the permission change write path
    local revoke = c:on_write(function(user_id) perms[user_id] = { "read" } end, {
      tags = function(user_id) return { "user:" .. user_id } end,
    })
    revoke(42)
    v, _, st = render(42)                -- takes effect immediately, not after 300 s
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
    assert.same({ 5, "sum", nil, 6, n = 4 }, H.pack(f(2, 3)))
    assert.same({ 5, "sum", nil, 6, n = 4 }, H.pack(f(2, 3)))
    assert.equal(1, calls)
    assert.same({ 9, "sum", nil, 20, n = 4 }, H.pack(f(4, 5)))
    assert.equal(2, calls)
    assert.equal("sum:i2:i3", f:key(2, 3))
    assert.same({ 5, "sum", nil, 6, n = 4 }, H.pack(f:peek(2, 3)))
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

  it("a read with another tag list is a miss, also after the real tag is invalidated", function()
    assert.is_true(c:set("post", "body", 60, { tags = { "post:1", "user:7" } }))
    assert.equal("body", c:get("post", nil, { tags = { "user:7", "post:1", "post:1" } }))  -- a set: order, duplicates
    assert.equal("body", c:get("post"))                               -- no tags named: its own are checked
    assert.is_nil(c:get("post", nil, { tags = { "post-1", "user:7" } }))  -- a typo
    assert.is_nil(c:get("post", nil, { tags = { "post:1" } }))        -- a subset
    assert.same({ "body", nil, "hit" }, { c:get_or_set("post", error, { tags = { "user:7", "post:1" } }) })
    assert.is_true(c:invalidate_tag("post:1"))
    for _, tags in ipairs { { "post-1", "user:7" }, { "post:1", "user:7" } } do
      assert.is_nil(c:get("post", nil, { tags = tags }))
    end
    assert.is_nil(c:get("post"))
    c:set("plain", 1)
    assert.is_nil(c:get("plain", nil, { tags = { "x" } }))            -- untagged: no tags to match
    assert.same({ 2, nil, "miss" }, { c:get_or_set("plain", function() return 2 end, { tags = { "x" } }) })
    assert.equal(2, c:get("plain", nil, { tags = { "x" } }))
  end)

  it("delete, has_key, ttl, keys, expire, add and clear's count agree with reads", function()
    assert.is_true(c:set("a", 1, 60, { tags = { "g" } }))
    assert.is_true(c:set("b", 2, 60, { tags = { "g" } }))
    assert.is_true(c:set("c", 3, 60))
    assert.is_true(c:has_key("a"))
    assert.is_true(c:ttl("a") > 59)
    local function keys()
      local out = {}
      for k in c:keys() do out[#out + 1] = k end
      table.sort(out)
      return out
    end
    assert.same({ "a", "b", "c" }, keys())
    assert.is_true(c:delete("a"))                    -- visible: true
    assert.is_true(c:invalidate_tag("g"))
    -- b is still stored, but no read can see it
    assert.equal(1, admin:command("EXISTS", "tg:1:b"))
    assert.is_nil(c:get("b"))
    assert.is_false(c:has_key("b"))
    assert.is_nil(c:ttl("b"))
    assert.is_false(c:expire("b", 100))
    assert.is_false(c:touch("b"))
    assert.is_false(c:persist("b"))
    assert.same({ nil, "not found" }, { c:incr_version("b") })
    assert.same({ "c" }, keys())
    assert.same({ c = 3 }, c:get_many({ "a", "b", "c" }))
    assert.is_false(c:set("b", 9, 60, { xx = true }))  -- nothing a read sees: xx does not store
    assert.is_true(c:add("b", 4, 60, { tags = { "g" } })) -- and add does
    assert.equal(4, c:get("b"))
    assert.is_false(c:add("b", 5))
    assert.is_true(c:invalidate_tag("g"))
    assert.is_false(c:delete("b"))                   -- it was invisible
    assert.is_true(c:set("d", 1, 60, { tags = { "g" } }))
    assert.is_true(c:invalidate_tag("g"))
    assert.equal(1, c:clear())                       -- c only; d was invisible
    assert.equal(0, admin:command("EXISTS", "tg:1:d"))
  end)

  it("get_many with tags returns the entries that carry exactly those tags", function()
    c:set("x", 1, 60, { tags = { "u:1" } })
    c:set("y", 2, 60, { tags = { "u:1" } })
    c:set("z", 3, 60, { tags = { "u:2" } })
    c:set("w", 4, 60)
    assert.same({ x = 1, y = 2 }, c:get_many({ "x", "y", "z", "w", "none" }, { tags = { "u:1" } }))
    assert.same({ x = 1, y = 2, z = 3, w = 4 }, c:get_many({ "x", "y", "z", "w", "none" }))
    c:invalidate_tag("u:1")
    assert.same({}, c:get_many({ "x", "y" }, { tags = { "u:1" } }))
    assert.same({ z = 3, w = 4 }, c:get_many({ "x", "y", "z", "w" }))
    assert.has_error(function() c:get_many({ "x" }, { tags = "u:1" }) end)
  end)

  it("expire, touch and persist of a tagged entry keep its tag keys alive as long", function()
    c:set("e", 1, 1, { tags = { "short" } })
    local tag = c:_tag_name("short")
    assert.is_true(admin:command("PTTL", tag) <= 1000)
    assert.is_true(c:expire("e", 100))
    assert.is_true(admin:command("PTTL", tag) > 99000)
    assert.is_true(c:persist("e"))
    assert.equal(-1, admin:command("PTTL", tag))
  end)

  it("a lost tag key (eviction, restart) hides its entries and never brings them back", function()
    c:set("k", 1, 60, { tags = { "lost" } })
    admin:command("DEL", c:_tag_name("lost"))                  -- evicted
    assert.is_nil(c:get("k"))
    c:set("other", 2, 60, { tags = { "lost" } })               -- the tag comes back, with a new token
    assert.equal(2, c:get("other"))
    assert.is_nil(c:get("k"))                                  -- k stays hidden
    assert.is_nil(c:get("k", nil, { tags = { "lost" } }))
  end)

  it("checks tags", function()
    assert.has_error(function() c:set("k", 1, 10, { tags = "x" }) end)
    assert.has_error(function() c:set("k", 1, 10, { tags = { "" } }) end)
    assert.has_error(function() c:invalidate_tag(5) end)
    assert.has_error(function() c:get_or_set("k", print, { tags = { 1 } }) end)
    local many = {}
    for i = 1, 65 do many[i] = "t" .. i end
    assert.has_error(function() c:set("k", 1, 10, { tags = many }) end, "bad argument #4 to 'set' (opts.tags must hold 1 to 64 tags)")
    assert.has_error(function() c:get("k", nil, { tags = { ("x"):rep(1025) } }) end)
    assert.has_error(function() c:get("k", nil, { tags = {} }) end)
    local raw = H.cache { prefix = "tg", serializer = "raw" }
    assert.has_error(function() raw:set("k", "v", 10, { tags = { "a" } }) end)
    assert.is_nil(c:get("k"))
  end)
end)
