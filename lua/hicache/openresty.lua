--- hicache.openresty: a cache whose I/O runs on cosockets (hicache.new
-- returns one inside OpenResty; transport = "cosocket" asks for it).
--
-- The cache is a table around the C cache. Its methods are the C cache's:
--   * a C method that talks to Redis runs with core.step over an xio, and
--     each round the core asks for goes over a cosocket of hicache.cosocket
--     (the same C code as on the blocking path decodes, counts stats and
--     returns; no RESP is handled in Lua);
--   * a C method without I/O (key names, encode, stats) is called directly;
--   * the Lua methods (get_or_set, lock, memoize, keys, ...) run unchanged
--     with this table as their cache.
-- What the blocking path does with threads or by blocking is done the
-- OpenResty way: the lease keeper and the lock watchdog are ngx.timer
-- callbacks, waits are a cosocket BLPOP, backoff is ngx.sleep, and
-- cache:reserve() pins a cosocket.

local core = require "hicache.core"
local cosocket = require "hicache.cosocket"
local argerror = require "hicache.argerror"

local ngx = ngx -- luacheck: ignore 113
local timer_at, ngx_sleep = ngx.timer.at, ngx.sleep
local step, new_xio, PENDING = core.step, core.xio, core.PENDING
local rethrow, raise = argerror.rethrow, argerror.raise
local pcall, type, setmetatable, tostring, rawset = pcall, type, setmetatable, tostring, rawset
local select, pairs, tinsert = select, pairs, table.insert

local _M = {}

local Client = core.Client

-- C methods without I/O: called on the C cache directly.
local PURE = {
  _key = true, _namespace = true, _names = true, _tag_name = true, _lock_names = true,
  _scan_pattern = true, _entry = true, encode = true, decode = true, _record = true,
  stats = true, stats_reset = true, _lease_key = true, _l1_keep = true, _is_cluster = true,
  _seal_family = true, _seal_families = true, _decode_at = true,
}

local round = cosocket.round

