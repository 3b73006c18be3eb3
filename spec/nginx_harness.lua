--- A private nginx (OpenResty's lua module from Debian's packages) for the
-- specs: `nginx -p DIR -c DIR/conf/nginx.conf` on a free loopback port,
-- its error log in DIR, never the system service. Its handlers are the
-- functions of spec/openresty/app.lua (GET /t/<name>?args -> JSON), run
-- with the LuaJIT build of hicache (HICACHE_LUAJIT_MODDIR, default
-- build/luajit). spec/run.sh stops every nginx whose pid file is under its
-- temp dir, also when a spec run dies; stop() here is the normal way.
--
--   local nginx = require "nginx_harness"
--   local srv = nginx.start{ workers = 1 }
--   local res, code = srv:get("/t/basic")      -- decoded JSON, HTTP status
--   srv:stop()

local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

local H = {}

local root = os.getenv("PWD")
local MODULES = "/usr/lib/nginx/modules"

local function shell(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("*a")
  local ok, _, code = p:close()
  if type(ok) == "number" then code = ok end -- 5.1 (LuaJIT): close() gives the status
  return out, code or (ok and 0 or 1)
end
H.shell = shell

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
H.read = read

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local CONF = [[
worker_processes %d;
user root root;
daemon on;
master_process on;
pid %s/nginx.pid;
error_log %s/logs/error.log %s;
load_module %s/ndk_http_module.so;
load_module %s/ngx_http_lua_module.so;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path %s/tmp/body;
  proxy_temp_path %s/tmp/proxy;
  fastcgi_temp_path %s/tmp/fastcgi;
  uwsgi_temp_path %s/tmp/uwsgi;
  scgi_temp_path %s/tmp/scgi;
  lua_package_path "%s/lua/?.lua;%s/?.lua;%s/spec/openresty/?.lua;;";
  lua_package_cpath "%s/?.so;;";
  lua_ssl_trusted_certificate %s/ca.crt;
  lua_ssl_verify_depth 4;
  lua_shared_dict hc_results 1m;
  lua_socket_log_errors off;
  init_by_lua_block {
    package.loaded.hc_test_env = %s
    require("app").init()
  }
  init_worker_by_lua_block { require("app").init_worker() }
  server {
    listen 127.0.0.1:%d;
    server_rewrite_by_lua_block {
      if ngx.var.uri == "/server_rewrite_phase" then require("app").server_rewrite_phase() end
    }
    location /t/ { content_by_lua_block { require("app").dispatch() } }
    location = /log_phase {
      content_by_lua_block { ngx.say("ok") }
      log_by_lua_block { require("app").log_phase() }
    }
    location = /server_rewrite_phase { content_by_lua_block { ngx.say("ok") } }
    location = /header_filter_phase {
      content_by_lua_block { ngx.say("ok") }
      header_filter_by_lua_block { require("app").header_filter_phase() }
    }
    location = /set_phase {
      set_by_lua_block $r { return require("app").set_phase() }
      content_by_lua_block { ngx.say(ngx.var.r) }
    }
%s
  }
}
]]

