--- hicache.memory: backend = "memory" inside OpenResty (hicache.new
-- returns one there). The store is the worker's own (an nginx worker is a
-- process), and there is no I/O at all: every C method of the cache runs
-- directly, as with plain Lua. Only waiting must not block the worker --
-- the request that fills a key, or releases a lock, runs in the same
-- worker and could never run while it is blocked. So:
--   * a get_or_set waiter (_wait), a lock waiter (_block) and a BLPOP on a
--     reserved connection poll their lists with LPOP and ngx.sleep (1 ms
--     doubling to 20 ms) until woken or their time is up;
--   * _sleep (a lock's backoff) is ngx.sleep.
-- Where ngx.sleep cannot run (init, set, header_filter, body_filter, log
-- phases) a wait fails with nil, "cannot wait in the <phase> phase": a
-- get_or_set then computes without the cache (status "bypass"), a lock
-- returns that error. The lease keeper is the C keeper thread, which needs
-- no socket for this backend.

local core = require "hicache.core"
local argerror = require "hicache.argerror"

local ngx = ngx -- luacheck: ignore 113
local null, now = core.null, core.now
local rethrow, raise = argerror.rethrow, argerror.raise
local type, setmetatable, getmetatable, pcall = type, setmetatable, getmetatable, pcall
local rawset, tostring, tonumber, select = rawset, tostring, tonumber, select
local math_min = math.min

local _M = {}

local Client = core.Client
local WAKE_TTL_MS = 10000 -- as the C core's (hc_ops.h)

-- Sleeps s seconds by yielding; nil, err where the phase cannot yield.
local function pause(s)
  local ok, err = pcall(ngx.sleep, s)
  if ok then return true end
  local phase = ngx.get_phase and ngx.get_phase() or "?"
  return nil, ("cannot wait in the %s phase"):format(phase), err
end

-- BLPOP as a poll: the first element of the first non-empty list among
-- lists, within seconds. pop(list) -> element | null | nil, err.
-- Returns list, element | false (time is up) | nil, err.
local function poll(pop, lists, seconds)
  local deadline, delay = now() + seconds, 0.001
  while true do
    for i = 1, #lists do
      local v, err = pop(lists[i])
      if v == nil then return nil, err end
      if v ~= null then return lists[i], v end
    end
    local left = deadline - now()
    if left <= 0 then return false end
    local ok, err = pause(math_min(delay, left))
    if not ok then return nil, err end
    delay = math_min(delay * 2, 0.02)
  end
end

-- ---- a reserved connection: BLPOP polls, the rest runs on the C one ------------

local Reserved = {}
Reserved.__index = Reserved

local function check_reserved(self, fname)
  if getmetatable(self) ~= Reserved then
    raise(("bad argument #1 to '%s' (hicache.conn expected, got %s)"):format(fname, type(self)))
  end
  return self
end

local function fin(name, ok, ...)
  if not ok then rethrow((...), name, 1) end
  return ...
end

--- conn:command(name, ...): BLPOP list... timeout polls (bounded by the
-- connection's timeout, as on a socket); any other command runs at once.
function Reserved:command(name, ...)
  check_reserved(self, "command")
  if type(name) == "string" and name:upper() == "BLPOP" and select("#", ...) >= 2 then
    local n = select("#", ...)
    local lists = { ... }
    local t = tonumber(lists[n])
    lists[n] = nil
    local conn = self.conn
    if t == nil or t < 0 then return fin("command", pcall(conn.command, conn, name, ...)) end -- its error
    local bounded = t == 0 or t > self.timeout
    local list, v = poll(function(l) return conn:command("LPOP", l) end, lists, bounded and self.timeout or t)
    if list == nil then return nil, v end
    if list == false then
      if bounded then return nil, "timeout" end
      return null
    end
    return { list, v }
  end
  return fin("command", pcall(self.conn.command, self.conn, name, ...))
end

function Reserved:pipeline(cmds)
  check_reserved(self, "pipeline")
  return fin("pipeline", pcall(self.conn.pipeline, self.conn, cmds))
end

function Reserved:set_timeout(t)
  check_reserved(self, "set_timeout")
  local ok, err = fin("set_timeout", pcall(self.conn.set_timeout, self.conn, t))
  if ok then self.timeout = t end
  return ok, err
end

function Reserved:release()
  check_reserved(self, "release")
  return self.conn:release()
end

Reserved.__tostring = function(self) return tostring(self.conn) end

-- ---- the cache ------------------------------------------------------------------

local special = {}

function special:reserve()
  local conn, err = self._core:reserve()
  if not conn then return nil, err end
  return setmetatable({ conn = conn, timeout = self._timeout }, Reserved)
end

function special._sleep(_, s)
  return pause(s)
end

--- _wait(key, epoch, seconds) as the C method: "key" (the filler woke us),
-- "epoch" (clear() or delete_pattern() did; passed on), false (time is
-- up) | nil, err -- polling instead of blocking.
function special:_wait(key, epoch, seconds)
  local c = self._core
  local names = c:_names(key)
  local wake, ewake = names.wake, names.epoch_wake(epoch)
  local list, err = poll(function(l) return c:command("LPOP", l) end, { wake, ewake }, seconds)
  if not list then return list, err end
  if list == wake then return "key" end
  local r
  r, err = c:pipeline { { "RPUSH", ewake, "1" }, { "PEXPIRE", ewake, WAKE_TTL_MS } }
  if not r then return nil, err end
  return "epoch"
end

--- _block(list, seconds) as the C method (a lock waiter): true (a
-- release woke us), false (time is up) | nil, err -- polling.
function special:_block(list, seconds)
  local c = self._core
  local got, err = poll(function(l) return c:command("LPOP", l) end, { list }, seconds)
  if got == nil then return nil, err end
  return got ~= false
end

local check, is_c = argerror.wrapped_self, argerror.is_c

-- The methods, made on first use from core.Client's (the Lua layer adds
-- its own there after this module loads): a C method runs on the C cache,
-- a Lua method (get_or_set, lock, ...) with this table as its cache.
local methods = setmetatable({}, {
  __index = function(t, name)
    local f = special[name] or Client[name]
    if f == nil then return nil end
    local m = f
    if special[name] then
      m = function(self, ...) return f(check(self, name), ...) end
    elseif is_c(f) then
      m = function(self, ...) return fin(name, pcall(f, check(self, name)._core, ...)) end
    end
    rawset(t, name, m)
    return m
  end,
})

local Cache = {
  __index = methods,
  __tostring = function(self) return "hicache (memory, this worker): " .. tostring(self._core) end,
  __metatable = "locked",
}

--- memory.new(settings) -> a memory cache for OpenResty | nil, err
function _M.new(settings)
  local ud, err = core.new(settings)
  if not ud then return nil, err end
  return setmetatable({ _core = ud, _timeout = settings.timeout }, Cache)
end

return _M
