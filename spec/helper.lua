-- Shared spec helpers: the test server's addresses (see spec/run.sh),
-- caches with their own pools, a restart, and subprocess runners.
local hicache = require "hicache"
local posix = require "hctest"

local H = {
  hicache = hicache,
  posix = posix,
  null = hicache.null,
  host = assert(os.getenv("HICACHE_TEST_HOST"), "run the specs with `make test`"),
  port = tonumber(os.getenv("HICACHE_TEST_PORT")),
  socket = os.getenv("HICACHE_TEST_SOCKET"),
  conf = os.getenv("HICACHE_TEST_CONF"),
  dir = os.getenv("HICACHE_TEST_DIR"),
  build = os.getenv("HICACHE_TEST_BUILD"),
  valgrind = os.getenv("HICACHE_UNDER_VALGRIND") ~= nil,
  tls_port = tonumber(os.getenv("HICACHE_TEST_TLS_PORT")),
  tls_dir = os.getenv("HICACHE_TEST_TLS_DIR"),
}
-- busted loads this module once per spec file; the ASan preload is
-- remembered in the registry because the first load unsets it below.
do
  local reg = debug.getregistry()
  local preload = os.getenv("LD_PRELOAD") or ""
  if preload:find("asan") then reg.hicache_spec_asan_preload = preload end
  H.asan_preload = reg.hicache_spec_asan_preload
  H.asan = H.asan_preload ~= nil
end
-- The specs run under Lua 5.4 or LuaJIT (spec/run.sh: $LUA, default
-- lua5.4). H.luajit: true under LuaJIT (the Lua 5.1 API: no integer
-- subtype, Redis integers beyond 2^53 come back as decimal strings).
-- H.interpreter is the command of the interpreter running the specs, which
-- every Lua subprocess must use: hicache.core is built for one Lua only.
H.luajit = rawget(_G, "jit") ~= nil
H.interpreter = os.getenv("LUA")
if H.interpreter == nil or H.interpreter == "" then H.interpreter = H.luajit and "luajit" or "lua5.4" end
-- Lua 5.4 functions the specs use, under both interpreters.
H.unpack = table.unpack or rawget(_G, "unpack")
H.pack = table.pack or function(...) return { n = select("#", ...), ... } end

--- H.mtype(x): math.type(x). LuaJIT has no integer subtype: a number
-- counts as an "integer" when it is integral and within the int64 range
-- (what hicache stores as an integer there), else as a "float" (so is
-- -0.0, as on 5.4).
H.mtype = math.type or function(x)
  if type(x) ~= "number" then return nil end
  if x == 0 and 1 / x < 0 then return "float" end -- -0.0 keeps its sign (compat.h)
  if x == math.floor(x) and x >= -2 ^ 63 and x < 2 ^ 63 then return "integer" end
  return "float"
end

--- H.int(s): the int64 with decimal digits s as hicache returns a Redis
-- integer: on Lua 5.4 an integer; on LuaJIT a number up to 2^53 in
-- magnitude, beyond that the decimal string s itself (exact).
function H.int(s)
  local digits = assert(s:match("^%-?(%d+)$"), "decimal digits expected")
  if math.tointeger then return assert(math.tointeger(tonumber(s)), "not an int64: " .. s) end
  if #digits < 16 or (#digits == 16 and digits <= "9007199254740992") then return tonumber(s) end
  return s
end
-- H.bor(a, b): a | b (LuaJIT: the bit library)
H.bor = H.luajit and require("bit").bor or load("return function(a, b) return a | b end")()

H.INT64_MAX = H.int("9223372036854775807") -- math.maxinteger on Lua 5.4
H.INT64_MIN = H.int("-9223372036854775808") -- math.mininteger on Lua 5.4

