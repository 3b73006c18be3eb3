-- Key names (src/core/hc_names.c): no internal name equals a value key of the
-- same cache or another internal name, whatever the prefix, the version
-- and the key; companions hash like their value key on Redis Cluster.
local H = require "helper"

local PREFIXES = { "", "app", "{app}", "{", "}", "{}", "a:1", "x{y}z", "{a:1:b}", "a}b{", ":", "1", "-1",
                   "{a", "lock", "tag", "h", "app:h", "{{", "a:tag" }
local KEYS = { "", "x", "a:lease", "rec:wake", "{k}", "}", "{", "u:{42}:p", "a}:lease", ":", "1:2", "lease",
               "wake", "epoch", "x:epoch:00ff", "h:x", "}:lease", "{x}:lease" }

local function lua_pattern(s) return (s:gsub("%p", "%%%0")) end

-- The hash tag Redis hashes for a key (cluster spec: first '{', first '}' after it).
local function hash_tag(s)
  local a = s:find("{", 1, true)
  if a then
    local b = s:find("}", a + 1, true)
    if b and b > a + 1 then return s:sub(a + 1, b - 1) end
  end
  return s
end

describe("key names", function()
  it("never equal a value key of the cache nor each other, whatever the prefix", function()
    for _, p in ipairs(PREFIXES) do
      for _, ver in ipairs { 1, -3, 12 } do
        local c = H.cache { prefix = p, version = ver }
        local value_key = "^" .. lua_pattern(p) .. ":%-?%d+:"
        local owner = {}      -- name -> what it names
        local function claim(name, what)
          assert.is_nil(name:find(value_key), ("prefix %q: %s is a value key: %q"):format(p, what, name))
          assert.is_true(owner[name] == nil or owner[name] == what,
            ("prefix %q: %q names both %s and %s"):format(p, name, tostring(owner[name]), what))
          owner[name] = what
        end
        for _, k in ipairs(KEYS) do
          local n = c:_names(k)
          assert.matches(value_key, n.value)
          claim(n.lease, "the lease of " .. k)
          claim(n.wake, "the wake-up list of " .. k)
          claim(n.epoch, "the epoch")
          claim(n.epoch_wake("00ff"), "the epoch wake-up list")
          claim(c:_tag_name(k ~= "" and k or "t"), "tag " .. k)
          local lock, fence, wake = c:_lock_names(k ~= "" and k or "l")
          claim(lock, "lock " .. k)
          claim(fence, "fence " .. k)
          claim(wake, "lock wake-up list " .. k)
        end
      end
    end
  end)

  it("companions land in their value key's Cluster slot (plain keys, {tag} prefixes and keys)", function()
    for _, case in ipairs {
      { "app", "user:42" }, { "", "user:42" }, { "{app}", "user:42" }, { "{app}", "x}y" },
      { "app", "user:{42}:profile" }, { "a:b", "{t}" },
    } do
      local n = H.cache { prefix = case[1] }:_names(case[2])
      assert.equal(hash_tag(n.value), hash_tag(n.lease), n.lease)
      assert.equal(hash_tag(n.value), hash_tag(n.wake), n.wake)
    end
    -- the documented form for a plain key
    assert.equal("{app:1:user:42}:lease", H.cache { prefix = "app" }:_names("user:42").lease)
    local l, f, w = H.cache { prefix = "app" }:_lock_names("orders")
    assert.same({ "app:lock:{orders}", "app:lock:{orders}:fence", "app:lock:{orders}:wake" }, { l, f, w })
  end)

  describe("a {tag} prefix (the usual Cluster prefix)", function()
    local c, admin
    before_each(function()
      c = H.cache { prefix = "{app}" }
      admin = H.admin()
    end)
    after_each(function() c:clear() end)

    it("a user value at a:lease does not look like the lease of a", function()
      assert.is_true(c:set("a:lease", "user data"))
      assert.same({ "v", nil, "miss" }, { c:get_or_set("a", function() return "v" end, { wait = 1, on_wait_timeout = "error" }) })
      assert.same({ "v", nil, "hit" }, { c:get_or_set("a", error) })
      assert.equal("user data", c:get("a:lease"))
    end)

    it("a user value at rec:wake does not break delete of rec", function()
      assert.is_true(c:set("rec:wake", "user data"))
      assert.is_true(c:set("rec", 1))
      assert.is_true(c:delete("rec"))
      assert.equal("user data", c:get("rec:wake"))
      assert.equal(1, admin:command("EXISTS", "{app}:1:rec:wake"))
    end)
  end)
end)
