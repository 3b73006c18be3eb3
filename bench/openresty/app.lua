-- The OpenResty benchmark's handlers (bench/openresty.lua): the same get
-- of a 10-field table through hicache and through a raw cosocket + cjson.
local hicache = require "hicache"
local cjson = require "cjson"

local env = package.loaded.hc_test_env
local ngx = ngx -- luacheck: ignore 113

local _M = {}

local cache

function _M.init() end

function _M.init_worker()
  cache = assert(hicache.new { host = env.host, port = env.port, prefix = "bench" })
end

-- hicache: one get (msgpack value, decoded in C)
function _M.hicache()
  local v, err = cache:get("profile")
  if not v then
    ngx.status = 500
    return ngx.say(tostring(err))
  end
  ngx.say(v.name)
end

-- the floor in OpenResty: GET over a raw cosocket from the same keepalive
-- pool size, the bulk reply read by length, cjson.decode
local KEY = "bench-raw:profile"
local REQ = ("*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n"):format(#KEY, KEY)
function _M.raw()
  local sock = ngx.socket.tcp()
  sock:settimeouts(1000, 1000, 1000)
  local ok, err = sock:connect(env.host, env.port, { pool = "bench-raw", pool_size = 16 })
  if ok then ok, err = sock:send(REQ) end
  local line
  if ok then line, err = sock:receive() end
  local body
  if line then
    body, err = sock:receive(tonumber(line:sub(2)) + 2)
  end
  if not body then
    sock:close()
    ngx.status = 500
    return ngx.say(tostring(err))
  end
  sock:setkeepalive(30000, 16)
  local v = cjson.decode(body:sub(1, -3))
  ngx.say(v.name)
end

-- a Lua handler that does nothing else
function _M.lua_nothing()
  ngx.say("ok")
end

-- n gets in one request: µs per get, without HTTP
function _M.loop()
  local n = tonumber(ngx.var.arg_n or 2000)
  local which = ngx.var.arg_w
  local t0 = os.clock()
  local say = ngx.say
  ngx.say = function() end
  for _ = 1, n do
    if which == "raw" then _M.raw() else _M.hicache() end
  end
  ngx.say = say
  ngx.say((os.clock() - t0) / n * 1e6)
end

-- for the harness's readiness probe
function _M.dispatch() ngx.say("{}") end

return _M
