-- TLS (src/transport/hc_tls.c): rediss:// and the tls option against the
-- harness's TLS port and extra servers with certificates from the test PKI
-- (spec/helpers/mkcerts.sh): verification on by default, host names,
-- verify = false, mutual TLS, ACL users, the handshake within the connect
-- timeout, CLIENT KILL, pooling and fork.
local H = require "helper"
local hicache = H.hicache

local CA = H.tls_dir .. "/ca.crt"
local SECRET = "Tls-S3cret-Pw"

local function tls_cache(opts)
  opts = opts or {}
  if not opts.url and not opts.port then opts.url = "rediss://127.0.0.1:" .. H.tls_port .. "/0" end
  if opts.tls == nil then opts.tls = { ca_file = CA } end
  opts.prefix = opts.prefix or "tls"
  return H.cache(opts)
end

describe("TLS to the test server", function()
  local c
  before_each(function() c = tls_cache() end)
  after_each(function() c:clear(); c:close() end)

  it("get, set, get_or_set, lock and with_lock work over rediss://", function()
    local v = { id = 7, name = "ada", roles = { "admin" } }
    assert.is_true(c:set("u", v))
    assert.same(v, c:get("u"))
    assert.same({ v, nil, "hit" }, { c:get_or_set("u", error) })
    assert.same({ "fresh", nil, "miss" }, { c:get_or_set("n", function() return "fresh" end) })
    local lock = assert(c:lock("job", { ttl = 5 }))
    assert.is_true(lock:owned())
    assert.is_true(lock:release())
    assert.equal(42, c:with_lock("job", { ttl = 5 }, function() return 42 end))
    -- the same data seen over plain TCP
    assert.same(v, H.cache { prefix = "tls" }:get("u"))
  end)

  it("host/port with a tls table, and a host name verified against the certificate", function()
    local byname = tls_cache { host = "localhost", port = H.tls_port }
    assert.is_true(byname:set("k", 1))
    assert.equal(1, byname:get("k"))
    assert.matches("^hicache.client %(rediss://localhost:" .. H.tls_port .. "/0%)", tostring(byname))
    byname:close()
  end)

  it("tls.ca_path: a hashed directory of CAs (openssl rehash)", function()
    local dir = H.dir .. "/capath"
    assert(H.execute(("mkdir -p %s && cp %s %s/ && openssl rehash %s >/dev/null 2>&1"):format(dir, CA, dir, dir)))
    local p = tls_cache { tls = { ca_path = dir } }
    assert.is_true(p:set("cp", 1))
    assert.equal(1, p:get("cp"))
    p:close()
    local empty = H.dir .. "/capath-empty"
    os.execute("mkdir -p " .. empty)
    local e = tls_cache { tls = { ca_path = empty } }
    local v, err = e:get("cp")
    assert.is_nil(v)
    assert.matches("certificate verify failed", err, 1, true)
    e:close()
  end)

  it("is pooled: many commands, one connection, one handshake", function()
    for i = 1, 200 do assert.is_true(c:set("p" .. i % 7, i)) end
    for i = 1, 200 do assert.truthy(c:get("p" .. i % 7)) end
    local st = c:pool_stats()
    assert.equal(1, st.created)
    assert.equal(0, st.errors)
  end)

  it("a killed TLS connection is replaced like a plain one", function()
    assert.is_true(c:set("k", "v"))
    local id = H.client_id(c)
    assert.equal(1, H.admin():command("CLIENT", "KILL", "ID", tostring(id)))
    assert.equal("v", c:get("k"))            -- a read: retried on a new connection
    assert.is_true(c:set("k", "w"))
    assert.equal(2, c:pool_stats().created)
    assert.is_true(H.admin():command("CLIENT", "ID") ~= id)
  end)

  it("a child process opens its own TLS connection; the parent's still works", function()
    assert.is_true(c:set("f", "parent"))
    local before = H.client_id(c)
    local codes = H.fork_all(3, function(i)
      assert(c:get("f") == "parent")
      assert(c:set("child" .. i, i))
    end)
    H.all_zero(codes)
    assert.equal(before, H.client_id(c))     -- the same pooled session, untouched
    assert.equal("parent", c:get("f"))
    assert.equal(1, c:pool_stats().created)
    for i = 1, 3 do assert.equal(i, c:get("child" .. i)) end
  end)

  it("caches with different tls options do not share a pool", function()
    local a = tls_cache { pool = { backoff_max = 7 } }
    local b = tls_cache { pool = { backoff_max = 7 }, tls = { ca_file = CA, server_name = "localhost" } }
    local a2 = tls_cache { pool = { backoff_max = 7 } }
    assert.equal(2, a:pool_stats().caches)    -- a and a2
    assert.equal(1, b:pool_stats().caches)
    a:close(); b:close(); a2:close()
  end)

  it("TLS with an ACL user: AUTH over the encrypted connection, no password in errors", function()
    local admin = H.admin()
    assert(admin:command("ACL", "SETUSER", "tlsuser", "on", ">" .. SECRET, "~*", "+@all"))
    finally(function() admin:command("ACL", "DELUSER", "tlsuser") end)
    local u = tls_cache { url = "rediss://tlsuser:" .. SECRET .. "@127.0.0.1:" .. H.tls_port .. "/0" }
    assert.is_true(u:set("acl", "ok"))
    assert.equal("tlsuser", u:command("ACL", "WHOAMI"))
    -- the same user given as options, with host/port and a tls table
    local o = tls_cache { host = "127.0.0.1", port = H.tls_port, username = "tlsuser", password = SECRET }
    assert.equal("ok", o:get("acl"))
    assert.equal("tlsuser", o:command("ACL", "WHOAMI"))
    o:close()
    local bad = tls_cache { url = "rediss://tlsuser:Wrong-" .. SECRET .. "@127.0.0.1:" .. H.tls_port .. "/0" }
    local v, err = bad:get("acl")
    assert.is_nil(v)
    assert.matches("^auth failed: WRONGPASS", err)
    assert.is_nil(err:find(SECRET, 1, true))
    u:close(); bad:close()
  end)
end)

