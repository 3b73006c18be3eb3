--- hicache.cosocket: the OpenResty transport. Moves the bytes of the
-- protocol core (hicache.core's xio) over ngx.socket.tcp, so a worker never
-- blocks: connect with the connect timeout, sslhandshake for TLS (verified
-- with nginx's lua_ssl_trusted_certificate unless tls.verify = false),
-- settimeouts, and setkeepalive as the connection pool, in a pool named by
-- every connection setting (as the C pool is keyed). AUTH and SELECT run
-- once per new connection (getreusedtimes() == 0). No RESP is written or
-- parsed here: requests come from the core, replies go back to it.
--
-- The circuit breaker (breaker_failures > 0) is the C pool's, per worker:
-- one per pool name and breaker settings, shared by this worker's caches
-- (a weak registry). `failures` consecutive failed connects or rounds lost
-- to an I/O error or a timeout open it; while open, acquire() fails at
-- once with "circuit open: <last error>"; one ngx.timer per breaker and
-- worker probes (connect + PING) every `probe` seconds +-20 %, and the
-- first answer closes it (that connection goes back with setkeepalive).
--
-- Used by hicache.openresty; see docs/DESIGN.md, "OpenResty".

local core = require "hicache.core"

local ngx = ngx -- luacheck: ignore 113
local tcp, get_phase, ngx_now, md5 = ngx.socket.tcp, ngx.get_phase, ngx.now, ngx.md5
local timer_at = ngx.timer.at
local setmetatable, tostring, tonumber, concat = setmetatable, tostring, tonumber, table.concat
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

-- The breakers of this worker, by pool name and breaker settings: caches
-- with the same settings share one (as they share the C pool), and it
-- goes away with the last of them.
local breakers = setmetatable({}, { __mode = "v" })

local function breaker(s, name)
  local n = tonumber(s.breaker_failures) or 0
  if n <= 0 then return nil end
  local key = name .. "|" .. n .. "|" .. s.breaker_probe
  local b = breakers[key]
  if not b then
    b = {
      failures = n, probe = s.breaker_probe,
      open = false, fails = 0, last_err = nil,
      seq = 0, opens = 0, probes = 0, -- seq moves on at every change
      probing = false, probe_at = 0,
    }
    breakers[key] = b
  end
  return b
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
    brk = breaker(s, name), -- nil with breaker = false
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

-- Connects sock (a new cosocket) to the pool's server: connect (or a
-- kept-alive connection), TLS handshake, AUTH and SELECT on a new one.
-- Returns how often nginx reused it (0: new) | nil, err (sock closed).
local function open(self, sock)
  sock:settimeouts(self.connect_ms, self.timeout_ms, self.timeout_ms)
  local ok, err
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
    return nil, norm(err)
  end
  return reused
end

-- ---- the circuit breaker ----------------------------------------------------------

local weak_values = { __mode = "v" }
local token = core.token

-- 0.8 .. 1.2 from libsodium's random bytes (math.random runs the same
-- sequence in every worker unless the application seeds it).
local function jitter()
  return 0.8 + 0.4 * (tonumber(token():sub(1, 8), 16) / 0xffffffff)
end

local PING

-- One half-open probe: connect + PING. The connection | nil, err.
local function probe(p)
  local sock, err = tcp()
  if not sock then return nil, err end
  local ok
  ok, err = open(p, sock)
  if not ok then return nil, err end
  PING = PING or core.format({ { "PING" } })
  ok, err = sock:send(PING)
  if ok then
    local r = core.reader()
    while true do
      local done, v = r:next()
      if done == nil then ok, err = nil, tostring(v) break end -- an error reply (LOADING...)
      if done then break end
      local data, rerr = sock:receiveany(4096)
      if not data then ok, err = nil, norm(rerr) break end
      r:feed(data)
    end
  else
    err = norm(err)
  end
  if not ok then
    sock:close()
    return nil, err
  end
  return sock
end