-- One attempt at the pending round of xio x on sock (a new connection
-- when nil). Returns the connection on success; else nil, err, and
-- whether the round may be sent again on a new connection. A round that
-- failed counts for the pool's circuit breaker (pool:failed), except on a
-- kept-alive connection found closed before any reply byte (nothing ran:
-- the C pool's closed_unused); a round answered resets its count.
local function attempt(res, pool, x, sock)
  local err
  local reused = false
  if not sock then
    if res then return nil, res.failed or "released", false end
    local times
    sock, err, times = pool:acquire()
    if not sock then return nil, err, false end
    -- only the first round on a kept-alive connection may find it closed
    reused = times > 0
  end
  local pinned = res and res.sock
  local ok, any
  ok, err, any = round(sock, x, pool)
  if ok then
    local b = pool.brk
    if b then b.fails = 0 end
    return sock
  end
  sock:close()
  if sock == pinned then res.sock, res.failed = nil, err end
  -- as the C pool: only a connection found closed (not a timeout)
  if reused and err == "connection closed" and not any then return nil, err, x:retryable() end
  pool:failed(err)
  return nil, err, false
end

-- Sends the pending round of xio x and feeds it its reply. A round that
-- only reads is sent once more on a new connection when a kept-alive one
-- turns out closed before any byte of the reply (as the C pool does).
-- Returns the connection to go on with; nil when the round failed: it is
-- then answered with the error (x:fail), so the operation ends through its
-- own error path (nil, err, counted in stats) as on the blocking path.
local function io_round(res, pool, x, sock)
  local s, err, again = attempt(res, pool, x, sock)
  if s then return s end
  if again then
    s, err = attempt(res, pool, x, nil)
    if s then return s end
  end
  x:fail(err)
  return nil
end

-- How many values, then the values (pcall's results).
local function nres(...) return select("#", ...), ... end

-- The first n of a..f (no C method of the cache returns more than 4).
local function ret(n, a, b, c, d, e, f)
  if n == 1 then return a elseif n == 2 then return a, b elseif n == 3 then return a, b, c
  elseif n == 4 then return a, b, c, d elseif n == 5 then return a, b, c, d, e
  elseif n == 6 then return a, b, c, d, e, f elseif n <= 0 then return end
  error("hicache.openresty: a C method returned more than 6 values")
end

-- pcall(step, ud, x, name, <the first na of a1..a6>): the arguments go on
-- as locals, not varargs, so LuaJIT compiles the path (a trace that starts
-- after a cosocket call cannot read the varargs of the function it is in:
-- NYI VARG at a trace's base frame), and the path must stay compiled to
-- keep up with a raw cosocket (make bench).
local function stepn(ud, x, name, na, a1, a2, a3, a4, a5, a6)
  if na == 1 then return nres(pcall(step, ud, x, name, a1))
  elseif na == 2 then return nres(pcall(step, ud, x, name, a1, a2))
  elseif na == 3 then return nres(pcall(step, ud, x, name, a1, a2, a3))
  elseif na == 4 then return nres(pcall(step, ud, x, name, a1, a2, a3, a4))
  elseif na == 0 then return nres(pcall(step, ud, x, name))
  elseif na == 5 then return nres(pcall(step, ud, x, name, a1, a2, a3, a4, a5))
  end
  return nres(pcall(step, ud, x, name, a1, a2, a3, a4, a5, a6))
end

-- A few xio objects kept for reuse (an operation holds one while it
-- waits for Redis, so each light thread in flight has its own).
local spare, nspare = {}, 0

local function get_xio()
  if nspare == 0 then return new_xio() end
  local x = spare[nspare]
  spare[nspare] = nil
  nspare = nspare - 1
  return x
end

-- on_event (and logger, which config makes part of it) of a cosocket
-- cache: the C core calls it inside core.step, where it could neither
-- yield nor call a cache; there it only queues the event, and the queue
-- is handed to the user's function here, after the step returned.
local function deliver(self)
  local q = self._events
  self._events = {}
  local hook = self._hook
  for i = 1, #q do hook(q[i]) end
end

-- The breaker of the cache's pool changed since the last event (the
-- cache has an on_event): {op = "breaker", status = "open" | "closed"}
-- goes first in the queue, before the event of the operation that saw it
-- (as the C core reports it).
local function breaker_event(self, brk)
  self._brk_seq = brk.seq
  tinsert(self._events, 1, { op = "breaker", status = brk.open and "open" or "closed" })
end

-- Releases or closes the operation's connection (closes it when the
-- operation raised, or left it with state: MULTI, WATCH, SELECT,
-- SUBSCRIBE... as the C pool does), keeps its xio, then returns its results.
-- Only command and pipeline send what the caller wrote: the cache's own
-- operations never leave state, so a get asks the core nothing more.
local function finish(self, res, name, x, pinned, sock, n, ok, a, b, c, d, e, f)
  local raw = name == "command" or name == "pipeline"
  if res then
    if raw then res.state = x:state() end
  elseif sock and sock ~= pinned then
    if ok and not (raw and x:state() ~= 0) then self._pool:release(sock) else sock:close() end
  end
  if not ok then rethrow(a, name, 1) end
  if nspare < 32 then
    x:reset()
    nspare = nspare + 1
    spare[nspare] = x
  end
  local brk = self._brk
  if brk and brk.seq ~= self._brk_seq then breaker_event(self, brk) end
  if self._events[1] ~= nil then deliver(self) end
  return ret(n - 1, a, b, c, d, e, f)
end

-- More than six arguments (command, pipeline of a long command...): the
-- same, with varargs (interpreted).
local function exec_varg(self, res, name, ...)
  local ud, pool = self._core, self._pool
  local x = get_xio()
  if res then x:state(res.state) end
  local pinned = res and res.sock
  local sock = pinned
  local n, ok, a, b, c, d, e, f = nres(pcall(step, ud, x, name, ...))
  while ok and a == PENDING do
    sock = io_round(res, pool, x, sock)
    n, ok, a, b, c, d, e, f = nres(pcall(step, ud, x, name, ...))
  end
  return finish(self, res, name, x, pinned, sock, n, ok, a, b, c, d, e, f)
end

-- Runs C method `name` of the cache over cosockets: each round the core
-- asks for goes over one connection, checked out at the first round and
-- back into the keepalive pool at the end (closed if the operation
-- raised). res: a reserved connection (cache:reserve()) to run on.
local function exec(self, res, name, ...)
  local na = select("#", ...)
  if na > 6 then return exec_varg(self, res, name, ...) end
  local a1, a2, a3, a4, a5, a6 = ...
  local ud, pool = self._core, self._pool
  local x = get_xio()
  if res then x:state(res.state) end
  local pinned = res and res.sock
  local sock = pinned
  local n, ok, a, b, c, d, e, f = stepn(ud, x, name, na, a1, a2, a3, a4, a5, a6)
  while ok and a == PENDING do
    sock = io_round(res, pool, x, sock)
    n, ok, a, b, c, d, e, f = stepn(ud, x, name, na, a1, a2, a3, a4, a5, a6)
  end
  return finish(self, res, name, x, pinned, sock, n, ok, a, b, c, d, e, f)
end

-- ---- the keeper: a lease or a lock kept alive by an ngx.timer ----------------

local Watch = {}
Watch.__index = Watch

--- watch:stop() -> true; idempotent. The timer sees it on its next tick.
function Watch:stop()
  self.stopped = true
  return true
end

--- watch:status() -> renewals, lost
function Watch:status()
  return self.renewals, self.lost
end

-- Keeps `name` (which must hold `value`) alive with a TTL of ttl_ms: every
-- third of it, one EXTEND script (as the C keeper); a failed extension is
-- retried after a twelfth; a key that no longer holds our value is lost.
local function keep(self, name, value, ttl_ms)
  local w = setmetatable({ renewals = 0, lost = false, stopped = false }, Watch)
  local every, retry = ttl_ms / 3000, ttl_ms / 12000
  local tick
  tick = function(premature)
    if premature or w.stopped then return end
    local r = exec(self, nil, "_eval", "extend", 1, name, value, ttl_ms, "1")
    if w.stopped then return end
    local after = retry
    if r == 1 then
      w.renewals = w.renewals + 1
      after = every
    elseif r == 0 then
      w.lost = true
      return
    end
    if not timer_at(after, tick) then w.lost = true end -- the worker is exiting
  end
  local ok, err = timer_at(every, tick)
  if not ok then return nil, "cannot start the keeper timer: " .. tostring(err) end
  return w
end

-- ---- cache:reserve(): one pinned cosocket --------------------------------------

local Reserved = {}
Reserved.__index = Reserved

local function check_reserved(self, fname)
  if getmetatable(self) ~= Reserved then
    raise(("bad argument #1 to '%s' (hicache.conn expected, got %s)"):format(fname, type(self)))
  end
  return self
end

--- conn:command(name, ...) -> reply | nil, err
function Reserved:command(...)
  check_reserved(self, "command")
  if not self.sock then return nil, self.failed or "released" end
  return exec(self.cache, self, "command", ...)
end

--- conn:pipeline(cmds) -> replies | nil, err
function Reserved:pipeline(cmds)
  check_reserved(self, "pipeline")
  if not self.sock then return nil, self.failed or "released" end
  return exec(self.cache, self, "pipeline", cmds)
end

--- conn:set_timeout(seconds) -> true | nil, err
function Reserved:set_timeout(t)
  check_reserved(self, "set_timeout")
  if type(t) ~= "number" or not (t > 0 and t <= 86400) then
    raise("bad argument #1 to 'set_timeout' (timeout must be > 0 and <= 86400 seconds)")
  end
  if not self.sock then return nil, self.failed or "released" end
  self.sock:settimeout(math.ceil(t * 1000))
  self.timeout_set = true
  return true
end

--- conn:release() -> true; idempotent. A connection left with state
-- (MULTI, WATCH, SUBSCRIBE, SELECT, ...: the core's hc_cmd_track) is
-- closed instead of kept.
function Reserved:release()
  check_reserved(self, "release")
  local sock = self.sock
  if not sock then return true end
  self.sock, self.failed = nil, nil
  local pool = self.cache._pool
  if self.state ~= 0 then
    sock:close()
  else
    if self.timeout_set then sock:settimeouts(pool.connect_ms, pool.timeout_ms, pool.timeout_ms) end
    pool:release(sock)
  end
  return true
end

Reserved.__tostring = function(self)
  return "hicache.conn (cosocket " .. self.cache._pool.name:match("^hicache|([^|]*)") .. ")"
end

-- ---- the cache --------------------------------------------------------------------

local special = {}

--- cache:reserve() -> conn | nil, err: a cosocket of its own until
-- conn:release() (or the end of the request, when nginx closes it).
function special:reserve()
  local sock, err = self._pool:acquire()
  if not sock then return nil, err end
  return setmetatable({ cache = self, sock = sock, state = 0 }, Reserved)
end

--- cache:pool_stats() -> this worker's connection counters | nil, "closed"
-- (breaker: this worker's breaker of the pool)
function special:pool_stats()
  local p = self._pool
  if p.closed then return nil, "closed" end
  local c = self._core:pool_stats() -- the C pool's L1 (its thread, its store), if any
  local brk = p:breaker()
  return {
    transport = "cosocket", size = p.s.pool_size, created = p.connects, reused = p.reuses,
    errors = p.errors, in_use = 0, idle = 0, connecting = 0, caches = 1, closed = 0,
    waits = 0, exhausted = 0, health_checks = 0, l1 = c and c.l1,
    breaker = brk and brk.open and "open" or "closed",
    breaker_opens = brk and brk.opens or 0, breaker_probes = brk and brk.probes or 0,
  }
end

--- cache:close() -> true
function special:close()
  self._pool:close()
  return self._core:close()
end

function special:_keep(key, tok, epoch, lease_ms)
  local name, value = self._core:_lease_key(key, tok, epoch)
  return keep(self, name, value, lease_ms)
end

function special:_watch(key, value, ttl_ms)
  if type(key) ~= "string" or type(value) ~= "string" then raise("bad argument to '_watch'") end
  if type(ttl_ms) ~= "number" or ttl_ms < 30 then raise("bad argument #3 to '_watch' (ttl must be at least 30 ms)") end
  return keep(self, key, value, ttl_ms)
end

function special._sleep(_, s)
  return ngx_sleep(s)
end

local check, is_c = argerror.wrapped_self, argerror.is_c

-- The methods of a cosocket cache, made on first use from core.Client's
-- (the Lua layer adds its methods there after this module loads).
local methods = setmetatable({}, {
  __index = function(t, name)
    local f = special[name] or Client[name]
    if f == nil then return nil end
    local m = f
    if special[name] then
      m = function(self, ...) return f(check(self, name), ...) end
    elseif is_c(f) then
      if name == "_record" then -- an operation done in Lua: its event
        m = function(self, ...)
          f(check(self, name)._core, ...)
          local brk = self._brk
          if brk and brk.seq ~= self._brk_seq then breaker_event(self, brk) end
          if self._events[1] ~= nil then deliver(self) end
        end
      elseif PURE[name] then
        m = function(self, ...) return f(check(self, name)._core, ...) end
      else
        m = function(self, ...) return exec(check(self, name), nil, name, ...) end
      end
    end
    rawset(t, name, m)
    return m
  end,
})

local Cache = {
  __index = methods,
  __tostring = function(self) return "hicache (cosocket): " .. tostring(self._core) end,
  __metatable = "locked",
}

--- openresty.new(settings) -> a cosocket cache | nil, err (core.new's)
function _M.new(settings)
  local self = { _pool = cosocket.pool(settings), _hook = settings.on_event, _events = {} }
  local s = settings
  if s.on_event then
    -- breaker changes are reported to on_event from the first change on
    local brk = self._pool:breaker()
    self._brk, self._brk_seq = brk, brk and brk.seq
    s = {}
    for k, v in pairs(settings) do s[k] = v end
    s.on_event = function(ev)
      local q = self._events
      q[#q + 1] = ev
    end
  end
  local ud, err = core.new(s)
  if not ud then return nil, err end
  self._core = ud
  return setmetatable(self, Cache)
end

return _M
