-- examples/profile_service.lua: the service-layer caching pattern of the
-- Django articles, in Lua with hicache. A slow "database" (250 ms per
-- lookup) sits behind get_user_profile; we call it cold, then warm, then
-- update the profile on the write path (which deletes the key) and show
-- that the next read is fresh.
--
-- Run with `make demo` (it starts a throwaway redis-server), or against
-- your own server: REDIS_URL=redis://127.0.0.1:6379/0 lua5.4 examples/profile_service.lua
local hicache = require "hicache"

local url = os.getenv("REDIS_URL") or
  ("redis://%s:%s/0"):format(os.getenv("HICACHE_TEST_HOST") or "127.0.0.1",
                             os.getenv("HICACHE_TEST_PORT") or "6379")
local cache = assert(hicache.new { url = url, prefix = "demo", timeout = 0.5 })

local clock = hicache.now             -- monotonic seconds
local function sleep(s) os.execute(("sleep %.3f"):format(s)) end

-- the "database"
local db = {
  [42] = { id = 42, name = "Ada Lovelace", email = "ada@example.com", roles = { "admin" } },
}
local function load_profile_from_db(user_id)
  sleep(0.25)                          -- a slow query
  local row = db[user_id]
  return { id = row.id, name = row.name, email = row.email, roles = row.roles }
end

local status
local function get_user_profile(user_id)
  local key = "user_profile:" .. user_id
  local data, err = cache:get(key)
  if err then print("  cache error (serving from the database): " .. err) end
  if data then status = "hit"; return data end
  status = "miss"
  data = load_profile_from_db(user_id)
  cache:set(key, data, 300)
  return data
end

-- the write path: update the database, then invalidate the cached entry
local function rename_user(user_id, name)
  db[user_id].name = name
  cache:delete("user_profile:" .. user_id)
end

local function timed_call(label)
  local t0 = clock()
  local p = get_user_profile(42)
  local ms = (clock() - t0) * 1000
  print(("%-28s %-4s %7.1f ms   name=%s"):format(label, status, ms, p.name))
end

cache:delete("user_profile:42")        -- start cold
print("get_user_profile(42), cache in front of a 250 ms lookup:")
timed_call("1st call (cold cache)")
timed_call("2nd call (warm cache)")
timed_call("3rd call (warm cache)")
rename_user(42, "Ada King")
print("write path: renamed user 42 and deleted user_profile:42")
timed_call("after the write")
timed_call("and again")
local t = cache:ttl("user_profile:42")
print(("user_profile:42 expires in %.0f s; pool: %s"):format(t, (function()
  local st = cache:pool_stats()
  return ("created=%d idle=%d errors=%d"):format(st.created, st.idle, st.errors)
end)()))
cache:delete("user_profile:42")
cache:close()
