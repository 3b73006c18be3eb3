-- hicache inspect, run as a real process against data a real cache wrote:
-- every kind of key with its TTL, size, format, tags, soft expiry and
-- lease holder (a get_or_set in flight in another process), the JSON
-- output, patterns, other versions and prefixes left out, SCAN never
-- KEYS, progress on stderr only, --limit.
local H = require "helper"
local X = require "helpers.cli"
local posix = H.posix

local K1 = ("k1-key-material-0123456789abcdef"):sub(1, 32)

-- The rows of a JSON listing by Redis key.
local function by_key(rows)
  local t = {}
  for _, row in ipairs(rows) do t[row.key] = row end
  return t
end

-- The text rows by their KEY column: { kind =, ttl =, line = }.
local function text_rows(out)
  local lines = X.lines(out)
  local header = lines[1]
  assert.matches("^KIND +TTL +SIZE +KEY +DETAILS$", header)
  local at = header:find("KEY", 1, true)
  local t = {}
  for i = 2, #lines do
    local line = lines[i]
    local name = line:sub(at):match("^(%S+)")
    t[name] = { kind = line:match("^(%S+)"), line = line }
  end
  return t, #lines - 1
end

-- A get_or_set of key in another process whose fn blocks until the list
-- `go` gets an element: returns the child's pid once fn runs (its lease
-- is held), and finish() that lets fn return and waits for the child.
local function fill_in_flight(prefix, key)
  local admin = H.admin()
  local started = "cli:started:" .. tostring(math.random(1e9))
  local go = "cli:go:" .. tostring(math.random(1e9))
  local pid = posix.fork()
  if pid == 0 then
    local ok, err = pcall(function()
      local c = H.cache { prefix = prefix, timeout = 30 }
      local v, gerr = c:get_or_set(key, function()
        c:command("RPUSH", started, "1")
        local conn = assert(c:reserve())
        conn:set_timeout(60)
        conn:command("BLPOP", go, 30)
        conn:release()
        return "filled"
      end, { ttl = 100, lease_ttl = 30 })
      assert(v == "filled", tostring(gerr))
    end)
    if not ok then io.stderr:write("child: ", tostring(err), "\n") end
    posix._exit(ok and 0 or 1)
  end
  local conn = assert(admin:reserve())
  conn:set_timeout(60)
  local r = conn:command("BLPOP", started, 30)
  conn:release()
  assert(r ~= H.null, "the child's fn never ran")
  return function()
    admin:command("RPUSH", go, "1")
    local code = posix.waitpid(pid)
    admin:command("DEL", started, go)
    return code
  end
end