describe("TLS verification", function()
  it("refuses a certificate from another CA, without the password in the message", function()
    local srv = H.start_redis { tls = true, cert = "other-server", conf = { "requirepass " .. SECRET } }
    finally(srv.stop)
    local c = tls_cache { url = "rediss://:" .. SECRET .. "@127.0.0.1:" .. srv.tls_port .. "/0" }
    local v, err = c:get("k")
    assert.is_nil(v)
    assert.matches("certificate verify failed", err, 1, true)
    assert.is_nil(err:find(SECRET, 1, true))
    assert.is_nil(tostring(c):find(SECRET, 1, true))
    -- the system's CAs do not know the test CA either
    local sys = tls_cache { url = "rediss://:" .. SECRET .. "@127.0.0.1:" .. H.tls_port .. "/0", tls = true }
    v, err = sys:get("k")
    assert.is_nil(v)
    assert.matches("certificate verify failed", err, 1, true)
    -- verify = false connects (encryption without authentication)
    local nov = tls_cache { url = "rediss://:" .. SECRET .. "@127.0.0.1:" .. srv.tls_port .. "/0",
                            tls = { verify = false } }
    assert.is_true(nov:set("k", "v"))
    c:close(); sys:close(); nov:close()
  end)

  it("refuses a certificate that does not name the host; server_name or verify = false accept it", function()
    local srv = H.start_redis { tls = true, cert = "wrong-host" }
    finally(srv.stop)
    local url = "rediss://127.0.0.1:" .. srv.tls_port .. "/0"
    local c = tls_cache { url = url }
    local v, err = c:get("k")
    assert.is_nil(v)
    assert.equal("tls: certificate verify failed (ip address mismatch)", err)
    local byname = tls_cache { host = "localhost", port = srv.tls_port }
    v, err = byname:get("k")
    assert.is_nil(v)
    assert.equal("tls: certificate verify failed (hostname mismatch)", err)
    local named = tls_cache { url = url, tls = { ca_file = CA, server_name = "wrong.example" } }
    assert.is_true(named:set("k", "v"))
    local nov = tls_cache { url = url, tls = { verify = false } }
    assert.equal("v", nov:get("k"))
    c:close(); byname:close(); named:close(); nov:close()
  end)

  it("mutual TLS: a server that requires a client certificate refuses a client without one", function()
    local srv = H.start_redis { tls = true, client_certs = true }
    finally(srv.stop)
    local url = "rediss://127.0.0.1:" .. srv.tls_port .. "/0"
    local anon = tls_cache { url = url }
    local v, err = anon:get("k")
    assert.is_nil(v)
    assert.is_string(err)
    -- the server's alert ("tls: ... certificate required"), or its reset when
    -- the alert is lost to the RST that follows it
    assert.truthy(err:match("^tls: ") or err:match("^connection reset") or err:match("^connection closed"), err)
    local mtls = tls_cache { url = url, tls = { ca_file = CA, cert_file = H.tls_dir .. "/client.crt",
                                                 key_file = H.tls_dir .. "/client.key" } }
    assert.is_true(mtls:set("k", "v"))
    assert.equal("v", mtls:get("k"))
    anon:close(); mtls:close()
  end)
end)

