--- hicache.lock: distributed locks with random owner tokens, mandatory
-- TTLs, fencing tokens, safe release, wake-up on release, and an optional
-- watchdog (in C) that renews the lock while its holder lives.
--
-- Keys (named in C, src/core/hc_names.c; all with the hash tag {name}, so one
-- Cluster slot):
--   prefix:lock:{name}        the lock: the owner's token, PX ttl
--   prefix:lock:{name}:fence  the last fence (expires a day after the last
--                             grant: fences are max(last + 1, the server's
--                             time in µs), so they never go back with it)
--   prefix:lock:{name}:wake   wake-up tokens for waiters (BLPOP)
-- They live outside the prefix:version: data namespace, so clear() and
-- delete_pattern() never touch a held lock.

local core = require "hicache.core"
local argerror = require "hicache.argerror"

local now, token = core.now, core.token
local type, error, setmetatable, pcall, pairs, tostring = type, error, setmetatable, pcall, pairs, tostring
local compat = require "hicache.compat"
local pack, unpack = compat.pack, compat.unpack
local raise = argerror.raise
local math_min, math_ceil, math_random = math.min, math.ceil, math.random

local _M = {}

local Lock = {}
Lock.__index = Lock

-- A lock that is garbage collected stops its watchdog (no I/O in a
-- finalizer: the lock itself then expires after its TTL). Lua 5.1 (LuaJIT)
-- runs no __gc of a table: there the lock holds a sentinel userdata whose
-- finalizer stops the watch (it refers to the watch, never to the lock).
local gc_of_tables = not compat.luajit and _VERSION ~= "Lua 5.1"
Lock.__gc = function(self)
  if self.watch then self.watch:stop() end
end

local function stop_on_gc(lock, watch)
  if gc_of_tables then return end
  local sentinel = newproxy(true) -- luacheck: ignore 113
  getmetatable(sentinel).__gc = function() watch:stop() end
  lock._gc = sentinel
end

-- Local validity: the lock's TTL minus the time since the grant and a
-- margin for clock drift between this host and Redis (1% + 2 ms).
local function drift_ms(ttl_ms) return math.floor(ttl_ms / 100) + 2 end

local WAKE_TTL_MS = 10000     -- an unconsumed wake-up token lives this long
local FENCE_TTL_MS = 86400000 -- the fence key lives a day after the last grant

-- Waits for a wake-up token on `wake` for at most `seconds` (one BLPOP,
-- which returns at most one command timeout later, also when Redis does
-- not answer). true (woken), false (timed out) or nil, err.
local function block(cache, wake, seconds)
  if seconds <= 0 then return false end
  return cache:_block(wake, math_min(seconds, 86400))
end

-- Lock TTLs and waits are at most this many seconds (about 31 years):
-- Redis takes PX as a 64-bit integer of ms, and a TTL is never "forever".
local MAX_SECONDS = 1e9

local TTL_RULE = "must be a positive number of seconds, at most 1e9 (locks never live forever)"

local function check_ttl(ttl, what)
  if type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 or ttl > MAX_SECONDS then
    raise(what:format(TTL_RULE))
  end
  return math_ceil(ttl * 1000)
end