-- A Lua table constructor of string/number fields.
local function lua_table(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = ("[%q] = %s"):format(k, type(v) == "number" and tostring(v) or ("%q"):format(v))
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

local Server = {}
Server.__index = Server

--- nginx.start{workers =, env = {extra fields for app.lua}, app_dir =
-- (where app.lua is, default spec/openresty), locations = (more nginx.conf
-- text for the server block), log_level =} -> server
function H.start(opts)
  opts = opts or {}
  local base = assert(os.getenv("HICACHE_TEST_DIR"), "run through spec/run.sh")
  local dir = ("%s/nginx-%d-%d"):format(base, os.time(), math.random(1e6))
  assert(os.execute(("mkdir -p %s/logs %s/tmp %s/conf"):format(dir, dir, dir)))
  local moddir = os.getenv("HICACHE_LUAJIT_MODDIR") or (root .. "/build/luajit")
  assert(io.open(moddir .. "/hicache/core.so"), "no LuaJIT build of hicache in " .. moddir
    .. " (make LUA=luajit)"):close()
  local env = {
    host = os.getenv("HICACHE_TEST_HOST"), port = tonumber(os.getenv("HICACHE_TEST_PORT")),
    socket = os.getenv("HICACHE_TEST_SOCKET"), tls_port = tonumber(os.getenv("HICACHE_TEST_TLS_PORT")),
    tls_dir = os.getenv("HICACHE_TEST_TLS_DIR"), dir = dir,
  }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local last
  for _ = 1, 10 do
    local port = free_port()
    local conf = CONF:format(opts.workers or 1, dir, dir, opts.log_level or "warn", MODULES, MODULES,
      dir, dir, dir, dir, dir, root, opts.app_dir or (root .. "/spec/openresty"), root, moddir, env.tls_dir,
      lua_table(env), port, opts.locations or "")
    local f = assert(io.open(dir .. "/conf/nginx.conf", "w"))
    f:write(conf)
    f:close()
    os.remove(dir .. "/nginx.pid")
    -- output to a file: the daemon keeps its inherited descriptors open
    local _, code = shell(("nginx -p %s -c %s/conf/nginx.conf -e %s/logs/error.log >%s/logs/start.log 2>&1")
      :format(dir, dir, dir, dir))
    local out = read(dir .. "/logs/start.log") or ""
    if code == 0 then
      local srv = setmetatable({ dir = dir, port = port, base = "http://127.0.0.1:" .. port }, Server)
      http.TIMEOUT = 2
      for _ = 1, 100 do
        local body = http.request(srv.base .. "/t/ping")
        if body then return srv end
        socket.sleep(0.05)
      end
      last = "nginx does not answer: " .. (read(dir .. "/logs/error.log") or "")
      srv:stop()
    else
      last = out .. (read(dir .. "/logs/error.log") or "")
      if not out:find("Address already in use") then break end
    end
  end
  error("could not start nginx: " .. tostring(last))
end

--- server:get(path) -> decoded JSON body (or the raw body), HTTP status
function Server:get(path, timeout)
  local chunks = {}
  http.TIMEOUT = timeout or 30
  local ok, code = http.request { url = self.base .. path, sink = ltn12.sink.table(chunks) }
  local body = table.concat(chunks)
  if not ok then error("GET " .. path .. ": " .. tostring(code)) end
  local okj, v = pcall(cjson.decode, body)
  if okj then return v, code end
  return body, code
end

--- server:call(name, query) -> the handler's result table; raises with
-- the handler's error (and the error log's tail) on a 500.
function Server:call(name, query)
  local res, code = self:get("/t/" .. name .. (query and ("?" .. query) or ""))
  if code ~= 200 then
    error(("/t/%s -> %s: %s"):format(name, tostring(code), type(res) == "table" and cjson.encode(res) or tostring(res)), 2)
  end
  return res
end

--- server:raw_request(path) -> a socket with the request sent (its
-- response not read yet): server:finish(sock) reads it.
function Server:send_request(path)
  local s = assert(socket.tcp())
  s:settimeout(30)
  assert(s:connect("127.0.0.1", self.port))
  assert(s:send(("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"):format(path)))
  return s
end

function Server:finish(s)
  local data = assert(s:receive("*a"))
  s:close()
  local body = data:match("\r\n\r\n(.*)$") or ""
  return cjson.decode(body), tonumber(data:match("^HTTP/%S+ (%d+)"))
end

function Server:error_log()
  return read(self.dir .. "/logs/error.log") or ""
end

--- server:stop(): QUIT (graceful), then TERM / KILL if it lingers.
function Server:stop()
  local pid = (read(self.dir .. "/nginx.pid") or ""):match("%d+")
  if not pid then return end
  os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
  for i = 1, 100 do
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then return end
    if i == 60 then os.execute("kill -TERM " .. pid .. " 2>/dev/null") end
    socket.sleep(0.05)
  end
  os.execute("kill -KILL " .. pid .. " 2>/dev/null")
end

return H