describe("hicache inspect", function()
  local P = "cli-insp"
  local admin, c, url
  local finish, lease_value, lock

  setup(function()
    admin = H.admin()
    url = X.url()
    c = H.cache { prefix = P, compress = { min_size = 64 } }
    local j = H.cache { prefix = P, serializer = "json" }
    local enc = H.cache { prefix = P, encrypt = { keys = { { id = "k1", key = K1 } } } }
    assert(c:set("user:1", { name = "Ann", roles = { "admin" } }, 300))
    assert(c:set("count", 42, 300))
    assert(c:set("forever", "no ttl", 0))
    assert(c:set("big", ("x"):rep(5000), 300))                       -- compressed
    assert(j:set("doc", { a = 1 }, 300))
    assert(enc:set("card", { number = "4111" }, 300))
    assert(c:set("tagged", "t", 300, { tags = { "t2", "t1" } }))
    assert(c:get_or_set("report", function() return { 1, 2 } end, { ttl = 100, stale = 50, tags = { "t1" } }))
    -- a stale refresh in flight: the value and a lease on it
    assert.equal(2, (c:_lease("report", "refresh-token-0123", 30000, true)))
    local long = {}
    for i = 1, 8 do long[i] = ("%d"):format(i):rep(700) end         -- a header longer than the 4 KiB probe
    assert(c:set("longtags", "v", 300, { tags = long }))
    lock = assert(c:lock("jobs", { ttl = 60 }))
    admin:command("HSET", P .. ":stats:web-1:4242:0a1b2c3d", "host", "web-1", "pid", "4242", "updated", "1")
    admin:command("PEXPIRE", P .. ":stats:web-1:4242:0a1b2c3d", 60000)
    admin:command("RPUSH", c:_names("user:1").wake, "tok")           -- a wake-up list
    assert(H.cache { prefix = P, version = 2 }:set("v2", 1))          -- another version
    admin:command("SET", P .. ":custom", "1")                         -- not hicache's
    admin:command("SET", P .. "x:1:other", "1")                       -- another prefix
    finish = fill_in_flight(P, "pending")
    lease_value = admin:command("GET", c:_names("pending").lease)
  end)

  teardown(function()
    if finish then assert.equal(0, finish()) end
    if lock then lock:release() end
    X.run("flush-namespace", url, "--prefix", P, "--yes")
    admin:command("DEL", P .. ":custom", P .. "x:1:other")
  end)

  it("lists every key hicache keeps for the prefix, with its details (text)", function()
    local r = X.run("inspect", url, "--prefix", P)
    assert.equal(0, r.code, r.err)
    local rows, n = text_rows(r.out)
    local function line(key) return assert(rows[key], key .. " not listed:\n" .. r.out).line end
    assert.matches("^value +4m5%ds +%d+ B +cli%-insp:1:user:1 +msgpack$", line(P .. ":1:user:1"))
    assert.matches("^value .* integer$", line(P .. ":1:count"))
    assert.matches("^value +none +.* msgpack$", line(P .. ":1:forever"))
    assert.matches("^value .* zstd$", line(P .. ":1:big"))
    assert.matches("^value .* json$", line(P .. ":1:doc"))
    assert.matches("^value .* encrypted%(k1%)$", line(P .. ":1:card"))
    assert.matches("^value .* msgpack tags=t1,t2$", line(P .. ":1:tagged"))
    assert.matches("^value .* msgpack tags=t1 soft=%+1m%d%ds lease=refresh%-...$", line(P .. ":1:report"))
    assert.truthy(line(P .. ":1:longtags"):find(" tags=1111", 1, true))
    local holder = lease_value:match(":(.*)$")
    assert.matches("^lease .* holder=" .. holder:sub(1, 8) .. "%.%.%. of cli%-insp:1:pending$",
      line("{" .. P .. ":1:pending}:lease"))
    assert.matches("^wake .* 1 item +{cli%-insp:1:user:1}:wake +waiting tokens=1$", line("{" .. P .. ":1:user:1}:wake"))
    assert.matches("^epoch .* epoch=%x+$", line("{" .. P .. ":1:}:epoch"))
    assert.matches("^tag .* tag t1 token=%x+$", line(P .. ":tag:{t1}"))
    assert.matches("^lock .* lock jobs owner=" .. lock.token:sub(1, 8) .. "%.%.%.$", line(P .. ":lock:{jobs}"))
    assert.matches("^fence .* last fence=" .. ("%d"):format(lock.fence) .. "$", line(P .. ":lock:{jobs}:fence"))
    assert.matches("^stats .* host=web%-1 pid=4242$", line(P .. ":stats:web-1:4242:0a1b2c3d"))
    -- left out: another version, a key hicache did not write, another prefix
    assert.is_nil(rows[P .. ":2:v2"])
    assert.is_nil(rows[P .. ":custom"])
    assert.is_nil(rows[P .. "x:1:other"])
    assert.truthy(r.err:find("inspect: 1 keys of other versions not listed (--version)", 1, true), r.err)
    assert.truthy(r.err:find("inspect: 1 other names under 'cli-insp:' are not hicache's", 1, true), r.err)
    -- 9 values, 2 leases (the pending fill's, the refresh of report), 2
    -- wake-up lists (report's fill pushed one), the epoch, 2 + 8 tags, the
    -- lock and its fence, the published stats: exactly these
    local want = 9 + 2 + 2 + 1 + 10 + 2 + 1
    assert.equal(want, n, r.out)
    -- sorted by key
    local prev = ""
    for _, l in ipairs(X.lines(r.out)) do
      local k = l:match("^%S+ +%S+ +%S+ %S* +(%S+)")
      if k and k ~= "KEY" then
        assert.is_true(prev < k, prev .. " before " .. k)
        prev = k
      end
    end
  end)

  it("--json: one JSON array of objects, every field", function()
    local r = X.run("inspect", url, "--prefix", P, "--json")
    assert.equal(0, r.code, r.err)
    assert.matches("^%[\n{", r.out)
    local rows = by_key(X.json(r.out))
    local now = H.hicache.now and require("hicache.core").time_ms()
    local v = rows[P .. ":1:user:1"]
    assert.same({ "value", 1, "user:1", "msgpack", false, H.null, H.null, false },
      { v.kind, v.version, v.user_key, v.format, v.compressed, v.encrypted, v.lease, v.envelope })
    assert.same({}, v.tags)
    assert.is_true(v.ttl_ms > 290000 and v.ttl_ms <= 300000, tostring(v.ttl_ms))
    assert.equal(admin:command("STRLEN", P .. ":1:user:1"), v.size)
    assert.equal(H.null, rows[P .. ":1:forever"].ttl_ms)
    assert.same({ "zstd", true }, { rows[P .. ":1:big"].format, rows[P .. ":1:big"].compressed })
    assert.same({ "encrypted", "k1" }, { rows[P .. ":1:card"].format, rows[P .. ":1:card"].encrypted })
    assert.equal("json", rows[P .. ":1:doc"].format)
    assert.equal("integer", rows[P .. ":1:count"].format)
    local t = rows[P .. ":1:tagged"]
    assert.same({ true, { "t1", "t2" } }, { t.envelope, t.tags })
    local rep = rows[P .. ":1:report"]
    assert.is_true(rep.soft_expiry_ms > now and rep.soft_expiry_ms <= now + 100000, tostring(rep.soft_expiry_ms))
    assert.equal("integer", H.mtype(rep.compute_ms))
    assert.equal("refresh-token-0123", rep.lease)
    assert.equal(8, #rows[P .. ":1:longtags"].tags)
    local lease = rows["{" .. P .. ":1:pending}:lease"]
    assert.same({ "lease", "pending", 1 }, { lease.kind, lease.user_key, lease.version })
    assert.equal(lease_value, lease.lease_epoch .. ":" .. lease.lease)
    assert.equal(rows["{" .. P .. ":1:}:epoch"].epoch, lease.lease_epoch)
    local lk = rows[P .. ":lock:{jobs}"]
    assert.same({ "lock", "jobs", lock.token }, { lk.kind, lk.lock, lk.owner })
    assert.equal(lock.fence, rows[P .. ":lock:{jobs}:fence"].fence)
    assert.same({ "tag", "t1" }, { rows[P .. ":tag:{t1}"].kind, rows[P .. ":tag:{t1}"].tag })
    assert.equal(admin:command("GET", P .. ":tag:{t1}"), rows[P .. ":tag:{t1}"].token)
    local st = rows[P .. ":stats:web-1:4242:0a1b2c3d"]
    assert.same({ "stats", "web-1", 4242 }, { st.kind, st.host, st.pid })
    assert.equal(1, rows["{" .. P .. ":1:user:1}:wake"].length)
    assert.is_nil(rows[P .. ":2:v2"])
    local n = 0
    for _ in pairs(rows) do n = n + 1 end
    assert.equal(27, n)
  end)

  it("a pattern lists the value keys matching it and their leases", function()
    local r = X.run("inspect", url, "--prefix", P, "--json", "p*")
    assert.equal(0, r.code, r.err)
    local rows = X.json(r.out)
    assert.equal(1, #rows)
    assert.equal("{" .. P .. ":1:pending}:lease", rows[1].key)
    r = X.run("inspect", url, "--prefix", P, "--json", "[ru]*")
    local keys = {}
    for _, row in ipairs(X.json(r.out)) do keys[#keys + 1] = row.key end
    assert.same({ P .. ":1:report", P .. ":1:user:1", "{" .. P .. ":1:report}:lease", "{" .. P .. ":1:report}:wake",
                  "{" .. P .. ":1:user:1}:wake" }, keys)
  end)

  it("--version lists another version", function()
    local r = X.run("inspect", url, "--prefix", P, "--version", "2", "--json")
    assert.equal(0, r.code, r.err)
    local rows = by_key(X.json(r.out))
    assert.equal("integer", rows[P .. ":2:v2"].format)
    assert.is_nil(rows[P .. ":1:user:1"])
    assert.truthy(rows[P .. ":lock:{jobs}"]) -- not in a version
  end)

  it("nothing to list: exit 0, a note on stderr, [] with --json", function()
    local r = X.run("inspect", url, "--prefix", "cli-nothing-here")
    assert.equal(0, r.code)
    assert.equal("", r.out)
    assert.equal("inspect: no keys of prefix 'cli-nothing-here' version 1\n", r.err)
    r = X.run("inspect", url, "--prefix", "cli-nothing-here", "--json")
    assert.same({ 0, "[]\n" }, { r.code, r.out })
  end)

  it("the lease shows on the value row of a {tag} prefix too (the P:h: names)", function()
    local b = H.cache { prefix = "{cli-b}" }
    assert(b:set("k", "v"))
    assert.equal(2, (b:_lease("k", "brace-lease-token", 30000, true)))
    local r = X.run("inspect", url, "--prefix", "{cli-b}", "--json")
    assert.equal(0, r.code, r.err)
    local rows = by_key(X.json(r.out))
    assert.equal("brace-lease-token", rows["{cli-b}:1:k"].lease)
    local l = rows["{cli-b}:h:{cli-b}:1:k:lease"]
    assert.same({ "lease", "k", "brace-lease-token" }, { l.kind, l.user_key, l.lease })
    assert.equal("epoch", rows["{cli-b}:h:{cli-b}:1::epoch"].kind)
    X.run("flush-namespace", url, "--prefix", "{cli-b}", "--yes")
  end)
end)

describe("hicache inspect on a large namespace", function()
  local P = "cli-large"
  local url, admin
  setup(function()
    url, admin = X.url(), H.admin()
    local c = H.cache { prefix = P }
    local items = {}
    for i = 1, 1500 do items[("k%04d"):format(i)] = i end
    assert(c:set_many(items, 300))
  end)
  teardown(function() X.run("flush-namespace", url, "--prefix", P, "--yes") end)

  it("uses SCAN, never KEYS", function()
    admin:command("CONFIG", "RESETSTAT")
    local r = X.run("inspect", url, "--prefix", P)
    assert.equal(0, r.code)
    local stats = admin:command("INFO", "commandstats")
    assert.truthy(stats:find("cmdstat_scan:", 1, true))
    assert.falsy(stats:find("cmdstat_keys:", 1, true))
  end)

  it("a final count on stderr (more than 1000 keys), progress only with --progress, never on stdout", function()
    local r = X.run("inspect", url, "--prefix", P)
    assert.equal(0, r.code)
    assert.equal(1501, #X.lines(r.out))
    assert.equal("inspect: 1500 keys listed (1500 names scanned)\n", r.err)  -- stderr is no terminal here
    local p = X.run("inspect", url, "--prefix", P, "--progress")
    assert.equal(0, p.code)
    assert.equal(r.out, p.out)
    assert.falsy(p.out:find("\r", 1, true))
    assert.matches("^\rinspect: %d+ names scanned, %d+ keys listed", p.err)
    assert.matches("\rinspect: 1500 keys listed %(1500 names scanned%)\n$", p.err)
    local j = X.run("inspect", url, "--prefix", P, "--json", "--progress")
    assert.equal(1500, #X.json(j.out))
  end)

  it("--limit N stops after N keys", function()
    local r = X.run("inspect", url, "--prefix", P, "--limit", "10")
    assert.equal(0, r.code)
    assert.equal(11, #X.lines(r.out))
    assert.equal("inspect: stopped at --limit 10\n", r.err)
    r = X.run("inspect", url, "--prefix", P, "--limit", "1200", "--json")
    assert.equal(1200, #X.json(r.out))
  end)
end)
