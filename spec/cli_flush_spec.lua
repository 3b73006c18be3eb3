-- hicache flush-namespace, run as a real process: refuses without --yes,
-- without --prefix and with an empty prefix unless told; deletes every name
-- hicache wrote for the prefix (every version, every kind) and nothing
-- else -- other prefixes, keys of no hicache layout, glob look-alikes;
-- SCAN + UNLINK, never FLUSHDB/FLUSHALL/KEYS; --dry-run, --list; a Redis
-- error midway.
local H = require "helper"
local X = require "helpers.cli"

-- Writes, with real caches, every kind of key hicache keeps for prefix p
-- on the server of `opts` (H.cache options); returns the list of the names.
local function populate(p, opts)
  local function cache(o)
    for k, v in pairs(opts or {}) do o[k] = v end
    o.prefix = p
    return H.cache(o)
  end
  local c = cache {}
  local admin = cache {}
  assert(c:set("plain", "v", 300))
  assert(c:set("forever", 1, 0))
  assert(cache { version = 2 }:set("old", "v2", 300))                  -- another version
  assert(cache { version = -5 }:set("neg", "v", 300))
  assert(c:set("tagged", "t", 300, { tags = { "tag-a" } }))            -- P:tag:{tag-a}
  assert(c:get_or_set("filled", function() return 1 end, { ttl = 300, stale = 10 })) -- epoch, wake
  assert.equal(2, (c:_lease("pending", "lease-token-1", 30000, false)))            -- {P:1:pending}:lease
  assert.equal(2, (c:_lease("u:{42}", "lease-token-2", 30000, false)))             -- P:h:P:1:u:{42}:lease
  local l = assert(c:lock("job", { ttl = 300 }))                        -- lock + fence
  local r = assert(c:lock("done", { ttl = 300 }))
  assert(r:release())                                                   -- fence + wake-up list
  admin:command("HSET", p .. ":stats:host-1:77:00c0ffee", "host", "host-1", "pid", "77")
  local names = {}
  local n = c:_names("x")
  for _, name in ipairs {
    c:_key("plain"), c:_key("forever"), p .. ":2:old", p .. ":-5:neg", c:_key("tagged"), c:_tag_name("tag-a"),
    c:_key("filled"), n.epoch, c:_names("filled").wake, c:_names("pending").lease, c:_names("u:{42}").lease,
    l.key, (select(2, c:_lock_names("job"))), (select(2, c:_lock_names("done"))),
    (select(3, c:_lock_names("done"))), p .. ":stats:host-1:77:00c0ffee",
  } do
    names[#names + 1] = name
  end
  return names
end

local function exists(admin, name) return admin:command("EXISTS", name) == 1 end

describe("hicache flush-namespace", function()
  local url, admin
  setup(function() url, admin = X.url(), H.admin() end)

  it("refuses without --yes, without --prefix, and the empty prefix without --empty-prefix (exit 2)", function()
    admin:command("SET", "cli-fl-r:1:k", "1")
    for _, case in ipairs {
      { { "--prefix", "cli-fl-r" }, "refusing to delete without --yes (--dry-run counts what would go)" },
      { { "--yes" }, "--prefix is required (the prefix whose keys to delete)" },
      { { "--prefix", "", "--yes" }, "refusing the empty prefix without --empty-prefix" },
      { { "--prefix=", "--yes" }, "refusing the empty prefix without --empty-prefix" },
    } do
      local r = X.run("flush-namespace", url, H.unpack(case[1]))
      assert.same({ 2, "", "hicache: flush-namespace: " .. case[2] .. "\n" }, { r.code, r.out, r.err })
    end
    assert.is_true(exists(admin, "cli-fl-r:1:k"))
    admin:command("DEL", "cli-fl-r:1:k")
  end)

  it("deletes every key hicache wrote under the prefix, every version and kind, and nothing else", function()
    local P = "cli-fl"
    local names = populate(P)
    for _, name in ipairs(names) do assert.is_true(exists(admin, name), name) end
    -- what must stay: other prefixes (also ones that start like P), keys under
    -- "P:" that are no hicache name, a key in P's glob but not P's
    local keep = { "cli-fl:custom", "cli-fl:tag:x", "cli-flx:1:k", "cli-fl2:1:k", "{cli-fl:x}:lease", "cli-fl",
                   "cli-fl:stats:nope", "cli-fl:h:other:1:k:lease", "cli-fl:lock:open", "other:1:k" }
    for _, k in ipairs(keep) do admin:command("SET", k, "1") end
    local others = populate("cli-flother")
    admin:command("CONFIG", "RESETSTAT")

    local dry = X.run("flush-namespace", url, "--prefix", P, "--dry-run")
    assert.equal(0, dry.code, dry.err)
    assert.equal(("dry run: would delete %d keys of prefix 'cli-fl' (value 6, lease 2, wake 1, epoch 1, tag 1, "
      .. "lock 1, fence 2, lock_wake 1, stats 1)\n"):format(#names), dry.out)
    assert.equal("flush-namespace: left 6 other keys under 'cli-fl:' that are not hicache's names for this prefix\n",
      dry.err)
    for _, name in ipairs(names) do assert.is_true(exists(admin, name), name) end

    local listed = X.run("flush-namespace", url, "--prefix", P, "--dry-run", "--list")
    local got = X.lines(listed.out)
    table.sort(got)
    local want = { H.unpack(names) }
    table.sort(want)
    assert.same(want, got)
    assert.matches("^dry run: would delete 16 keys", listed.err)

    local r = X.run("flush-namespace", url, "--prefix", P, "--yes")
    assert.equal(0, r.code, r.err)
    assert.equal(("deleted %d keys of prefix 'cli-fl' (value 6, lease 2, wake 1, epoch 1, tag 1, lock 1, fence 2, "
      .. "lock_wake 1, stats 1)\n"):format(#names), r.out)
    for _, name in ipairs(names) do assert.is_false(exists(admin, name), name) end
    for _, k in ipairs(keep) do assert.is_true(exists(admin, k), k) end
    for _, k in ipairs(others) do assert.is_true(exists(admin, k), k) end
    -- SCAN + UNLINK only
    local stats = admin:command("INFO", "commandstats")
    assert.truthy(stats:find("cmdstat_unlink:", 1, true))
    assert.truthy(stats:find("cmdstat_scan:", 1, true))
    for _, cmd in ipairs { "flushdb", "flushall", "keys", "del" } do
      assert.falsy(stats:find("cmdstat_" .. cmd .. ":", 1, true), cmd)
    end
    -- again: nothing left to delete
    r = X.run("flush-namespace", url, "--prefix", P, "--yes")
    assert.equal("deleted 0 keys of prefix 'cli-fl'\n", r.out)
    local del = { "DEL" }
    for _, k in ipairs(keep) do del[#del + 1] = k end
    admin:command(H.unpack(del))
    X.run("flush-namespace", url, "--prefix", "cli-flother", "--yes")
  end)

  it("glob characters in the prefix are literal", function()
    local P = "cli*fl?[x]"
    local names = populate(P)
    local decoys = populate("cli-flA-x")          -- matches P as a glob
    local r = X.run("flush-namespace", url, "--prefix", P, "--yes")
    assert.equal(0, r.code, r.err)
    assert.matches("^deleted 16 keys of prefix 'cli%*fl%?%[x%]'", r.out)
    for _, name in ipairs(names) do assert.is_false(exists(admin, name), name) end
    for _, name in ipairs(decoys) do assert.is_true(exists(admin, name), name) end
    X.run("flush-namespace", url, "--prefix", "cli-flA-x", "--yes")
  end)

  it("a {tag} prefix (only P:... names, no {P:...} companions)", function()
    local names = populate("{cli-flb}")
    local r = X.run("flush-namespace", url, "--prefix", "{cli-flb}", "--yes")
    assert.equal(0, r.code, r.err)
    for _, name in ipairs(names) do assert.is_false(exists(admin, name), name) end
  end)

  it("the empty prefix with --empty-prefix: hicache's names only (a server of its own)", function()
    local server = H.start_redis()
    finally(function() server.stop() end)
    local names = populate("", { port = server.port })
    local keep = { "user:1", "foo", "{:x}:lease", ":custom", "{x:1:k}:lease", ":tag:x", "x:1:k", "1:2:3" }
    local own = H.cache { port = server.port }
    for _, k in ipairs(keep) do own:command("SET", k, "1") end
    local r = X.run("flush-namespace", X.url(server.port), "--prefix", "", "--empty-prefix", "--yes")
    assert.equal(0, r.code, r.err)
    assert.matches("^deleted 16 keys of prefix ''", r.out)
    for _, name in ipairs(names) do assert.equal(0, own:command("EXISTS", name), name) end
    for _, k in ipairs(keep) do assert.equal(1, own:command("EXISTS", k), k) end
    assert.equal(#keep, own:command("DBSIZE"))
  end)

  it("a Redis error midway: exit 1, the count so far and the error on stderr", function()
    local server = H.start_redis()
    finally(function() server.stop() end)
    local own = H.cache { port = server.port }
    assert(own:command("ACL", "SETUSER", "nounlink", "on", ">pw-cli", "~*", "+@all", "-unlink"))
    populate("cli-fle", { port = server.port })
    local r = X.run("flush-namespace", ("redis://nounlink:pw-cli@127.0.0.1:%d"):format(server.port),
      "--prefix", "cli-fle", "--yes")
    assert.equal(1, r.code)
    assert.equal("", r.out)
    local lines = X.lines(r.err)
    assert.equal(2, #lines, r.err)
    assert.equal("flush-namespace: deleted 0 keys of prefix 'cli-fle' before the error", lines[1])
    assert.matches("^hicache: flush%-namespace: NOPERM", lines[2])
    assert.falsy(r.err:find("pw-cli", 1, true))
    assert.equal(16, own:command("DBSIZE"))
  end)
end)