-- Starts the probes of open breaker b (one timer chain per breaker and
-- worker) with pool p's connection settings. The chain holds p weakly:
-- it stops when p is closed or collected (the next acquire of another
-- pool of b starts it again), when the breaker closes, and when the
-- worker exits.
local function start_prober(p, b)
  local ref = setmetatable({ pool = p }, weak_values)
  local tick
  tick = function(premature)
    local pool = ref.pool
    if premature or not b.open or pool == nil or pool.closed then
      b.probing = false
      return
    end
    local sock, err = probe(pool)
    b.probes = b.probes + 1
    if sock then
      b.open, b.fails, b.probing = false, 0, false
      b.seq = b.seq + 1
      pool.failures, pool.retry_at = 0, 0
      pool:release(sock)
      return
    end
    b.last_err = err
    local wait = b.probe * jitter()
    b.probe_at = ngx_now() + wait
    if not timer_at(wait, tick) then b.probing = false end -- the worker is exiting
  end
  local wait = b.probe_at - ngx_now()
  b.probing = timer_at(wait > 0 and wait or 0, tick) and true or false
end

-- A failure while closed: `failures` in a row open the breaker.
local function failure(p, b, err)
  b.last_err = err
  if b.open then return end
  b.fails = b.fails + 1
  if b.fails < b.failures then return end
  b.open, b.fails = true, 0
  b.seq = b.seq + 1
  b.opens = b.opens + 1
  b.probe_at = ngx_now() + b.probe
  if not b.probing then start_prober(p, b) end
end

--- pool:failed(err): a round on one of its connections failed with an
-- I/O error, a timeout or a closed connection (not a Redis error reply,
-- not a kept-alive connection found closed before any reply byte): the
-- breaker counts it.
function Pool:failed(err)
  local b = self.brk
  if b then failure(self, b, err) end
end

--- pool:breaker() -> the breaker's state table, or nil (breaker = false):
-- open, seq (moves on at every change), opens, probes, last_err.
function Pool:breaker()
  return self.brk
end

--- pool:acquire() -> sock, nil, reused | nil, err. A connected, set-up
-- cosocket with the command timeout, and how often nginx's pool reused it
-- (getreusedtimes(): 0 for a new connection). Fails at once (no I/O) in
-- a phase without cosockets, while the breaker is open ("circuit open:
-- <last error>") and while connects back off after failures.
function Pool:acquire()
  if self.closed then return nil, "closed" end
  local phase = get_phase()
  if not COSOCKET_PHASES[phase] then
    return nil, "cosockets are not available in the " .. phase .. " phase"
  end
  local b = self.brk
  if b and b.open then
    if not b.probing then start_prober(self, b) end -- its chain had stopped
    return nil, "circuit open: " .. tostring(b.last_err)
  end
  if self.failures > 0 and ngx_now() < self.retry_at then return nil, self.last_err end
  local sock, err = tcp()
  if not sock then return nil, err end
  local reused
  reused, err = open(self, sock)
  if not reused then
    -- back off like the C pool: base * 2^(n-1), at most backoff_max
    local s = self.s
    self.failures = self.failures + 1
    self.errors = self.errors + 1
    self.last_err = err
    self.retry_at = ngx_now() + math_min(s.backoff_base * 2 ^ (self.failures - 1), s.backoff_max)
    if b then failure(self, b, err) end
    return nil, err
  end
  self.failures = 0
  return sock, nil, reused
end

--- pool:release(sock): back into nginx's keepalive pool (a connection that
-- failed is closed by its user instead, never kept; so is every one while
-- the breaker is open, as in the C pool).
function Pool:release(sock)
  local b = self.brk
  if b and b.open then
    sock:close()
    return
  end
  local ok = sock:setkeepalive(self.idle_ms, self.s.pool_size)
  if not ok then sock:close() end
end

--- pool:close(): later acquires fail with "closed" (kept connections of
-- other caches with the same settings stay in nginx's pool).
function Pool:close()
  self.closed = true
end

local READ = 65536

--- cosocket.round(sock, x, pool) -> true | nil, err, any: sends the
-- pending round of xio x and feeds its replies back (any: a byte of the
-- reply had come). A round that waits longer than the command timeout (a
-- BLPOP) gets its own read timeout, then the pool's again.
function _M.round(sock, x, pool)
  local req, _, wait = x:request()
  local ok, err = sock:send(req)
  if not ok then return nil, norm(err), false end
  if wait and wait > 0 then sock:settimeout(math.ceil(wait * 1000)) end
  local any = false
  repeat
    local data
    data, err = sock:receiveany(READ)
    if not data then return nil, norm(err), any end
    any = true
    ok, err = x:feed(data)
    if ok == nil then return nil, err, true end
  until ok
  if wait and wait > 0 then sock:settimeout(pool.timeout_ms) end
  return true
end

return _M
