-- hicache's own connection (src/transport/hc_sock.c, hc_conn.c): one write and one
-- read per get on a live pooled connection, the idle poll threshold, the
-- retry of a read on a connection the server had closed (never a write,
-- never once a byte of the reply came), a bounded host-name lookup, IPv6.
local H = require "helper"
local hicache = H.hicache

local proxy = H.faultproxy

local function count(events, word)
  local n = 0
  for _, e in ipairs(events) do
    if e:match("^" .. word .. " ") then n = n + 1 end
  end
  return n
end

describe("retry of a read on a pooled connection the server closed", function()
  local admin, c
  before_each(function()
    admin = H.cache { prefix = "cn" }
    admin:set("k", "v1")
    -- idle_poll = 60: no poll(2) on checkout, so the first use finds out
    c = H.cache { prefix = "cn", pool = { idle_poll = 60 } }
  end)
  after_each(function() c:close() end)

  local function kill_pooled()
    local id = H.client_id(c)         -- the one pooled connection
    assert.equal(1, admin:command("CLIENT", "KILL", "ID", tostring(id)))
  end

  it("a get after CLIENT KILL is sent again on a new connection, invisibly", function()
    assert.equal("v1", c:get("k"))
    kill_pooled()
    local v, err = c:get("k")
    assert.is_nil(err)
    assert.equal("v1", v)
    local st = c:pool_stats()
    assert.equal(2, st.created)
    assert.equal(1, st.closed)
  end)

  it("get_many and has_key and ttl are retried too", function()
    for _, read in ipairs {
      function() return c:get_many { "k" } end,
      function() return c:has_key("k") end,
      function() return c:ttl("k") end,
    } do
      assert.truthy(c:get("k"))
      kill_pooled()
      local v, err = read()
      assert.is_nil(err)
      assert.truthy(v)
    end
  end)

  it("a write is never retried: set after CLIENT KILL returns the error, stores nothing", function()
    assert.is_true(c:set("k", "v1"))      -- the WRITE script is loaded
    kill_pooled()
    local ok, err = c:set("k", "v2")
    assert.is_nil(ok)
    assert.matches("^connection ", err)   -- closed / reset
    assert.equal("v1", admin:get("k"))
    assert.is_true(c:set("k", "v3"))      -- the next call opens a new connection
    assert.equal("v3", admin:get("k"))
  end)

  it("a script (incr, delete) after CLIENT KILL is not retried either", function()
    c:set("n", 1)
    assert.equal(2, c:incr("n"))
    kill_pooled()
    local v, err = c:incr("n")
    assert.is_nil(v)
    assert.is_string(err)
    assert.equal(2, admin:get("n"))
  end)

  it("retries once only, polling the other idle connections first", function()
    -- three idle connections, all killed (a restart does that)
    local rs, ids = {}, {}
    for i = 1, 3 do
      rs[i] = assert(c:reserve())
      ids[i] = assert(rs[i]:command("CLIENT", "ID"))
    end
    for i = 1, 3 do rs[i]:release() end
    for i = 1, 3 do admin:command("CLIENT", "KILL", "ID", tostring(ids[i])) end
    local before = c:pool_stats().created
    local v, err = c:get("k")
    assert.is_nil(err)
    assert.equal("v1", v)
    local st = c:pool_stats()
    assert.equal(before + 1, st.created)  -- one new connection, not three tries
    assert.equal(3, st.closed)
  end)

  it("with pool.idle_poll = 0 a closed idle connection is found at checkout: even a write works", function()
    local p = H.cache { prefix = "cn", pool = { idle_poll = 0 } }
    assert.equal("v1", p:get("k"))
    assert.equal(1, admin:command("CLIENT", "KILL", "ID", tostring(H.client_id(p))))
    assert.is_true(p:set("k", "v4"))
    assert.equal("v4", admin:get("k"))
    p:close()
  end)
end)

describe("no retry once anything of the reply was read", function()
  it("a reply cut after 3 bytes is an error, and the get is not sent again", function()
    local port, events, stop = proxy { "pass,cut:3" }
    finally(stop)
    H.cache { prefix = "cn" }:set("k", "v1")
    local c = H.cache { port = port, prefix = "cn", pool = { idle_poll = 60 } }
    assert.equal("PONG", c:command("PING"))
    local v, err = c:get("k")
    assert.is_nil(v)
    assert.equal("connection closed", err)
    assert.equal(1, count(events(), "accept"))
    assert.equal(2, count(events(), "request"))
    c:close()
  end)

  it("the server closing an idle connection (proxy) is retried, by the same rule as CLIENT KILL", function()
    local port, events, stop = proxy { "close" }
    finally(stop)
    H.cache { prefix = "cn" }:set("k", "v1")
    local c = H.cache { port = port, prefix = "cn", pool = { idle_poll = 60 } }
    assert.equal("PONG", c:command("PING"))
    H.posix.sleep(0.1)
    assert.equal("v1", c:get("k"))
    assert.equal(2, count(events(), "accept"))
    c:close()
  end)

  it("a new connection that fails is not retried (nothing says the server closed an idle one)", function()
    local port, events, stop = proxy { "cut:0" }
    finally(stop)
    local c = H.cache { port = port, prefix = "cn" }
    local v, err = c:get("k")
    assert.is_nil(v)
    assert.equal("connection closed", err)
    assert.equal(1, count(events(), "accept"))
    c:close()
  end)
end)

