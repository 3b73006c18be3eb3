--- hicache.cosocket: the OpenResty transport. Moves the bytes of the
-- protocol core (hicache.core's xio) over ngx.socket.tcp, so a worker never
-- blocks: connect with the connect timeout, sslhandshake for TLS (verified
-- with nginx's lua_ssl_trusted_certificate unless tls.verify = false),
-- settimeouts, and setkeepalive as the connection pool, in a pool named by
-- every connection setting (as the C pool is keyed). AUTH and SELECT run
-- once per new connection (getreusedtimes() == 0). No RESP is written or
-- parsed here: requests come from the core, replies go back to it.
--
-- Used by hicache.openresty; see docs/DESIGN.md, "OpenResty".

local core = require "hicache.core"

local ngx = ngx -- luacheck: ignore 113
local tcp, get_phase, ngx_now, md5 = ngx.socket.tcp, ngx.get_phase, ngx.now, ngx.md5
local setmetatable, tostring, concat = setmetatable, tostring, table.concat
local math_min = math.min

local _M = {}

-- The phases whose handlers may use cosockets (ngx_lua's documentation).
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

local Pool = {}
Pool.__index = Pool

-- One pool name per distinct connection: endpoint, db, credentials (the
-- password as a digest), TLS and its checks, timeouts.
local function pool_name(s)
  return concat({
    "hicache", s.path and ("unix:" .. s.path) or (s.host .. ":" .. s.port), s.db,
    s.username or "", s.password and md5(s.password) or "",
    s.tls and "tls" or "tcp", s.tls_server_name or "", s.tls_verify and "verify" or "noverify",
    s.connect_timeout, s.timeout,
  }, "|")
end

--- cosocket.pool(settings) -> pool: connections for one cache's settings,
-- per worker (the keepalive pool itself is nginx's).
function _M.pool(s)
  local name = pool_name(s)
  return setmetatable({
    s = s,
    name = name,
    host = s.path and ("unix:" .. s.path) or s.host,
    port = s.port,
    connect_opts = { pool = name, pool_size = s.pool_size },
    connect_ms = math.ceil(s.connect_timeout * 1000),
    timeout_ms = math.ceil(s.timeout * 1000),
    idle_ms = math.ceil(s.idle_check * 1000),
    server_name = s.tls_server_name or (not s.path and s.host or nil),
    -- AUTH / SELECT of a new connection, formatted once by the core
    hello = nil,
    hello_n = 0,
    failures = 0, retry_at = 0, last_err = nil,
    connects = 0, reuses = 0, errors = 0, closed = false,
  }, Pool)
end

local function hello(p)
  if p.hello == nil then
    local cmds, what = {}, {}
    local s = p.s
    if s.password then
      cmds[#cmds + 1] = s.username and { "AUTH", s.username, s.password } or { "AUTH", s.password }
      what[#what + 1] = "auth"
    end
    if s.db ~= 0 then
      cmds[#cmds + 1] = { "SELECT", tostring(s.db) }
      what[#what + 1] = "select"
    end
    p.hello, p.hello_n, p.hello_what = core.format(cmds), #cmds, what
  end
  return p.hello, p.hello_n, p.hello_what
end

-- A Redis error of AUTH never shows the password.
local function scrub(msg, password)
  if password and password ~= "" then
    local i, j = msg:find(password, 1, true)
    while i do
      msg = msg:sub(1, i - 1) .. ("*"):rep(j - i + 1) .. msg:sub(j + 1)
      i, j = msg:find(password, 1, true)
    end
  end
  return msg
end

-- AUTH and SELECT on a new connection: true | nil, err.
local function setup(p, sock)
  local bytes, n, what = hello(p)
  if n == 0 then return true end
  local ok, err = sock:send(bytes)
  if not ok then return nil, err end
  local r = core.reader()
  for i = 1, n do
    while true do
      local done, v = r:next()
      if done == nil then return nil, what[i] .. " failed: " .. scrub(tostring(v), p.s.password) end
      if done then break end
      local data, rerr = sock:receiveany(4096)
      if not data then return nil, rerr end
      r:feed(data)
    end
  end
  return true
end

-- "closed", a reset or EPIPE (ngx) are "connection closed" (hicache's
-- blocking transport says so too).
local function norm(err)
  if err == "closed" or err == "connection reset by peer" or err == "broken pipe" then
    return "connection closed"
  end
  return err or "connection closed"
end

--- pool:acquire() -> sock, nil, reused | nil, err. A connected, set-up
-- cosocket with the command timeout, and how often nginx's pool reused it
-- (getreusedtimes(): 0 for a new connection). Fails at once (no I/O) in
-- a phase without cosockets, and while connects back off after failures.
function Pool:acquire()
  if self.closed then return nil, "closed" end
  local phase = get_phase()
  if not COSOCKET_PHASES[phase] then
    return nil, "cosockets are not available in the " .. phase .. " phase"
  end
  if self.failures > 0 and ngx_now() < self.retry_at then return nil, self.last_err end
  local sock, err = tcp()
  if not sock then return nil, err end
  sock:settimeouts(self.connect_ms, self.timeout_ms, self.timeout_ms)
  local ok
  if self.port then
    ok, err = sock:connect(self.host, self.port, self.connect_opts)
  else
    ok, err = sock:connect(self.host, self.connect_opts)
  end
  local reused = ok and sock:getreusedtimes()
  if ok and reused == 0 then
    local s = self.s
    if s.tls then
      -- reused_session = false: no session object (with nil, lua-resty-core
      -- 0.1.25 can trip an assertion: lua-resty-core#499)
      ok, err = sock:sslhandshake(false, self.server_name, s.tls_verify)
      -- ngx_lua 0.10.23 loses a verification error when the handshake
      -- completes at once (lua-nginx-module#2506): it answers true and has
      -- closed the socket. A closed socket after "success" is a failure.
      if ok and not sock:getreusedtimes() then
        ok, err = nil, "certificate verify failed (nginx gave no reason)"
      end
      if not ok then err = "tls: " .. tostring(err) end
    end
    if ok then ok, err = setup(self, sock) end
    if ok then self.connects = self.connects + 1 end
  elseif ok then
    self.reuses = self.reuses + 1
  end
  if not ok then
    sock:close()
    err = norm(err)
    -- back off like the C pool: base * 2^(n-1), at most backoff_max
    local s = self.s
    self.failures = self.failures + 1
    self.errors = self.errors + 1
    self.last_err = err
    self.retry_at = ngx_now() + math_min(s.backoff_base * 2 ^ (self.failures - 1), s.backoff_max)
    return nil, err
  end
  self.failures = 0
  return sock, nil, reused
end

--- pool:release(sock): back into nginx's keepalive pool (a connection that
-- failed is closed by its user instead, never kept).
function Pool:release(sock)
  local ok = sock:setkeepalive(self.idle_ms, self.s.pool_size)
  if not ok then sock:close() end
end

--- pool:close(): later acquires fail with "closed" (kept connections of
-- other caches with the same settings stay in nginx's pool).
function Pool:close()
  self.closed = true
end

local READ = 65536

--- cosocket.round(sock, x, pool) -> true | nil, err: sends the pending
-- round of xio x and feeds its replies back. A round that waits longer
-- than the command timeout (a BLPOP) gets its own read timeout, then the
-- pool's again.
function _M.round(sock, x, pool)
  local req, _, wait = x:request()
  local ok, err = sock:send(req)
  if not ok then return nil, norm(err) end
  if wait and wait > 0 then sock:settimeout(math.ceil(wait * 1000)) end
  repeat
    local data
    data, err = sock:receiveany(READ)
    if not data then return nil, norm(err) end
    ok, err = x:feed(data)
    if ok == nil then return nil, err end
  until ok
  if wait and wait > 0 then sock:settimeout(pool.timeout_ms) end
  return true
end

return _M
