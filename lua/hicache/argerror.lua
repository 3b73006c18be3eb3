--- hicache.argerror: argument errors at the caller's line.
--
-- The Lua layer calls itself (a public method may run behind a stats
-- wrapper, a memoized callable, a batch, a tail call or not), so a fixed
-- `error(msg, 2)` points into the library on some path. raise() walks
-- the stack instead and blames the first frame that is neither a file of
-- this library nor C: the user's line, whatever the options.

local getinfo, error, type, pairs, getmetatable, rawget = debug.getinfo, error, type, pairs, getmetatable, rawget

local _M = {}

-- "@/…/lua/hicache/" (the directory of this file, as Lua names chunks)
local LIB = getinfo(1, "S").source:match("^(@.*[/\\])[^/\\]+$") or "@"

local function in_library(info)
  return info.what == "C" or info.source:sub(1, #LIB) == LIB
end

-- The level (as error() counts from the function that calls this one's
-- caller) of the first frame outside the library.
local function user_level()
  local level = 3 -- 1: user_level, 2: raise, 3: the library function
  while true do
    local info = getinfo(level, "S")
    if info == nil then return 0 end -- no user frame: no position
    if not in_library(info) then return level - 1 end
    level = level + 1
  end
end

--- raise(msg): error(msg) positioned at the user's line.
function _M.raise(msg)
  error(msg, user_level())
end

--- strip(err): the message of an error raised inside the library (by the
-- C core or a Lua module) without its library position prefix.
local function strip(err)
  if type(err) ~= "string" then return err end
  local pos = LIB:sub(2)
  if err:sub(1, #pos) == pos then
    return (err:gsub("^[^\n]-:%d+: ", "", 1))
  end
  return err
end
_M.strip = strip

--- rethrow(err, name, shift): re-raises an argument error that the C core
-- (or a module of this library) raised for the library at the user's
-- line, naming the public function `name` and, when the C function was
-- called by pcall directly (no position, "bad argument #N to '?'"),
-- counting its argument from the public function's: N - shift. Errors
-- raised in the user's own code keep their position.
function _M.rethrow(err, name, shift)
  if type(err) ~= "string" then error(err, 0) end
  local msg = strip(err)
  if msg == err and err:find("^[^\n]-:%d+: ") then error(err, 0) end -- the user's own
  if name then
    local n = msg:match("^bad argument #(%d+) to '%?'")
    if n and shift then
      msg = msg:gsub("^bad argument #%d+ to '%?'", ("bad argument #%d to '%s'"):format(n - shift, name), 1)
    else
      msg = msg:gsub("^bad argument #(%d+) to '[^']*'", "bad argument #%1 to '" .. name .. "'", 1)
    end
  end
  error(msg, user_level())
end

--- non_list_key(t): the first key of table t that is not in 1..#t (a
-- hole makes one of them lie beyond #t, or #t stop short), or nil when t
-- is a list.
function _M.non_list_key(t)
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k % 1 ~= 0 or k < 1 or k > n then return k end
  end
  return nil
end

--- is_callable(f): a function, or a table whose metatable has __call.
function _M.is_callable(f)
  if type(f) == "function" then return true end
  local mt = type(f) == "table" and getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

--- For the Lua wrappers of a C cache (hicache.openresty, hicache.memory):
-- self of a method, a wrapper table holding the C cache in _core, else the
-- argument error the C method would raise (cache.get("k") instead of
-- cache:get("k")).
function _M.wrapped_self(self, name)
  if type(self) ~= "table" or rawget(self, "_core") == nil then
    _M.raise(("bad argument #1 to '%s' (hicache.client expected, got %s)"):format(name, type(self)))
  end
  return self
end

--- Whether f is a C function (a method of the C cache, not of the Lua layer).
function _M.is_c(f)
  return type(f) == "function" and getinfo(f, "S").what == "C"
end

return _M