describe("connecting", function()
  it("resolves a host name (localhost) and connects over IPv6 (::1)", function()
    local c = H.cache { host = "localhost", port = H.port, prefix = "cn" }
    assert.is_true(c:set("k6", "v"))
    c:close()
    local probe = io.popen("python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind((\"::1\", 0))' 2>&1")
    local out = probe:read("a")
    probe:close()
    if out ~= "" then return pending("no IPv6 loopback here") end
    local port, _, stop = proxy({}, "::1")
    finally(stop)
    local c6 = H.cache { url = "redis://[::1]:" .. port, prefix = "cn" }
    assert.equal("v", c6:get("k6"))
    c6:close()
  end)

  it("a host name lookup that never answers gives up at the connect timeout", function()
    -- a private mount namespace whose resolv.conf names a DNS server that
    -- never answers (glibc would wait 10 s or more)
    local dir = H.dir .. "/dns"
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/resolv.conf", "w"))
    f:write("nameserver 127.0.0.77\noptions timeout:5 attempts:2\n")
    f:close()
    local ok = H.execute(("unshare -m sh -c 'mount --bind %s/resolv.conf /etc/resolv.conf' 2>/dev/null"):format(dir))
    if not ok then return pending("no private mount namespace here (unshare -m needs CAP_SYS_ADMIN)") end
    local dns = assert(io.popen([[exec /usr/bin/python3 -c '
import socket, os, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.77", 53))
print(os.getpid()); sys.stdout.flush()
while True: s.recvfrom(4096)' ]]))
    local pid = dns:read("l")
    if not pid then dns:close(); return pending("cannot listen on 127.0.0.77:53 (needs root)") end
    finally(function() os.execute("kill " .. pid .. " 2>/dev/null"); dns:close() end)
    local script = dir .. "/lookup.lua"
    f = assert(io.open(script, "w"))
    f:write([[
local hicache = require "hicache"
local c = assert(hicache.new { host = "redis.invalid-hicache.example", connect_timeout = 0.3 })
local t0 = hicache.now()
local v, err = c:get("k")
io.write(string.format("%s %s %.3f", tostring(v), tostring(err), hicache.now() - t0))
]])
    f:close()
    local p = io.popen(("unshare -m sh -c 'mount --bind %s/resolv.conf /etc/resolv.conf && exec %s %s'"):format(
      dir, H.lua_bin, script))
    local out = p:read("a")
    p:close()
    local v, err, secs = out:match("^(%S+) (%S+) ([%d.]+)$")
    assert.equal("nil", v, out)
    assert.equal("timeout", err)
    assert.is_true(tonumber(secs) < 2, out)   -- glibc alone: >= 10 s
  end)
end)

describe("syscalls", function()
  it("a get on a live pooled connection is one write and one read (strace)", function()
    if H.execute("strace -V >/dev/null 2>&1") ~= true then return pending("no strace") end
    if H.valgrind or H.asan then return pending("not under valgrind/ASan") end
    local dir = H.dir .. "/strace"
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/gets.lua", "w"))
    f:write(([[
local hicache = require "hicache"
local c = assert(hicache.new { host = %q, port = %d, prefix = "cn" })
assert(c:set("sk", { a = 1, b = "two" }))
local n = tonumber(arg[1])
for _ = 1, n do assert(c:get("sk")) end
]]):format(H.host, H.port))
    f:close()
    local function calls(n)
      local out = dir .. "/count." .. n
      if not H.execute(("strace -f -c -o %s %s %s/gets.lua %d >/dev/null 2>&1"):format(out, H.lua_bin, dir, n)) then
        return nil
      end
      local t = {}
      for line in io.lines(out) do
        local k, name = line:match("^%s*[%d.]+%s+[%d.]+%s+%d+%s+(%d+)%s+%d*%s*(%S+)$")
        if k and name ~= "total" then t[name] = tonumber(k) end
      end
      return t
    end
    local base, many = calls(0), calls(2000)
    if not base or not many then return pending("strace cannot trace here") end
    local per = {}
    for name, k in pairs(many) do
      local d = (k - (base[name] or 0)) / 2000
      if d > 0.01 then per[name] = d end
    end
    local total = 0
    for _, d in pairs(per) do total = total + d end
    local s = {}
    for k, d in pairs(per) do s[#s + 1] = k .. "=" .. string.format("%.2f", d) end
    assert.is_true(total <= 2.02, "syscalls per get: " .. table.concat(s, " "))
    assert.is_nil(per.poll)
  end)
end)
