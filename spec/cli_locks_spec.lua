-- hicache locks, run as a real process: the locks held now under a prefix
-- with their owner token, PTTL, last fence and pending wake-up tokens;
-- released and expired locks are not listed; --json.
local H = require "helper"
local X = require "helpers.cli"

describe("hicache locks", function()
  local P = "cli-locks"
  local url, c
  setup(function()
    url = X.url()
    c = H.cache { prefix = P }
  end)
  teardown(function() X.run("flush-namespace", url, "--prefix", P, "--yes") end)

  it("lists held locks sorted by name: owner, TTL, fence, wake-up tokens", function()
    local a = assert(c:lock("alpha", { ttl = 60 }))
    local b = assert(c:lock("beta/{x}", { ttl = 300 }))
    local gone = assert(c:lock("released", { ttl = 60 }))
    assert(gone:release())                   -- pushes a wake-up token nobody takes
    local again = assert(c:lock("again", { ttl = 60 }))
    assert(again:release())
    again = assert(c:lock("again", { ttl = 60 })) -- held, with the last release's token pending
    assert(H.cache { prefix = P .. "x" }:lock("other", { ttl = 60 })) -- another prefix
    local r = X.run("locks", url, "--prefix", P)
    assert.equal(0, r.code, r.err)
    local lines = X.lines(r.out)
    assert.equal(4, #lines, r.out)
    assert.matches("^LOCK +OWNER +TTL +FENCE +WAKE$", lines[1])
    local function row(l, name, ttl, wake)
      return ("^%s +%s%%.%%.%%. +%s +%d +%d$"):format(name, l.token:sub(1, 8), ttl, l.fence, wake)
    end
    assert.matches(row(again, "again", "59%.%ds", 1), lines[2])
    assert.matches(row(a, "alpha", "59%.%ds", 0), lines[3])
    assert.matches(row(b, "beta/{x}", "4m5%ds", 0), lines[4])
    assert.equal("", r.err)

    r = X.run("locks", url, "--prefix", P, "--json")
    assert.equal(0, r.code, r.err)
    local rows = X.json(r.out)
    assert.equal(3, #rows)
    assert.same({ "alpha", P .. ":lock:{alpha}", a.token, a.fence, 0 },
      { rows[2].name, rows[2].key, rows[2].owner, rows[2].fence, rows[2].wake })
    assert.is_true(rows[2].ttl_ms > 55000 and rows[2].ttl_ms <= 60000)
    assert.equal(1, rows[1].wake)
    for _, l in ipairs { a, b, again } do assert(l:release()) end
  end)

  it("no lock held: exit 0, a note on stderr; [] with --json", function()
    local l = assert(c:lock("short", { ttl = 0.05 }))
    H.posix.sleep(0.1) -- expired: not held
    assert.is_false(l:owned())
    local r = X.run("locks", url, "--prefix", P)
    assert.same({ 0, "", "locks: no lock held under prefix 'cli-locks'\n" }, { r.code, r.out, r.err })
    r = X.run("locks", url, "--prefix", P, "--json")
    assert.same({ 0, "[]\n" }, { r.code, r.out })
  end)

  it("a lock whose name has glob characters and braces, under a prefix with glob characters", function()
    local g = H.cache { prefix = "cli*[l]" }
    local l = assert(g:lock("x*}:fence", { ttl = 60 }))
    assert(H.cache { prefix = "cli-l" }:lock("decoy", { ttl = 60 })) -- "cli*[l]" as a glob matches it
    local r = X.run("locks", url, "--prefix", "cli*[l]", "--json")
    local rows = X.json(r.out)
    assert.equal(1, #rows, r.out)
    assert.same({ "x*}:fence", l.token }, { rows[1].name, rows[1].owner })
    l:release()
    X.run("flush-namespace", url, "--prefix", "cli-l", "--yes")
    X.run("flush-namespace", url, "--prefix", "cli*[l]", "--yes")
  end)
end)
