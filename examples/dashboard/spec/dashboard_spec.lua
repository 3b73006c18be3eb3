-- The example application's own specs, written with hicache.testing
-- against a real Redis and a real SQLite database.
package.path = "examples/dashboard/?.lua;" .. package.path
local testing = require "hicache.testing"
local keys = require "hicache.keys"
local App = require "app"

describe("dashboard example", function()
  local cache, app, rec
  before_each(function()
    cache = testing.cache()
    app = App.new(cache, ":memory:")
    app:add_user(42, "Ada", "en", { "read", "admin" })
    app:add_user(7, "Blaise", "fr", { "read" })
    rec = testing.record(cache)
  end)
  after_each(function() app:close() end)

  it("caches the profile by user id", function()
    local q0 = app.queries
    assert.equal("Ada", app:profile(42).name)
    local q1 = app.queries
    assert.equal("Ada", app:profile(42).name)
    assert.equal(q1, app.queries)                 -- the second read did not query SQLite
    assert.is_true(q1 > q0)
    assert.same({ "miss", "hit" }, rec:statuses("profile:user_id=42"))
  end)

  it("keys the dashboard by locale and permission set", function()
    local ada, blaise = app:dashboard(42), app:dashboard(7)
    assert.same({ "inbox", "admin console" }, ada.panels)
    assert.same({ "inbox" }, blaise.panels)
    assert.equal("Bonjour Blaise", blaise.title)
    -- the same family, declared as the app does: the key of Ada's context is cached,
    -- the key of the same user with another permission set is not
    local dashboard_key = keys.define("dashboard", {
      { "user_id", "integer" }, { "locale", "string" }, keys.set("permissions") })
    assert.is_cached(cache, dashboard_key { user_id = 42, locale = "en", permissions = { "read", "admin" } },
      { "user:42" })
    assert.is_not_cached(cache, dashboard_key { user_id = 42, locale = "en", permissions = { "read" } },
      { "user:42" })
  end)

  it("a permission downgrade takes effect immediately (the seeds' incident)", function()
    assert.same({ "inbox", "admin console" }, app:dashboard(42).panels)
    assert.same({ "inbox", "admin console" }, app:dashboard(42).panels)   -- cached
    app:revoke(42, "admin")                                              -- the write path
    assert.same({ "inbox" }, app:dashboard(42).panels)                   -- not after 300 s
    assert.same({ "inbox", "admin console" }, (function()
      app:grant(42, "admin")
      return app:dashboard(42).panels
    end)())
  end)

  it("a rename invalidates the profile and the dashboard title", function()
    assert.equal("Hello Ada", app:dashboard(42).title)
    app:rename(42, "Ada King")
    assert.equal("Ada King", app:profile(42).name)
    assert.equal("Hello Ada King", app:dashboard(42).title)
  end)

  it("memoizes public data", function()
    assert.equal(2, app.public_stats().users)
    local q = app.queries
    assert.equal(2, app.public_stats().users)
    assert.equal(q, app.queries)
    app:add_user(9, "Grace", "en", {})
    assert.equal(3, app.public_stats().users)
  end)
end)
