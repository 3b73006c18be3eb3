--- hicache.publish: stats_publish, a cache's counters (cache:stats())
-- written to Redis as a hash that `hicache stats` (and anyone) can read:
--
--   <prefix>:stats:<host>:<pid>:<id>   (id: 8 hex, random per cache object)
--
-- fields: host, pid, started (Unix s), updated (Unix ms), interval (s),
-- hicache (version), prefix; total.<counter> and family.<family>.<counter>
-- for every integer counter of cache:stats() (hit_rate is derived, not
-- published: hits / (hits + misses)); op.<op>.count and op.<op>.sum_us
-- (the sum of its latencies, µs). Counter names have no '.', so a family
-- field splits at its last '.'. Every value is decimal text.
--
-- Each publish rewrites the whole hash in one MULTI (DEL, HSET, PEXPIRE 3 x
-- interval: a process that stops publishing disappears), so a reader never
-- sees half of one. On a cluster the MULTI runs on a connection reserved on
-- the key's node.
--
-- When: the C core calls tick(cache) from an observed operation once
-- `interval` has passed since the last publish (hc_client.c: plain Lua has
-- no timer), and cache:stats_publish() publishes at once. tick never raises
-- into the operation: its failures are counted as errors of op "publish"
-- and reported to on_event (op "publish", status "error"). cache:close()
-- calls tick(cache, "close"), which deletes the key.
--
-- Loading this module adds cache:stats_publish() to the cache class
-- (config.lua requires it).

local core = require "hicache.core"

local type, pairs, pcall, tostring, setmetatable = type, pairs, pcall, tostring, setmetatable
local format, floor, ceil = string.format, math.floor, math.ceil
local now, time_ms, EV = core.now, core.time_ms, core.EV

local _M = {}

-- Per cache object (the C cache, or a cosocket cache around it): its id,
-- when it began publishing, and the key it last wrote (with that pid).
local state = setmetatable({}, { __mode = "k" })

local function state_of(cache)
  local st = state[cache]
  if not st then
    st = { id = core.token():sub(1, 8), started = os.time() }
    state[cache] = st
  end
  return st
end

-- v as decimal text when it is a count (a non-negative integer), else nil.
local function count(v)
  if type(v) ~= "number" or not (v >= 0 and v < 2 ^ 63) or v % 1 ~= 0 then return nil end
  return format("%d", v)
end

-- Appends "<pre><counter>", value for each integer counter of c.
local function counters(out, n, pre, c)
  for k, v in pairs(c) do
    local s = type(k) == "string" and k ~= "hit_rate" and count(v)
    if s then
      out[n + 1], out[n + 2] = pre .. k, s
      n = n + 2
    end
  end
  return n
end

-- The key of this cache in this process, and the HSET command of st.
local function hset_of(st, interval, prefix, host, pid, stats)
  local key = prefix .. ":stats:" .. host .. ":" .. pid .. ":" .. st.id
  local cmd = {
    "HSET", key,
    "host", host, "pid", format("%d", pid), "started", format("%d", st.started),
    "updated", format("%d", time_ms()), "interval", format("%.15g", interval),
    "hicache", core._VERSION, "prefix", prefix,
  }
  local n = counters(cmd, #cmd, "total.", stats)
  for fam, c in pairs(stats.families or {}) do n = counters(cmd, n, "family." .. fam .. ".", c) end
  for op, o in pairs(stats.ops or {}) do
    local c = count(o.count)
    if c then
      cmd[n + 1], cmd[n + 2] = "op." .. op .. ".count", c
      cmd[n + 3], cmd[n + 4] = "op." .. op .. ".sum_us", format("%d", floor((o.sum_ms or 0) * 1000))
      n = n + 4
    end
  end
  return key, cmd
end

-- The first error of a MULTI's replies (a {false, msg} slot, EXEC's
-- reply), or nil.
local function multi_error(r)
  for i = 1, #r do
    local x = r[i]
    if type(x) == "table" and x[1] == false then return tostring(x[2]) end
  end
  if type(r[#r]) ~= "table" then return "publish aborted" end -- EXEC: nil
  return nil
end

-- Writes the hash once: true | nil, err.
local function publish_now(cache)
  local interval, prefix, host, pid = cache:_publish_info()
  if not interval then return nil, "stats_publish is off" end
  local stats, err = cache:stats()
  if not stats then return nil, err end
  local st = state_of(cache)
  local key, hset = hset_of(st, interval, prefix, host, pid, stats)
  local cmds = { { "MULTI" }, { "DEL", key }, hset, { "PEXPIRE", key, ceil(interval * 3000) }, { "EXEC" } }
  local r
  if cache:_is_cluster() then -- MULTI has no key: on the key's node, on a connection of its own
    local conn
    conn, err = cache:reserve(key)
    if not conn then return nil, err end
    r, err = conn:pipeline(cmds)
    conn:release()
  else
    r, err = cache:pipeline(cmds)
  end
  if not r then return nil, err end
  err = multi_error(r)
  if err then return nil, err end
  st.key, st.pid = key, pid
  return true
end

-- The key this cache wrote in this process (not its parent's, after a
-- fork) is deleted.
local function remove(cache)
  local st = state[cache]
  if not st or not st.key then return end
  local _, _, _, pid = cache:_publish_info()
  if pid ~= st.pid then return end
  cache:command("DEL", st.key)
  st.key = nil
end

--- tick(cache, what): the publisher the C core calls (settings.stats_publisher):
-- what == "close": deletes the key; else publishes. Never raises.
function _M.tick(cache, what)
  if what == "close" then
    pcall(remove, cache)
    return
  end
  local t0 = now()
  local ok, done, err = pcall(publish_now, cache)
  if not ok then err = tostring(done) elseif done then err = nil end
  pcall(cache._record, cache, "publish", err and EV.error or 0, nil, t0, err)
end

--- cache:stats_publish() -> true | nil, err
-- Publishes the counters now (also inside OpenResty, from a timer).
-- nil, "stats_publish is off" without the option.
function core.Client:stats_publish()
  local t0 = now()
  local ok, err = publish_now(self)
  if err == "stats_publish is off" then return nil, err end
  self:_record("publish", ok and 0 or EV.error, nil, t0, err)
  return ok, err
end

return _M
