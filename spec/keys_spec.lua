local H = require "helper"
local keys = require "hicache.keys"

describe("hicache.keys", function()
  local profile = keys.define("user_profile", { "user_id" })
  local dashboard = keys.define("dashboard", {
    { "user_id", "integer" }, { "locale", "string" }, keys.set("permissions"),
  })

  it("builds family:field=value keys in declared order", function()
    assert.equal("user_profile:user_id=42", profile { user_id = 42 })
    assert.equal("user_profile:user_id=abc", profile { user_id = "abc" })
    assert.equal("user_profile", profile.family)
    local k = dashboard { user_id = 42, locale = "en", permissions = { "read" } }
    assert.matches("^dashboard:user_id=42:locale=en:permissions=#%x+$", k)
    assert.equal(32, #k:match("#(%x+)$"))        -- BLAKE2b-128
  end)

  it("refuses a key that does not encode its declared context", function()
    local function err_of(b, t)
      local ok, err = pcall(function() local k = b(t); return k end)
      assert.is_false(ok)
      return err
    end
    assert.matches("keys_spec.lua:%d+: key 'dashboard': missing field 'permissions'",
      err_of(dashboard, { user_id = 1, locale = "en" }))
    assert.matches("unknown field 'role'", err_of(profile, { user_id = 1, role = "x" }))
    assert.matches("unknown field 'number'", err_of(profile, { user_id = 1, [1] = "x" }))
    assert.matches("missing field 'user_id'", err_of(profile, { user_id = nil }))
    assert.matches("NaN is not a key value", err_of(profile, { user_id = 0 / 0 }))
    assert.matches("number must be an integer", err_of(profile, { user_id = 1.5 }))
    assert.matches("integer expected, got string", err_of(dashboard, { user_id = "42", locale = "en", permissions = {} }))
    assert.matches("string expected, got number", err_of(dashboard, { user_id = 1, locale = 5, permissions = {} }))
    assert.matches("a set %(table%) expected", err_of(dashboard, { user_id = 1, locale = "en", permissions = "admin" }))
    assert.matches("must be a sequence", err_of(dashboard, { user_id = 1, locale = "en", permissions = { a = true } }))
    assert.matches("cannot use a table", err_of(profile, { user_id = {} }))
    assert.matches("a table of fields expected", err_of(profile, 42))
  end)

  it("checks the declaration", function()
    assert.has_error(function() keys.define("", { "a" }) end)
    assert.has_error(function() keys.define("a:b", { "a" }) end)
    assert.has_error(function() keys.define("f", {}) end)
    assert.has_error(function() keys.define("f", { "a", "a" }) end)
    assert.has_error(function() keys.define("f", { "1a" }) end)
    assert.has_error(function() keys.define("f", { { "a", "float" } }) end)
  end)

  it("is injective on adversarial values", function()
    local two = keys.define("t", { "a", "b" })
    local nasty = { "", ":", "=", "%", "%3A", ":b=", "x:b=y", "a=b:c=d", "{tag}", "#", ",", "\0", "\n", "é", "%25" }
    local seen = {}
    for _, a in ipairs(nasty) do
      for _, b in ipairs(nasty) do
        local k = two { a = a, b = b }
        assert.is_nil(seen[k], ("collision: %q %q vs %s"):format(a, b, tostring(seen[k])))
        seen[k] = a .. "|" .. b
        assert.is_nil(k:find("[{}]"), "a value forged a hash tag")
        local _, colons = k:gsub(":", "")
        assert.equal(2, colons)          -- values cannot add a field separator
      end
    end
    -- the classic collision: {a = "x:b=y"} vs {a = "x", b = "y"}-style
    local one = keys.define("t", { "a", { "b", "string" } })
    assert.are_not.equal(one { a = "x:b=y", b = "" }, one { a = "x", b = "y" })
  end)

  it("canonicalizes sets (order and duplicates do not matter), not lists", function()
    local s = keys.define("s", { keys.set("p") })
    local l = keys.define("l", { keys.list("p") })
    assert.equal(s { p = { "read", "write", "admin" } }, s { p = { "admin", "read", "write", "read" } })
    assert.are_not.equal(s { p = { "read" } }, s { p = { "read", "write" } })
    assert.are_not.equal(s { p = {} }, s { p = { "" } })
    assert.are_not.equal(l { p = { 1, 2 } }, l { p = { 2, 1 } })
    -- elements are escaped before joining: {"a,b"} is not {"a", "b"}
    assert.are_not.equal(s { p = { "a,b" } }, s { p = { "a", "b" } })
  end)

  it("hashes opaque values and the tail of long keys", function()
    local h = keys.define("q", { keys.hashed("query") })
    local k = h { query = string.rep("x", 10000) }
    assert.matches("^q:query=#%x+$", k)
    assert.are_not.equal(k, h { query = string.rep("x", 9999) })
    local long = keys.define("long", { "a" }, { max_length = 80 })
    local k1 = long { a = string.rep("v", 500) }
    local k2 = long { a = string.rep("v", 499) .. "w" }
    assert.equal(80, #k1)
    assert.are_not.equal(k1, k2)
    assert.matches("#%x+$", k1)
    assert.equal(keys.hash("abc"), keys.hash("abc"))
    assert.equal(32, #keys.hash(""))
  end)

  it("builds keys the cache accepts", function()
    local c = H.cache { prefix = "keys" }
    local k = dashboard { user_id = 7, locale = "fr", permissions = { "read" } }
    c:set(k, "v")
    assert.equal("v", c:get(k))
    c:clear()
  end)
end)
