local H = require "helper"
local hicache = H.hicache

local SECRET = "s3cr3t-P4ss"

local function raises(opts)
  local ok, err = pcall(function() local c = hicache.new(opts); return c end)
  assert.is_false(ok, "hicache.new should have raised")
  return err
end

describe("hicache.parse_url", function()
  it("parses host, port, db, user and password", function()
    local f = assert(hicache.parse_url("redis://alice:" .. SECRET .. "@cache.local:6380/4"))
    assert.same({ host = "cache.local", port = 6380, db = 4, username = "alice", password = SECRET }, f)
  end)

  it("parses password-only auth and percent-escapes", function()
    local f = assert(hicache.parse_url("redis://:p%40ss%3Aword@10.0.0.1"))
    assert.same({ host = "10.0.0.1", password = "p@ss:word" }, f)
    f = assert(hicache.parse_url("redis://%C3%A9l%C3%A8ve:pw@h"))
    assert.equal("élève", f.username)
  end)

  it("parses bracketed IPv6 hosts", function()
    assert.same({ host = "::1", port = 7000 }, hicache.parse_url("redis://[::1]:7000"))
  end)

  it("parses unix socket urls with ?db=", function()
    assert.same({ path = "/run/redis.sock", db = 2 }, hicache.parse_url("unix:///run/redis.sock?db=2"))
    assert.same({ path = "/tmp/r.sock", username = "u", password = "p" },
      hicache.parse_url("unix://u:p@/tmp/r.sock"))
  end)

  it("leaves defaults to hicache.new", function()
    assert.same({ host = "h" }, hicache.parse_url("redis://h"))
    assert.same({}, hicache.parse_url("redis://"))
  end)
end)

describe("hicache.new option checks", function()
  it("rejects bad urls with an error naming the field", function()
    for _, url in ipairs {
      "http://h:1", "redis://h:0", "redis://h:70000", "redis://h:12ab", "redis://h/-1",
      "redis://h/x", "unix://relative.sock", "unix:///s.sock?db=x", "unix:///s.sock?foo=1",
      "redis//h", "",
    } do
      local err = raises { url = url }
      assert.matches("invalid option 'url'", err, 1, true)
    end
  end)

  it("raises at the caller's line", function()
    local err = raises { port = "x" }
    assert.matches("config_spec.lua:%d+: invalid option 'port'", err)
  end)

  it("never puts a password into an error message", function()
    for _, url in ipairs {
      "redis://u:" .. SECRET .. "@h:99999", "redis://u:" .. SECRET .. "@h/zz",
      "redis://u:" .. SECRET .. "@h?x=1", "foo://u:" .. SECRET .. "@h",
    } do
      local err = raises { url = url }
      assert.is_nil(err:find(SECRET, 1, true), err)
    end
    local err = raises { password = SECRET, path = "/x", port = 1 }
    assert.is_nil(err:find(SECRET, 1, true), err)
  end)

  it("names each bad field", function()
    local cases = {
      { { port = 0 }, "port" }, { { port = 65536 }, "port" }, { { port = 1.5 }, "port" },
      { { db = -1 }, "db" }, { { db = "1" }, "db" }, { { host = 1 }, "host" }, { { host = "" }, "host" },
      { { path = "" }, "path" }, { { host = "h", path = "/p" }, "path" },
      { { path = "/p", port = 1 }, "port" }, { { username = "u" }, "username" },
      { { password = "a\0b" }, "password" }, { { username = "u\0", password = "p" }, "username" },
      { { path = "/tmp/a\0b" }, "path" }, { { host = "h\0x" }, "host" },
      { { timeout = 0 }, "timeout" }, { { timeout = -1 }, "timeout" }, { { timeout = "1" }, "timeout" },
      { { timeout = math.huge }, "timeout" }, { { timeout = 0 / 0 }, "timeout" },
      { { connect_timeout = 0 }, "connect_timeout" }, { { keepalive = "yes" }, "keepalive" },
      { { pool = 3 }, "pool" }, { { pool = { size = 0 } }, "pool.size" },
      { { pool = { size = 2.5 } }, "pool.size" }, { { pool = { wait = -1 } }, "pool.wait" },
      { { pool = { idle_check = "x" } }, "pool.idle_check" }, { { pool = { lifetime = -2 } }, "pool.lifetime" },
      { { url = "redis://h", host = "h" }, "host" }, { { url = 5 }, "url" },
    }
    for _, case in ipairs(cases) do
      local err = raises(case[1])
      assert.matches("invalid option '" .. case[2] .. "'", err, 1, true)
    end
  end)

  it("transport: auto and blocking outside OpenResty; cosocket only inside it", function()
    assert.matches([[invalid option 'transport': "cosocket" needs OpenResty (ngx.socket.tcp)]],
      raises { transport = "cosocket" }, 1, true)
    assert.matches([[invalid option 'transport': must be "auto", "blocking" or "cosocket"]],
      raises { transport = "nginx" }, 1, true)
    assert.matches("invalid option 'transport'", raises { transport = true }, 1, true)
    for _, t in ipairs { "auto", "blocking" } do
      local c = assert(hicache.new { host = os.getenv("HICACHE_TEST_HOST"),
                                     port = tonumber(os.getenv("HICACHE_TEST_PORT")), transport = t })
      assert.equal("userdata", type(c)) -- the C cache itself: the blocking socket
      assert.is_true(c:set("transport:" .. t, t))
      assert.equal(t, c:get("transport:" .. t))
      c:delete("transport:" .. t)
      c:close()
    end
  end)

  it("rejects unknown options (typos)", function()
    assert.matches("unknown option 'timout'", raises { timout = 1 }, 1, true)
    assert.matches("unknown option 'pool.sise'", raises { pool = { sise = 1 } }, 1, true)
    assert.matches("options must be a table", raises("redis://h"), 1, true)
  end)

  it("parses rediss:// as TLS, and hides the password in tostring", function()
    local f = assert(hicache.parse_url("rediss://u:" .. SECRET .. "@h:6380/2"))
    assert.same({ tls = true, host = "h", port = 6380, db = 2, username = "u", password = SECRET }, f)
    local c = assert(hicache.new { url = "rediss://u:" .. SECRET .. "@h:6380", tls = { verify = false } })
    assert.equal("rediss://u@h:6380/0", tostring(c):match("%((.-)%)"))
    assert.is_nil(tostring(c):find(SECRET, 1, true))
    c:close()
  end)

  it("hides the password in tostring(cache)", function()
    local c = hicache.new { url = "redis://bob:" .. SECRET .. "@127.0.0.1:6390/3" }
    local s = tostring(c)
    assert.matches("redis://bob@127.0.0.1:6390/3", s, 1, true)
    assert.is_nil(s:find(SECRET, 1, true))
    c:close()
    local u = hicache.new { path = "/tmp/x.sock", db = 1 }
    assert.matches("unix:///tmp/x.sock?db=1", tostring(u), 1, true)
  end)

  it("connects lazily: new() succeeds with no server", function()
    local c = hicache.new { port = 1 }
    assert.equal(0, c:pool_stats().created)
  end)
end)

