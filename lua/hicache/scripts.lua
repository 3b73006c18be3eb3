--- hicache.scripts: Redis scripts run by EVALSHA, loaded with SCRIPT LOAD
-- on first use and again after NOSCRIPT (SCRIPT FLUSH, restart, failover).
-- Also the key names that scripts touch beside a value key: they embed the
-- value key as a hash tag ({app:1:user:42}:lease) so that on Redis Cluster
-- they land in the value key's slot while the value key stays unchanged.

local null = require("hicache.core").null

local _M = {}

local shas = {} -- script source -> SHA1 (the same on every server)

--- eval(cache, src, nkeys, ...) -> reply | nil, err
function _M.eval(cache, src, nkeys, ...)
  for _ = 1, 2 do
    local sha = shas[src]
    if not sha then
      local s, err = cache:command("SCRIPT", "LOAD", src)
      if not s then return nil, err end
      shas[src] = s
      sha = s
    end
    local r, err = cache:command("EVALSHA", sha, nkeys, ...)
    if r ~= nil or not err:find("^NOSCRIPT") then return r, err end
    shas[src] = nil
  end
  return nil, "script could not be loaded"
end

-- A plain entry K has {K}:lease and {K}:wake; a tagged entry is already
-- named {K}@<generations>, so its lease is {K}@<generations>:lease.
function _M.lease_key(full_key)
  if full_key:byte(1) == 123 then return full_key .. ":lease" end
  return "{" .. full_key .. "}:lease"
end
function _M.wake_key(full_key)
  if full_key:byte(1) == 123 then return full_key .. ":wake" end
  return "{" .. full_key .. "}:wake"
end
function _M.gen_key(full_key) return "{" .. full_key .. "}:gen" end

-- How long an unconsumed wake-up token lives (ms).
_M.WAKE_TTL_MS = 10000

--- Deletes value keys, revokes their leases, wakes one waiter of each
-- revoked lease (it retries; the others follow as the new fill wakes them),
-- moves the key's generation on (which hides its tagged entries), and
-- moves tag generations on (invalidate_tag: O(1) whatever the entries).
-- KEYS: value, lease, wake, gen (x n), then tag generation keys
-- ARGV: wake ttl (ms), n
_M.INVALIDATE = [[
local n, last = 0, tonumber(ARGV[2]) * 4
for i = 1, last, 4 do
  n = n + redis.call('UNLINK', KEYS[i])
  if redis.call('UNLINK', KEYS[i + 1]) == 1 then
    redis.call('RPUSH', KEYS[i + 2], '1')
    redis.call('PEXPIRE', KEYS[i + 2], ARGV[1])
  end
  if redis.call('EXISTS', KEYS[i + 3]) == 1 then redis.call('INCR', KEYS[i + 3]) end
end
for i = last + 1, #KEYS do redis.call('INCR', KEYS[i]) end
return n
]]

--- Hit, or take the lease, or report how long the current lease lasts.
-- KEYS: value, lease  ARGV: token, lease ttl (ms), ignore an existing
-- (stale) value ('1') or not ('0')
_M.LEASE = [[
if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {3, redis.call('PTTL', KEYS[2])}
]]

--- Stores the value only while our lease is still valid, then wakes a waiter.
-- KEYS: value, lease, wake[, gen]  ARGV: token, bytes, px (0 = no expiry), wake ttl
-- (gen: for a tagged entry, created so that invalidate(key) can move it on)
_M.FILL = [[
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if KEYS[4] then redis.call('SET', KEYS[4], '0', 'NX') end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
redis.call('DEL', KEYS[2])
redis.call('RPUSH', KEYS[3], '1')
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return 1
]]

--- Gives a lease (or lock) back if it is still ours, and wakes a waiter.
-- KEYS: lease, wake  ARGV: token, wake ttl (ms)
_M.RELEASE = [[
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('RPUSH', KEYS[2], '1')
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
]]

--- Lock acquire: one round trip, with a fencing token that strictly
-- increases for each grant of the lock name.
-- KEYS: lock, fence  ARGV: token, ttl (ms)
_M.ACQUIRE = [[
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
]]

--- Lock extend: by ttl ms on top of what is left, or to exactly ttl.
-- KEYS: lock  ARGV: token, ttl (ms), replace ('1' or '0')
_M.EXTEND = [[
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ms = tonumber(ARGV[2])
if ARGV[3] == '0' then
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then ms = ms + left end
end
return redis.call('PEXPIRE', KEYS[1], ms)
]]

--- Waits for a wake-up token on `wake` for at most `seconds`, on a pinned
-- connection whose timeout covers the wait. Returns true (woken), false
-- (timed out) or nil, err. The caller counts the command.
function _M.wait(cache, wake, seconds)
  if seconds <= 0 then return false end
  local conn, err = cache:reserve()
  if not conn then return nil, err end
  conn:set_timeout(seconds + 1)
  local r
  r, err = conn:command("BLPOP", wake, ("%.3f"):format(math.max(seconds, 0.001)))
  conn:release()
  if r == nil then return nil, err end
  return r ~= null
end

--- Passes a wake-up on to the next waiter (one round trip).
function _M.wake(cache, wake)
  return cache:pipeline { { "RPUSH", wake, "1" }, { "PEXPIRE", wake, _M.WAKE_TTL_MS } }
end

return _M
