-- spec/helpers/cli.lua -- runs bin/hicache as a real process for the CLI
-- specs (`local X = require "helpers.cli"`).
--
-- X.run(arg, ...) -> { code =, out =, err = }: bin/hicache with these
--   arguments (any bytes but NUL) under the interpreter of the run
--   (H.lua_bin: lua5.4, or luajit; with ASan's preload under ASan), its
--   stdout and stderr apart. LUA_PATH/LUA_CPATH come from spec/run.sh, so
--   the child loads the sources and the module under test.
-- X.url(port) -> "redis://127.0.0.1:<port>" (default: the test server)
-- X.json(text) -> the value of a JSON text, parsed by hicache's own JSON
--   serializer (no cjson needed): objects and arrays as tables, null inside
--   them as hicache.null.
-- X.lines(text) -> the list of its lines
local H = require "helper"

local X = {}

local root = assert(os.getenv("PWD"))
X.bin = root .. "/bin/hicache"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  os.remove(path)
  return s
end

function X.run(...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = q((select(i, ...))) end
  local base = ("%s/cli-%d-%d"):format(H.dir, H.posix.getpid(), math.random(1e9))
  local cmd = ("(%s %s %s >%s.out 2>%s.err)"):format(H.lua_bin, q(X.bin), table.concat(args, " "), base, base)
  local _, code = H.shell(cmd)
  return { code = code, out = slurp(base .. ".out"), err = slurp(base .. ".err") }
end

function X.url(port)
  return ("redis://%s:%d"):format(H.host, port or H.port)
end

local decoder
function X.json(text)
  decoder = decoder or H.cache { serializer = "json" }
  local v, err = decoder:decode(text)
  assert(err == nil, "not JSON: " .. tostring(err) .. "\n" .. text)
  return v
end

function X.lines(text)
  local t = {}
  for line in text:gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

return X
