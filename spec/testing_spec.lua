-- hicache.testing, used the way an application's specs would use it.
require "helper"
local testing = require "hicache.testing"
local keys = require "hicache.keys"

-- The application code under test: a service-layer function and its write path.
local function make_service(cache)
  local db = { [42] = { name = "Ada", roles = { "admin" } } }
  local profile_key = keys.define("user_profile", { { "user_id", "integer" } })
  local svc = {}
  function svc.get_user_profile(user_id)
    return (cache:get_or_set(profile_key { user_id = user_id }, function()
      return { name = db[user_id].name }
    end, { ttl = 300 }))
  end
  svc.rename = cache:on_write(function(user_id, name) db[user_id].name = name end, {
    keys = function(user_id) return profile_key { user_id = user_id } end,
  })
  return svc
end

describe("hicache.testing", function()
  it("first call misses, second hits, the write invalidates", function()
    local cache = testing.cache()
    local svc = make_service(cache)
    local rec = testing.record(cache)
    assert.equal("Ada", svc.get_user_profile(42).name)
    assert.equal("Ada", svc.get_user_profile(42).name)
    assert.same({ "miss", "hit" }, rec:statuses("user_profile:user_id=42"))
    assert.is_cached(cache, "user_profile:user_id=42")
    svc.rename(42, "Ada King")
    assert.is_not_cached(cache, "user_profile:user_id=42")
    assert.equal("Ada King", svc.get_user_profile(42).name)
    assert.same({ "miss", "hit", "invalidate", "miss" }, rec:statuses("user_profile:user_id=42"))
  end)

  it("isolates caches by a random prefix and clears them", function()
    local a, b = testing.cache(), testing.cache()
    a:set("k", 1)
    assert.is_nil(b:get("k"))
    assert.are_not.equal(a:_namespace(), b:_namespace())
    testing.cleanup()
    assert.is_nil(a:get("k"))
    assert.has_error(function() testing.cache { prefix = "mine" } end)
  end)

  it("the assertions fail when they should", function()
    local cache = testing.cache()
    assert.has_error(function() assert.is_cached(cache, "nope") end)
    cache:set("yes", 1)
    assert.has_error(function() assert.is_not_cached(cache, "yes") end)
    cache:set("tagged", 1, 60, { tags = { "t" } })
    assert.is_cached(cache, "tagged", { "t" })
    cache:invalidate_tag("t")
    assert.is_not_cached(cache, "tagged", { "t" })
  end)

  it("the key context is part of the key", function()
    local cache = testing.cache()
    local dash = keys.define("dashboard", { { "user_id", "integer" }, keys.set("permissions") })
    cache:set(dash { user_id = 1, permissions = { "read" } }, "reader view")
    assert.is_not_cached(cache, dash { user_id = 1, permissions = { "read", "admin" } })
    assert.is_cached(cache, dash { user_id = 1, permissions = { "read" } })
  end)

  it("a failed assertion names the key, not the cache", function()
    local cache = testing.cache()
    local ok, err = pcall(function() assert.is_cached(cache, "user:7") end)
    assert.is_false(ok)
    assert.matches("Expected key 'user:7' to be cached", tostring(err), 1, true)
    assert.is_nil(tostring(err):find("userdata", 1, true))
    cache:set("user:8", 1)
    ok, err = pcall(function() assert.is_not_cached(cache, "user:8") end)
    assert.is_false(ok)
    assert.matches("Expected key 'user:8' not to be cached", tostring(err), 1, true)
  end)

  it("fails fast, at the caller's line, when Redis is unreachable", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, err = pcall(function() return testing.cache { host = "127.0.0.1", port = 1 } end)
    assert.is_false(ok)
    assert.matches("^spec/testing_spec.lua:" .. line .. ": testing.cache: redis at 127.0.0.1:1 is unreachable: ", err)
    -- a URL: its address in the message, never its password
    ok, err = pcall(testing.cache, { url = "redis://:s3cret@127.0.0.1:1/0" })
    assert.is_false(ok)
    assert.matches("redis at 127.0.0.1:1 is unreachable: connection refused", err, 1, true)
    assert.is_nil(err:find("s3cret", 1, true))
  end)

  it("an explicit port wins over HICACHE_TEST_PORT", function()
    assert.is_truthy(os.getenv("HICACHE_TEST_PORT"))
    local ok, err = pcall(testing.cache, { port = 1 })
    assert.is_false(ok)
    assert.matches(":1 is unreachable", err, 1, true)
  end)
end)
