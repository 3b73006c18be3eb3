-- examples/dashboard/main.lua: run the dashboard service against Redis
-- (make demo-dashboard, or REDIS_URL=redis://127.0.0.1:6379/0 lua5.4 examples/dashboard/main.lua)
package.path = "examples/dashboard/?.lua;" .. package.path
local hicache = require "hicache"
local App = require "app"

local url = os.getenv("REDIS_URL") or
  ("redis://%s:%s/0"):format(os.getenv("HICACHE_TEST_HOST") or "127.0.0.1", os.getenv("HICACHE_TEST_PORT") or "6379")
local events = {}
local cache = assert(hicache.new { url = url, prefix = "dashboard-demo",
  on_event = function(ev) if ev.op == "get_or_set" then events[#events + 1] = ev.status end end })
cache:clear()
local app = App.new(cache, ":memory:")
app:add_user(42, "Ada", "en", { "read", "admin" })

local function show(label)
  events = {}
  local d = app:dashboard(42)
  print(("%-34s %-22s panels=%-28s cache: %s"):format(label, d.title, table.concat(d.panels, ","),
    table.concat(events, ",")))
end
show("first view (cold)")
show("second view (warm)")
app:revoke(42, "admin")
show("after revoking admin")
app:rename(42, "Ada King")
show("after a rename")
print("public stats (memoized):", app.public_stats().users, "users")
local st = cache:stats()
print(("hits=%d misses=%d hit_rate=%.2f"):format(st.hits, st.misses, st.hit_rate))
cache:clear()
app:close()