describe("cluster and sentinel options", function()
  it("refuses a bad seed or sentinel list, naming the option", function()
    for _, bad in ipairs { {}, "127.0.0.1:7000", { "127.0.0.1" }, { "h:0" }, { "h:70000" }, { 7000 },
                           { "a b:1" }, { [2] = "h:1" } } do
      assert.matches("invalid option 'cluster'", raises { cluster = bad }, 1, true)
      assert.matches("invalid option 'sentinels'", raises { sentinels = bad, master_name = "m" }, 1, true)
    end
  end)

  it("refuses what a cluster or Sentinel group cannot do", function()
    assert.matches("invalid option 'host'", raises { cluster = { "h:1" }, host = "h" }, 1, true)
    assert.matches("invalid option 'path'", raises { cluster = { "h:1" }, path = "/x" }, 1, true)
    assert.matches("invalid option 'db'", raises { cluster = { "h:1" }, db = 1 }, 1, true)
    assert.matches("invalid option 'l1'", raises { cluster = { "h:1" }, l1 = true }, 1, true)
    assert.matches("invalid option 'l1'", raises { sentinels = { "h:1" }, master_name = "m", l1 = true }, 1, true)
    assert.matches("invalid option 'sentinels'", raises { cluster = { "h:1" }, sentinels = { "h:2" } }, 1, true)
    assert.matches("invalid option 'master_name'", raises { sentinels = { "h:1" } }, 1, true)
    assert.matches("invalid option 'master_name'", raises { sentinels = { "h:1" }, master_name = "a b" }, 1, true)
    assert.matches("invalid option 'master_name'", raises { master_name = "m" }, 1, true)
    assert.matches("invalid option 'sentinel_password'", raises { sentinel_password = "x" }, 1, true)
    assert.matches("invalid option 'sentinel_username'",
      raises { sentinels = { "h:1" }, master_name = "m", sentinel_username = "u" }, 1, true)
    assert.matches("invalid option 'cluster'", raises { backend = "memory", cluster = { "h:1" } }, 1, true)
    assert.matches("invalid option 'cluster'", raises { url = "redis+cluster://h:1", cluster = { "h:2" } }, 1, true)
  end)

  it("reads the URL forms, and never puts their password in an error", function()
    assert.matches("invalid option 'url'", raises { url = "redis+cluster://h:1,h:2/3" }, 1, true)
    assert.matches("invalid option 'url'", raises { url = "redis+sentinel://h:1" }, 1, true)
    assert.matches("invalid option 'cluster'", raises { url = "redis+cluster://u:" .. SECRET .. "@h" }, 1, true)
    for _, url in ipairs { "redis+cluster://u:" .. SECRET .. "@h:1/9", "redis+sentinel://u:" .. SECRET .. "@h",
                           "rediss+cluster://u:" .. SECRET .. "@h:0" } do
      local err = raises { url = url }
      assert.is_nil(err:find(SECRET, 1, true), err)
    end
  end)

  it("answers nil, err when no seed or sentinel answers", function()
    local port = 1 -- nothing listens there: refused at once
    local c, err = hicache.new { cluster = { "127.0.0.1:" .. port }, connect_timeout = 0.2 }
    assert.is_nil(c)
    assert.matches("^no cluster seed answered: ", err)
    c, err = hicache.new { url = "redis+cluster://127.0.0.1:" .. port, connect_timeout = 0.2 }
    assert.is_nil(c)
    assert.matches("^no cluster seed answered: ", err)
    c, err = hicache.new { sentinels = { "127.0.0.1:" .. port }, master_name = "m", connect_timeout = 0.2,
                           sentinel_password = SECRET }
    assert.is_nil(c)
    assert.matches("^no sentinel answered: ", err)
    assert.is_nil(err:find(SECRET, 1, true), err)
  end)

  it("a single server is not a cluster: its seed is refused", function()
    local c, err = hicache.new { cluster = { H.host .. ":" .. H.port } }
    assert.is_nil(c)
    assert.matches("^no cluster seed answered: .*cluster support disabled", err)
  end)
end)