--- cache:lock(name, opts) -> lock | nil, "timeout" | nil, err
function _M.acquire(cache, name, opts)
  if type(name) ~= "string" or name == "" then
    raise("bad argument #1 to 'lock' (lock name must be a non-empty string)")
  end
  if #name > 1024 then raise("bad argument #1 to 'lock' (lock name must be at most 1024 bytes)") end
  opts = opts or {}
  if type(opts) ~= "table" then raise("bad argument #2 to 'lock' (opts must be a table)") end
  for k in pairs(opts) do
    if k ~= "ttl" and k ~= "wait" and k ~= "renew" then raise(("unknown lock option '%s'"):format(tostring(k))) end
  end
  local ttl_ms = check_ttl(opts.ttl == nil and 10 or opts.ttl, "opts.ttl %s")
  local wait = opts.wait or 0
  if type(wait) ~= "number" or wait ~= wait or wait < 0 or wait > MAX_SECONDS then
    raise("opts.wait must be a non-negative number of seconds, at most 1e9")
  end
  if opts.renew ~= nil and type(opts.renew) ~= "boolean" then raise("opts.renew must be a boolean") end
  local key, fence_key, wake = cache:_lock_names(name)
  local tok = token()
  local deadline = now() + wait
  local commands, backoff = 0, 0.002
  while true do
    local t0 = now()
    local r, err = cache:_eval("acquire", 2, key, fence_key, tok, ttl_ms, math.max(FENCE_TTL_MS, 2 * ttl_ms))
    commands = commands + 1
    if not r then return nil, err end
    if r[1] == 1 then
      local lock = setmetatable({
        cache = cache, name = name, key = key, wake = wake, token = tok, fence = r[2],
        ttl_ms = ttl_ms, acquired_at = t0, commands = commands,
      }, Lock)
      if opts.renew then
        local w, werr = cache:_watch(key, tok, ttl_ms)
        if not w then
          lock:release()
          return nil, werr
        end
        lock.watch = w
        stop_on_gc(lock, w)
      end
      return lock
    end
    local left = deadline - now()
    if left <= 0 then return nil, "timeout" end
    -- wait for a release (BLPOP), bounded by the lock's TTL and our wait;
    -- if the wake-up path fails, fall back to jittered exponential backoff.
    -- Once the wait is used up no new round starts: a waiter returns at
    -- most one command timeout after `wait`.
    local pttl = r[2] > 0 and r[2] / 1000 or 0.001
    local woke = block(cache, wake, math_min(left, pttl + 0.001))
    commands = commands + 1
    left = deadline - now()
    if left <= 0 then return nil, "timeout" end
    if woke == nil then
      cache:_sleep(math_min(left, backoff * (0.5 + math_random())))
      backoff = math_min(backoff * 2, 0.5)
      if now() >= deadline then return nil, "timeout" end
    end
  end
end

--- lock:release() -> true | nil, "not owned" | nil, err. Idempotent.
function Lock:release()
  if self.released then return true end
  if self.watch then self.watch:stop() end
  local r, err = self.cache:_eval("release", 2, self.key, self.wake, self.token, WAKE_TTL_MS)
  if r == nil then return nil, err end
  self.released = true
  if r == 1 then return true end
  return nil, "not owned"
end

--- lock:extend(ttl, {replace = bool}) -> true | nil, "not owned" | nil, err
-- By default adds ttl to the time left; replace = true sets it to ttl.
function Lock:extend(ttl, opts)
  local ms = check_ttl(ttl, "bad argument #1 to 'extend' (ttl %s)")
  if opts ~= nil and type(opts) ~= "table" then raise("bad argument #2 to 'extend' (opts must be a table)") end
  for k in pairs(opts or {}) do
    if k ~= "replace" then raise(("unknown extend option '%s'"):format(tostring(k))) end
  end
  local replace = opts and opts.replace
  local t0 = now()
  local r, err = self.cache:_eval("extend", 1, self.key, self.token, ms, replace and "1" or "0")
  if r == nil then return nil, err end
  if r ~= 1 then return nil, "not owned" end
  if replace then
    self.acquired_at, self.ttl_ms = t0, ms
  else
    self.ttl_ms = self.ttl_ms + ms
  end
  return true
end

--- lock:owned() -> true | false | nil, err (one GET)
function Lock:owned()
  if self.released then return false end
  local v, err = self.cache:command("GET", self.key)
  if v == nil then return nil, err end
  return v == self.token
end

--- lock:remaining() -> seconds of validity left by the local monotonic
-- clock, minus a drift margin (ms precision); 0 when expired or released.
-- With renew = true the watchdog keeps the lock in Redis: remaining()
-- then counts from the last local grant or extend only.
function Lock:remaining()
  if self.released then return 0 end
  local left = self.ttl_ms - (now() - self.acquired_at) * 1000 - drift_ms(self.ttl_ms)
  return left > 0 and math.floor(left) / 1000 or 0
end

function Lock:renewals()
  if not self.watch then return 0, false end
  return self.watch:status()
end


--- cache:with_lock(name, opts, fn, ...) -> fn's results | nil, "timeout" | nil, err
-- Releases on return and on error (then re-raises the error).
function _M.with_lock(cache, name, opts, fn, ...)
  if type(fn) ~= "function" then raise("bad argument #3 to 'with_lock' (function expected, got " .. type(fn) .. ")") end
  local lock, err = cache:lock(name, opts) -- observed like any cache:lock
  if not lock then return nil, err end
  local res = pack(pcall(fn, ...))
  lock:release()
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

_M.Lock = Lock
return _M