--- H.set_int(c, key, s): stores the int64 with decimal digits s under key
-- of cache c as hicache stores an integer (its decimal text): c:set with
-- the number where Lua has it (always on 5.4), else (LuaJIT beyond 2^53)
-- the same bytes with a raw SET.
function H.set_int(c, key, s)
  local v = H.int(s)
  if type(v) == "number" then return c:set(key, v) end
  return H.admin():command("SET", c:_key(key), s) == "OK"
end
-- This process keeps the ASan runtime it was started with; the shell tools
-- and programs the specs spawn do not need it (hc_threads links it itself).
-- H.lua_bin is the command for a Lua subprocess that loads hicache.
H.lua_bin = H.interpreter
if H.asan then
  H.lua_bin = ("env LD_PRELOAD=%q %s"):format(H.asan_preload, H.interpreter)
  posix.unsetenv("LD_PRELOAD")
end

--- A TCP cache with a pool of its own (pools are shared by identical
-- settings, so each call varies pool.backoff_max by a hair). The counter
-- lives in the registry because busted reloads this module per spec file.
function H.cache(opts)
  opts = opts or {}
  local reg = debug.getregistry()
  reg.hicache_spec_unique = (reg.hicache_spec_unique or 0) + 1
  local unique = reg.hicache_spec_unique
  if opts.url == nil and opts.path == nil and opts.host == nil then
    opts.host, opts.port = H.host, opts.port or H.port
  end
  opts.pool = opts.pool or {}
  opts.pool.backoff_max = opts.pool.backoff_max or (1 + unique / 1e6)
  return assert(hicache.new(opts))
end

--- A cache for administrative commands in specs.
local admin
function H.admin()
  admin = admin or H.cache()
  return admin
end

function H.client_id(c)
  return assert(c:command("CLIENT", "ID"))
end

-- Lua 5.2+ (and LuaJIT built with LUAJIT_ENABLE_LUA52COMPAT) return a
-- command's exit status from os.execute and a popen'ed file's close;
-- plain LuaJIT returns the raw wait status resp. always true.
local status_52 = type(os.execute("exit 3")) ~= "number"

--- Runs cmd (sh) with its stderr merged into its stdout; returns the
-- output, the exit status (0: success) and "exit" (or "signal").
function H.shell(cmd)
  if status_52 then
    local f = assert(io.popen(cmd .. " 2>&1"))
    local out = f:read("a")
    local ok, how, code = f:close()
    return out, ok and 0 or code, how
  end
  -- the shell prints the status after the output
  local f = assert(io.popen(cmd .. " 2>&1; printf '\\n%d' $?"))
  local all = f:read("a")
  f:close()
  local out, code = all:match("^(.*)\n(%d+)$")
  code = assert(tonumber(code), "no exit status from sh")
  return out, code, code > 128 and code < 160 and "signal" or "exit"
end

--- os.execute(cmd) as Lua 5.4 returns it: true | nil, "exit", status.
function H.execute(cmd)
  if status_52 then return os.execute(cmd) end
  local st = os.execute(cmd) -- the wait status
  if st == 0 then return true, "exit", 0 end
  if st % 256 == 0 then return nil, "exit", st / 256 end
  return nil, "signal", st % 128
end

--- Restarts the test server on the same addresses (data is lost).
function H.restart_redis()
  local cli = "redis-cli -s " .. H.socket
  H.shell(cli .. " shutdown nosave")
  for _ = 1, 100 do
    if H.shell(cli .. " ping"):find("PONG") == nil then break end
    posix.sleep(0.05)
  end
  local out, code = H.shell("redis-server " .. H.conf)
  assert(code == 0, "redis-server: " .. out)
  for _ = 1, 100 do
    if H.shell(cli .. " ping"):find("PONG") then return end
    posix.sleep(0.05)
  end
  error("redis-server did not come back")
end

