--- examples/dashboard/app.lua: a small service on a real SQLite database
-- (Debian lua-sql-sqlite3) with users, roles and a per-user dashboard whose
-- content depends on the user's permissions — cached with hicache:
--   * a profile cached by user id;
--   * a dashboard whose key encodes the locale and the permission set;
--   * a permission downgrade that takes effect at once through a tag;
--   * memoized public data.
local keys = require "hicache.keys"
local driver = require "luasql.sqlite3"

local App = {}
App.__index = App

local profile_key = keys.define("profile", { { "user_id", "integer" } })
local dashboard_key = keys.define("dashboard", {
  { "user_id", "integer" }, { "locale", "string" }, keys.set("permissions"),
})

local function user_tag(id) return "user:" .. id end

--- App.new(cache, path) -> app, on the SQLite database at path (":memory:" ok)
function App.new(cache, path)
  local env = assert(driver.sqlite3())
  local db = assert(env:connect(path or ":memory:"))
  local self = setmetatable({ cache = cache, env = env, db = db, queries = 0 }, App)
  self:exec("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT, locale TEXT)")
  self:exec("CREATE TABLE IF NOT EXISTS roles (user_id INTEGER, permission TEXT, PRIMARY KEY (user_id, permission))")

  -- public data, the same for everyone: memoized
  self.public_stats = cache:memoize(function()
    local n = self:rows("SELECT COUNT(*) AS n FROM users")[1].n
    return { users = tonumber(n) }
  end, { name = "public_stats", ttl = 60 })

  -- write paths: they invalidate what they change, also if they fail midway
  self.rename = cache:on_write(function(_, user_id, name)
    self:exec(("UPDATE users SET name = %s WHERE id = %d"):format(self:quote(name), user_id))
  end, { keys = function(_, user_id) return profile_key { user_id = user_id } end,
         tags = function(_, user_id) return user_tag(user_id) end })
  self.revoke = cache:on_write(function(_, user_id, permission)
    self:exec(("DELETE FROM roles WHERE user_id = %d AND permission = %s"):format(user_id, self:quote(permission)))
  end, { tags = function(_, user_id) return user_tag(user_id) end })
  self.grant = cache:on_write(function(_, user_id, permission)
    self:exec(("INSERT OR IGNORE INTO roles VALUES (%d, %s)"):format(user_id, self:quote(permission)))
  end, { tags = function(_, user_id) return user_tag(user_id) end })
  return self
end

function App.quote(_, s) return "'" .. tostring(s):gsub("'", "''") .. "'" end

function App:exec(sql)
  self.queries = self.queries + 1
  return assert(self.db:execute(sql))
end

function App:rows(sql)
  local cur = self:exec(sql)
  local out = {}
  local row = cur:fetch({}, "a")
  while row do
    out[#out + 1] = row
    row = cur:fetch({}, "a")
  end
  cur:close()
  return out
end

function App:add_user(id, name, locale, permissions)
  self:exec(("INSERT INTO users VALUES (%d, %s, %s)"):format(id, self:quote(name), self:quote(locale)))
  for _, p in ipairs(permissions) do self:grant(id, p) end
  self.public_stats:invalidate()
end

function App:permissions(user_id)
  local out = {}
  local sql = ("SELECT permission FROM roles WHERE user_id = %d ORDER BY permission"):format(user_id)
  for _, r in ipairs(self:rows(sql)) do
    out[#out + 1] = r.permission
  end
  return out
end

--- the profile, cached by user id (tagged by user, so a rename or a
-- permission change invalidates it with the rest of the user's entries)
function App:profile(user_id)
  return (self.cache:get_or_set(profile_key { user_id = user_id }, function()
    local u = self:rows(("SELECT id, name, locale FROM users WHERE id = %d"):format(user_id))[1]
    return u and { id = tonumber(u.id), name = u.name, locale = u.locale } or nil
  end, { ttl = 300, tags = { user_tag(user_id) } }))
end

--- the dashboard: its content depends on the permissions, so its key
-- encodes them (and the locale); tagged by user for instant downgrades
function App:dashboard(user_id)
  local profile = self:profile(user_id)
  local perms = self:permissions(user_id)
  local key = dashboard_key { user_id = user_id, locale = profile.locale, permissions = perms }
  return (self.cache:get_or_set(key, function()
    local panels = { "inbox" }
    for _, p in ipairs(perms) do
      if p == "admin" then panels[#panels + 1] = "admin console" end
      if p == "billing" then panels[#panels + 1] = "invoices" end
    end
    local hello = profile.locale == "fr" and "Bonjour " or "Hello "
    return { title = hello .. profile.name, panels = panels }
  end, { ttl = 300, tags = { user_tag(user_id) } }))
end

function App:close()
  self.db:close()
  self.env:close()
end

return App
