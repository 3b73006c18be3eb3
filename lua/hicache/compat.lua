--- hicache.compat: what the Lua layer needs from Lua 5.4 that LuaJIT
-- (the Lua 5.1 API, OpenResty) spells differently. Every module of the
-- layer runs unchanged on both.

local select, load = select, load or loadstring -- luacheck: ignore 113

local _M = {}

--- pack(...) -> { n = select("#", ...), ... }
_M.pack = table.pack or function(...) return { n = select("#", ...), ... } end

--- unpack(t, i, j)
_M.unpack = table.unpack or rawget(_G, "unpack")

--- bor(a, b) -> a | b for the small non-negative bit sets of core.EV
local has_bit, bit = pcall(require, "bit")
if has_bit and type(bit) == "table" and bit.bor then
  _M.bor = bit.bor
else
  _M.bor = load("return function(a, b) return a | b end")()
end

--- luajit: true on LuaJIT (numbers are doubles: integers beyond 2^53 are
-- not exact, so the C core returns such Redis integers as strings)
_M.luajit = rawget(_G, "jit") ~= nil

-- The length of the strict UTF-8 sequence at s[i] (no overlong forms, no
-- surrogates, nothing above U+10FFFF), or nil.
local byte = string.byte
local function utf8_seq(s, i)
  local c = byte(s, i)
  if c < 0x80 then return 1 end
  local n, min
  if c >= 0xC2 and c <= 0xDF then n, min = 2, 0x80
  elseif c >= 0xE0 and c <= 0xEF then n, min = 3, 0x800
  elseif c >= 0xF0 and c <= 0xF4 then n, min = 4, 0x10000
  else return nil end
  local cp = c % (2 ^ (7 - n))
  for k = 1, n - 1 do
    local b = byte(s, i + k)
    if b == nil or b < 0x80 or b > 0xBF then return nil end
    cp = cp * 64 + (b - 0x80)
  end
  if cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF) then return nil end
  return n
end

--- utf8_valid(s) -> s with each byte that does not start a valid UTF-8
-- sequence replaced by U+FFFD
function _M.utf8_valid(s)
  if not s:find("[\128-\255]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local len = utf8_seq(s, i)
    if len then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = "\239\191\189" -- U+FFFD
      i = i + 1
    end
  end
  return table.concat(out)
end

return _M
