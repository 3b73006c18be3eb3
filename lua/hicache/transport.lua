--- hicache.transport: runs an operation of the C core over a connection
-- written in Lua. The C core builds every request's bytes and finishes the
-- operation from the reply bytes (decode, status, stats); the connection
-- only moves bytes. This is how a non-blocking runtime (OpenResty's
-- cosockets) drives hicache without a second RESP implementation.
--
--   local transport = require "hicache.transport"
--   local v, err = transport.run(cache, conn, "get", "user:42")
--
-- conn is any object with
--   conn:send(bytes)          -> true | nil, err
--   conn:receive(timeout)     -> bytes (any non-empty piece) | nil, err
-- (timeout: seconds this read may wait, 0 = the connection's own command
-- timeout; only the BLPOP of a get_or_set waiter asks for longer).
-- method is the name of a C method of the cache (get, set, get_many, ...).
-- Returns what cache[method](cache, ...) returns on the blocking path; a
-- failure of the connection is nil, err (the caller then closes it).
local core = require "hicache.core"
local argerror = require "hicache.argerror"

local pcall, type = pcall, type
local step, new_xio, PENDING = core.step, core.xio, core.PENDING

local _M = {}

local compat = require "hicache.compat"
local pack, unpack = compat.pack, compat.unpack

function _M.run(cache, conn, method, ...)
  if type(conn) ~= "table" and type(conn) ~= "userdata" then
    argerror.raise("bad argument #2 to 'run' (connection expected, got " .. type(conn) .. ")")
  end
  local f = type(method) == "string" and core.Client[method]
  if type(f) ~= "function" or debug.getinfo(f, "S").what ~= "C" then
    argerror.raise(("bad argument #3 to 'run' (%s is not an operation of the C core)"):format(
      type(method) == "string" and ("'" .. method .. "'") or type(method)))
  end
  if type(cache) == "table" and rawget(cache, "_core") then cache = cache._core end -- a cosocket cache
  local x = new_xio()
  while true do
    local r = pack(pcall(step, cache, x, method, ...))
    -- an argument error: as the blocking call would raise it, at the caller's line
    if not r[1] then argerror.rethrow(r[2], method, 1) end
    if r[2] ~= PENDING then return unpack(r, 2, r.n) end
    local req, _, timeout = x:request()
    local ok, err = conn:send(req)
    if not ok then return nil, err or "connection closed" end
    repeat
      local data, rerr = conn:receive(timeout)
      if not data then return nil, rerr or "connection closed" end
      local done, ferr = x:feed(data)
      if done == nil then return nil, ferr end
    until done
  end
end

return _M
