--- examples/openresty/app.lua: the dashboard example's service
-- (examples/dashboard/app.lua, users and roles in SQLite, cached with
-- hicache) served over HTTP by nginx with OpenResty's lua module. Loaded as
-- require "openresty.app" (lua_package_path has <repo>/examples/?.lua); the
-- dashboard's App is require "app" (<repo>/examples/dashboard/?.lua).
--
-- Phases (examples/openresty/nginx.conf):
--   init_by_lua         hicache.new (no I/O: allowed there), then M.init:
--                       creates the SQLite file before the workers fork
--   init_worker_by_lua  M.init_worker: one App per worker (its own SQLite
--                       connection); worker 0 seeds user 42 in a timer,
--                       because a worker's init phase has no cosockets
--   content_by_lua      the handlers below; every cache call runs on
--                       cosockets and never blocks the worker
--
-- Endpoints (JSON unless said otherwise):
--   GET  /dashboard/<id>                  app:dashboard(id), and the cache
--                                         events (get_or_set) of the request
--   POST /users/<id>/revoke?permission=P  app:revoke(id, P)
--   POST /users/<id>/rename?name=N        app:rename(id, N)
--   GET  /public_stats                    the memoized public stats
--   GET  /metrics                         this worker's cache:stats_text()
--   GET  /health                          200 once Redis answers and the seed
--                                         is done, else 503

local cjson = require "cjson"
local App = require "app"

local ngx = ngx -- luacheck: ignore 113

local M = {}

local SEED = { id = 42, name = "Ada", locale = "en", permissions = { "read", "admin" } }

-- Set in init (the master, inherited by the workers) and init_worker.
local cache, db_path, app

-- nginx.conf's lua_shared_dict: whether the seed is done, for every worker.
local function state() return ngx.shared.dashboard_state end

---------------------------------------------------------------------------
-- Cache events of the current request
---------------------------------------------------------------------------

local REQUEST_PHASES = { rewrite = true, access = true, content = true }

--- on_event of the cache (hicache.new in nginx.conf): the get_or_set
-- events of a request (a memoized call is one too) go to ngx.ctx, which is
-- per request. Called synchronously inside the cache call; keep it cheap.
function M.on_event(ev)
  if ev.op ~= "get_or_set" or not REQUEST_PHASES[ngx.get_phase()] then return end
  local list = ngx.ctx.cache_events
  if list then list[#list + 1] = { key = ev.key, status = ev.status, err = ev.err } end
end

---------------------------------------------------------------------------
-- Phases
---------------------------------------------------------------------------

--- init_by_lua: keeps the cache and creates the database file with its
-- tables (App.new creates them; no Redis I/O), so that the workers, which
-- open it at once, never race to create it. WAL lets a worker read while
-- another one writes. The connection is closed before nginx forks.
function M.init(c, path)
  cache, db_path = c, path
  local a = App.new(cache, db_path)
  a:rows("PRAGMA journal_mode = WAL")
  a:close()
end

-- Worker 0 adds the demo user unless the database has it (a reload keeps
-- the file). App:add_user grants through on_write writers, which
-- invalidate the user's tag in Redis: this needs cosockets, hence a timer.
-- Until Redis answers, it tries again every second (/health says 503).
local function seed(premature)
  if premature then return end
  local pong, err = cache:command("PING")
  if not pong then
    ngx.log(ngx.WARN, "dashboard: redis does not answer (", tostring(err), "); seeding again in 1 s")
    local ok, terr = ngx.timer.at(1, seed)
    if not ok then ngx.log(ngx.ERR, "dashboard: cannot start the seed timer: ", terr) end
    return
  end
  local ok, serr = pcall(function()
    if #app:rows(("SELECT id FROM users WHERE id = %d"):format(SEED.id)) == 0 then
      app:add_user(SEED.id, SEED.name, SEED.locale, SEED.permissions)
    end
  end)
  if not ok then
    ngx.log(ngx.ERR, "dashboard: seeding failed: ", serr)
    return
  end
  state():set("seeded", true)
end

--- init_worker_by_lua: this worker's App (its own SQLite connection on the
-- shared file; the cache was inherited from the master). luasql is a
-- blocking driver: fine for a local SQLite file, whose calls are short; a
-- database server would want a cosocket driver (pgmoon, lua-resty-mysql).
function M.init_worker()
  app = App.new(cache, db_path)
  -- wait up to 1 s for another worker's write instead of failing at once
  app:rows("PRAGMA busy_timeout = 1000")
  if ngx.worker.id() == 0 then
    local ok, err = ngx.timer.at(0, seed)
    if not ok then ngx.log(ngx.ERR, "dashboard: cannot start the seed timer: ", err) end
  end
end

---------------------------------------------------------------------------
-- Responses
---------------------------------------------------------------------------

local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  body.worker = ngx.worker.pid() -- the worker that answered
  ngx.say(cjson.encode(body))