--- Starts another throwaway redis-server (in a subdirectory of the test
-- dir, on free loopback ports) with extra config lines; tls = true gives
-- it a TLS port with cert (default "server") from the test PKI. Returns
-- {port =, tls_port =, stop = function}; call stop() in a finally.
function H.start_redis(opts)
  opts = opts or {}
  local reg = debug.getregistry()
  reg.hicache_spec_servers = (reg.hicache_spec_servers or 0) + 1
  -- per process: the LuaJIT run shares the temp dir with the Lua 5.4 run,
  -- and an old redis.log saying "Ready" must not pass for the new server's
  local dir = ("%s/extra%d-%d"):format(H.dir, posix.getpid(), reg.hicache_spec_servers)
  os.execute("mkdir -p " .. dir)
  for _ = 1, 20 do
    local port = 20000 + math.random(0, 39999)
    local tls_port = opts.tls and 20000 + math.random(0, 39999) or nil
    local conf = {
      "bind 127.0.0.1", "port " .. (opts.tls and 0 or port), "daemonize yes",
      "pidfile " .. dir .. "/redis.pid", "logfile " .. dir .. "/redis.log", "dir " .. dir,
      'save ""', "appendonly no",
    }
    if opts.tls then
      local cert = opts.cert or "server"
      conf[#conf + 1] = "tls-port " .. tls_port
      conf[#conf + 1] = ("tls-cert-file %s/%s.crt"):format(H.tls_dir, cert)
      conf[#conf + 1] = ("tls-key-file %s/%s.key"):format(H.tls_dir, cert)
      conf[#conf + 1] = ("tls-ca-cert-file %s/ca.crt"):format(H.tls_dir)
      conf[#conf + 1] = "tls-auth-clients " .. (opts.client_certs and "yes" or "no")
    end
    for _, line in ipairs(opts.conf or {}) do conf[#conf + 1] = line end
    local f = assert(io.open(dir .. "/redis.conf", "w"))
    f:write(table.concat(conf, "\n"), "\n")
    f:close()
    os.remove(dir .. "/redis.pid")
    os.remove(dir .. "/redis.log") -- what it says must be this attempt's
    local _, code = H.shell("redis-server " .. dir .. "/redis.conf")
    if code == 0 then
      for _ = 1, 100 do
        local pf = io.open(dir .. "/redis.pid")
        local pid = pf and pf:read("l")
        if pf then pf:close() end
        local log = io.open(dir .. "/redis.log")
        local text = log and log:read("a") or ""
        if log then log:close() end
        if pid and text:find("Ready to accept connections") then
          local server = { port = (not opts.tls) and port or nil, tls_port = tls_port, dir = dir }
          function server.stop()
            os.execute("kill " .. pid .. " 2>/dev/null")
            for _ = 1, 100 do
              if not H.execute("kill -0 " .. pid .. " 2>/dev/null") then return end
              posix.sleep(0.05)
            end
            os.execute("kill -9 " .. pid .. " 2>/dev/null")
          end
          return server
        end
        if text:find("Address already in use") then break end
        posix.sleep(0.05)
      end
      local pf = io.open(dir .. "/redis.pid")
      if pf then os.execute("kill " .. pf:read("l") .. " 2>/dev/null"); pf:close() end
    end
  end
  error("could not start an extra redis-server (see " .. dir .. "/redis.log)")
end

--- A loopback TCP listener that never accepts and never answers: the
-- kernel completes the TCP handshake from its backlog, so a connect
-- succeeds and then every read waits (a TLS handshake, a command). Lives
-- in this process (LuaSocket), nothing to leak. Returns
-- {port =, stop = function}; stop() (or :stop()) closes it, at most once;
-- call it in a finally.
function H.silent_listener()
  local socket = require "socket"
  local server = assert(socket.bind("127.0.0.1", 0, 64))
  local _, port = server:getsockname()
  local l = { port = tonumber(port) }
  function l.stop()
    if server then server:close(); server = nil end
  end
  return l
end

--- Runs a Lua chunk in a fresh process of the interpreter running the
-- specs (H.lua_bin); returns its output and code.
function H.lua(code)
  local path = H.dir .. "/chunk" .. tostring(math.random(1e9)) .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local out, status = H.shell(H.lua_bin .. " " .. path)
  os.remove(path)
  return out, status
end

--- Forks n children that each run fn(i) and exit with 0 (or 1 if fn
-- raised, printing the error). Returns when all have exited, with the
-- list of exit codes. The children start together: each one waits on the
-- Redis list `go` until the parent pushes n tokens.
function H.fork_all(n, fn, go)
  local admin = H.admin()
  go = go or ("go:" .. tostring(posix.getpid()) .. ":" .. tostring(math.random(1e9)))
  local pids = {}
  for i = 1, n do
    local pid = posix.fork()
    if pid == 0 then
      local ok, err = pcall(function()
        local c = H.cache { timeout = 30 }
        local conn = assert(c:reserve())
        conn:set_timeout(60)
        assert(conn:command("BLPOP", go, 30) ~= H.null, "never released")
        conn:release()
        fn(i)
      end)
      if not ok then io.stderr:write("child ", i, ": ", tostring(err), "\n") end
      posix._exit(ok and 0 or 1)
    end
    pids[i] = pid
  end
  local tokens = { "RPUSH", go }
  for i = 1, n do tokens[#tokens + 1] = "1" end
  admin:command(H.unpack(tokens))
  local codes = {}
  for i, pid in ipairs(pids) do codes[i] = posix.waitpid(pid) end
  admin:command("DEL", go)
  return codes
end

--- Asserts every code is 0.
function H.all_zero(codes)
  for i, code in ipairs(codes) do assert(code == 0, ("child %d exited with %d"):format(i, code)) end
end

--- H.faultproxy(plans, bind): spec/helpers/faultproxy.py in front of the
-- test server with one plan per accepted connection. Returns port,
-- events(), stop().
function H.faultproxy(plans, bind)
  local log = os.tmpname()
  local cmd = ("exec env FAULTPROXY_BIND=%s /usr/bin/python3 spec/helpers/faultproxy.py %d %s %s"):format(
    bind or "127.0.0.1", H.port, log, table.concat(plans, " "))
  local f = assert(io.popen(cmd .. " & echo $!"))
  local pid = f:read("l")
  f:close()
  local port
  for _ = 1, 100 do
    local pf = io.open(log .. ".port")
    port = pf and tonumber(pf:read("l") or "")
    if pf then pf:close() end
    if port then break end
    H.posix.sleep(0.05)
  end
  assert(port, "faultproxy did not start")
  local function events()
    local t = {}
    local lf = io.open(log)
    if lf then
      for line in lf:lines() do t[#t + 1] = line end
      lf:close()
    end
    return t
  end
  return port, events, function()
    os.execute("kill " .. pid .. " 2>/dev/null")
    os.remove(log)
    os.remove(log .. ".port")
  end
end

-- ---- faults on a private server (H.start_redis) -------------------------
-- spec/faults_spec.lua, spec/waitbound_spec.lua and bench/recovery.lua
-- break a server of their own with these. The server table is the one
-- H.start_redis returned (plain TCP port); H.restart keeps its stop()
-- working on the new process.

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- H.redis_pid(server): the pid in the server's pid file (nil: none).
function H.redis_pid(server)
  local f = io.open(server.dir .. "/redis.pid")
  local pid = f and tonumber(f:read("l") or "")
  if f then f:close() end
  return pid
end

--- H.redis_cli(server, ...): redis-cli with these arguments against the
-- server's port; returns its output (trailing newline removed) and code.
function H.redis_cli(server, ...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = sh_quote((select(i, ...))) end
  local out, code = H.shell(("redis-cli -h 127.0.0.1 -p %d %s"):format(assert(server.port, "a plain TCP port"),
    table.concat(args, " ")))
  return (out:gsub("\n$", "")), code
end

-- true while pid is a process that has not exited (a zombie has).
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local stat = f:read("a") or ""
  f:close()
  return stat:match("^%d+ %b() (%a)") ~= "Z"
end

--- H.kill9(server): SIGKILL (also when stopped); returns once the process
-- is gone, so the port is free for H.restart.
function H.kill9(server)
  local pid = assert(H.redis_pid(server), "kill9: no pid file in " .. server.dir)
  posix.kill(pid, 9)
  for _ = 1, 200 do
    if not alive(pid) then
      os.remove(server.dir .. "/redis.pid")
      return
    end
    posix.sleep(0.01)
  end
  error("kill9: redis-server " .. pid .. " did not die")
end

--- H.restart(server): starts the server again on the same port with the
-- same config (its data is gone: no persistence); returns once it answers
-- PING. server.stop() then stops the new process.
function H.restart(server)
  os.remove(server.dir .. "/redis.pid")
  local out, code = H.shell("redis-server " .. server.dir .. "/redis.conf")
  assert(code == 0, "restart: redis-server: " .. out)
  for _ = 1, 400 do
    local pid = H.redis_pid(server)
    if pid and H.redis_cli(server, "PING") == "PONG" then
      function server.stop()
        os.execute("kill " .. pid .. " 2>/dev/null")
        for _ = 1, 100 do
          if not alive(pid) then return end
          posix.sleep(0.05)
        end
        os.execute("kill -9 " .. pid .. " 2>/dev/null")
      end
      return
    end
    posix.sleep(0.01)
  end
  error("restart: redis-server did not come back (see " .. server.dir .. "/redis.log)")
end

--- H.sigstop(server) / H.sigcont(server): freeze / thaw the process. A
-- stopped server still completes TCP handshakes (the kernel's backlog) but
-- answers nothing. (server.stop() is the shutdown, hence the names.)
function H.sigstop(server)
  posix.kill(assert(H.redis_pid(server), "sigstop: no pid"), 19)
end
function H.sigcont(server)
  posix.kill(assert(H.redis_pid(server), "sigcont: no pid"), 18)
end

--- H.client_kill(server, {type = "normal"} | {id = n}): CLIENT KILL TYPE /
-- ID; returns how many connections were closed.
function H.client_kill(server, filter)
  local out
  if filter.id then
    out = H.redis_cli(server, "CLIENT", "KILL", "ID", filter.id)
  else
    out = H.redis_cli(server, "CLIENT", "KILL", "TYPE", filter.type or "normal")
  end
  return assert(tonumber(out:match("(%d+)%s*$")), "client kill: " .. out)
end

--- H.client_pause(server, ms): CLIENT PAUSE ms (every client: reads and
-- writes wait, the server does not close anything); returns at once.
function H.client_pause(server, ms)
  local out = H.redis_cli(server, "CLIENT", "PAUSE", math.floor(ms))
  assert(out == "OK", "client pause: " .. out)
end

--- H.debug_sleep(server, s): DEBUG SLEEP s (the server is busy for s and
-- answers nobody); returns when it is done. The server needs the config
-- line "enable-debug-command yes" (H.start_redis{conf = {...}}).
function H.debug_sleep(server, s)
  local out = H.redis_cli(server, "DEBUG", "SLEEP", s)
  assert(out == "OK", "debug sleep (enable-debug-command yes?): " .. out)
end

--- H.maxmemory(server, bytes): CONFIG SET maxmemory bytes with
-- maxmemory-policy noeviction (writes that need memory fail with OOM,
-- reads go on); bytes = 0 lifts the limit.
function H.maxmemory(server, bytes)
  local out = H.redis_cli(server, "CONFIG", "SET", "maxmemory-policy", "noeviction")
  assert(out == "OK", "config set maxmemory-policy: " .. out)
  out = H.redis_cli(server, "CONFIG", "SET", "maxmemory", math.floor(bytes))
  assert(out == "OK", "config set maxmemory: " .. out)
end

return H