describe("TLS timeouts and options", function()
  it("a listener that never completes the handshake: timeout within about connect_timeout", function()
    local silent = H.silent_listener()         -- the TCP connect succeeds, the ServerHello never comes
    finally(silent.stop)
    local c = tls_cache { url = "rediss://127.0.0.1:" .. silent.port .. "/0", connect_timeout = 0.3 }
    local t0 = hicache.now()
    local v, err = c:get("k")
    local took = hicache.now() - t0
    assert.is_nil(v)
    assert.equal("timeout", err)
    assert.is_true(took >= 0.25 and took < 2, "took " .. took)
    c:close()
  end)

  it("files that cannot be used: nil, err from hicache.new, naming the option", function()
    local url = "rediss://127.0.0.1:" .. H.tls_port .. "/0"
    assert.same({ nil, "tls: cannot read ca_file /nonexistent/ca.pem: no such file or directory" },
      { hicache.new { url = url, tls = { ca_file = "/nonexistent/ca.pem" } } })
    assert.same({ nil, "tls: cannot read ca_file /NoSuch/Dir/CA.pem: no such file or directory" },
      { hicache.new { url = url, tls = { ca_file = "/NoSuch/Dir/CA.pem" } } })
    local c, err = hicache.new { url = url, tls = { ca_file = CA, cert_file = H.tls_dir .. "/client.crt",
                                                    key_file = H.tls_dir .. "/server.key" } }
    assert.is_nil(c)
    assert.equal("tls: cannot load key_file: key values mismatch", err)
    c, err = hicache.new { url = url, tls = { ca_file = H.tls_dir .. "/client.key" } }
    assert.is_nil(c)
    assert.matches("^tls: cannot load ca_file", err)
    assert.is_nil(err:find("PRIVATE", 1, true))
  end)

  it("bad options raise at the caller's line, naming the option", function()
    local url = "rediss://127.0.0.1:" .. H.tls_port .. "/0"
    local line = debug.getinfo(1, "l").currentline
    local cases = {
      { { url = url, tls = 5 }, "invalid option 'tls': must be a table or a boolean" },
      { { url = url, tls = { verify = "no" } }, "invalid option 'tls.verify': must be a boolean" },
      { { url = url, tls = { cafile = CA } }, "unknown option 'tls.cafile'" },
      { { url = url, tls = { cert_file = CA } }, "invalid option 'tls.key_file': tls.cert_file and tls.key_file go together" },
      { { url = url, tls = { ca_file = "" } }, "invalid option 'tls.ca_file': must be a non-empty string" },
      { { url = url, tls = false }, "invalid option 'tls': cannot be false with a rediss:// URL" },
      { { path = "/tmp/x.sock", tls = true }, "invalid option 'tls.server_name': is required for TLS over a unix socket" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(hicache.new, case[1])
      assert.is_false(ok)
      assert.matches(case[2], err, 1, true)
    end
    local ok, err = pcall(function() hicache.new { url = url, tls = 5 } end)
    assert.is_false(ok)
    assert.matches("^spec/tls_spec.lua:" .. (line + 15) .. ": ", err)
  end)
end)