end

local function fail(status, message) return reply(status, { error = message }) end

local function allow(method)
  if ngx.req.get_method() == method then return true end
  ngx.header["Allow"] = method
  fail(405, "use " .. method)
  return false
end

-- A user id from the URI (the location's regex lets digits through only).
local function user_id(s)
  local id = #s <= 9 and tonumber(s)
  if not id then fail(400, "bad user id") end
  return id
end

local function user_exists(id)
  return #app:rows(("SELECT id FROM users WHERE id = %d"):format(id)) > 0
end

-- Runs a handler with the request's cache event list; a Lua error is a
-- 500 (its traceback in the error log, not in the response).
local function serve(handler, ...)
  ngx.ctx.cache_events = {}
  local ok, err = xpcall(handler, debug.traceback, ...)
  if not ok then
    ngx.log(ngx.ERR, "dashboard: ", err)
    return fail(500, "internal error (see the error log)")
  end
end

local function statuses()
  local out = {}
  for i, ev in ipairs(ngx.ctx.cache_events) do out[i] = ev.status end
  return out
end

---------------------------------------------------------------------------
-- Handlers
---------------------------------------------------------------------------

--- GET /dashboard/<id>: the dashboard, the cache events of this request
-- (profile, then dashboard: "miss" when computed, "hit" when read from
-- Redis) and how many SQL queries this request ran.
function M.dashboard(id_text)
  serve(function()
    if not allow("GET") then return end
    local id = user_id(id_text)
    if not id then return end
    local q0 = app.queries
    local ok, d = xpcall(app.dashboard, debug.traceback, app, id)
    if not ok then
      -- App:dashboard indexes the profile: no profile, no such user
      if app:profile(id) == nil then return fail(404, "no user " .. id) end
      error(d, 0)
    end
    reply(200, { user = id, title = d.title, panels = d.panels, sql_queries = app.queries - q0,
                 cache = statuses(), events = ngx.ctx.cache_events })
  end)
end

local WRITES = {
  -- App:revoke and App:rename are on_write writers: the database write,
  -- then the invalidation of the user's tag (and the profile key). Their
  -- second result is the invalidation's error: the write is done, but
  -- cached entries may be stale until their TTL.
  revoke = function(id, args)
    local permission = args.permission
    if type(permission) ~= "string" or permission == "" or #permission > 64 then
      return fail(400, "revoke needs ?permission=<name>")
    end
    local _, err = app:revoke(id, permission)
    if err then return fail(503, "revoked, but the cache was not invalidated: " .. tostring(err)) end
    return reply(200, { ok = true, user = id, revoked = permission })
  end,
  rename = function(id, args)
    local name = args.name
    if type(name) ~= "string" or name == "" or #name > 100 then
      return fail(400, "rename needs ?name=<new name>")
    end
    local _, err = app:rename(id, name)
    if err then return fail(503, "renamed, but the cache was not invalidated: " .. tostring(err)) end
    return reply(200, { ok = true, user = id, name = name })
  end,
}

--- POST /users/<id>/revoke?permission=... and /users/<id>/rename?name=...
function M.write(id_text, action)
  serve(function()
    if not allow("POST") then return end
    local id = user_id(id_text)
    if not id then return end
    local w = WRITES[action]
    if not w then return fail(404, "no action " .. tostring(action)) end
    if not user_exists(id) then return fail(404, "no user " .. id) end
    return w(id, ngx.req.get_uri_args())
  end)
end

--- GET /public_stats: memoized (the same for every user), 60 s.
function M.public_stats()
  serve(function()
    if not allow("GET") then return end
    local st = app.public_stats()
    reply(200, { users = st.users, cache = statuses() })
  end)
end

--- GET /metrics: the cache's counters in the Prometheus text format. They
-- are per worker (each worker counts its own operations): a scrape
-- reaches one worker, whichever accepted the connection. Scrape each
-- worker (e.g. one listen port per worker) or sum them in a shared dict
-- for totals; the X-Worker header says which worker answered.
function M.metrics()
  serve(function()
    if not allow("GET") then return end
    local text, err = cache:stats_text()
    if not text then return fail(503, err) end
    ngx.header["Content-Type"] = "text/plain; version=0.0.4"
    ngx.header["X-Worker"] = ngx.worker.pid()
    ngx.print(text)
  end)
end

--- GET /health: Redis answers a PING from this worker and the demo user is
-- seeded (by worker 0). 503 otherwise, with the reason.
function M.health()
  serve(function()
    local pong, err = cache:command("PING")
    local seeded = state():get("seeded") == true
    local ok = pong ~= nil and seeded
    reply(ok and 200 or 503, { status = ok and "ok" or "unavailable", redis = pong and "ok" or tostring(err),
                               seeded = seeded })
  end)
end

function M.not_found()
  serve(function() fail(404, "not found: " .. ngx.var.uri) end)
end

return M
