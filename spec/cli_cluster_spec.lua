-- The hicache tool on a Redis Cluster (3 masters): inspect and locks SCAN
-- every master, get follows the key's slot, flush-namespace UNLINKs on
-- every master (split by slot), the per-slot namespace epochs included.
local H = require "helper"
local X = require "helpers.cli"
local T = require "helpers.topology"

describe("hicache on a cluster", function()
  local c, url, cache
  local P = "clic"
  local N = 60

  setup(function()
    c = T.start_cluster { replicas = 0 }
    url = "redis+cluster://" .. table.concat(c.seeds, ",")
    cache = assert(H.hicache.new { url = url, prefix = P })
    for i = 1, N do assert(cache:set("k" .. i, i, 300)) end
    for i = 1, 6 do assert(cache:get_or_set("g" .. i, function() return i end, { ttl = 300, stale = 5 })) end
  end)
  teardown(function()
    if cache then cache:close() end
    if c then c.stop() end
  end)

  -- the masters holding at least one of the names
  local function owners(names)
    local set, n = {}, 0
    for _, name in ipairs(names) do
      local port = c.owner(name)
      if not set[port] then set[port], n = true, n + 1 end
    end
    return n
  end

  it("inspect lists the keys of every master, epochs per slot included", function()
    local r = X.run("inspect", url, "--prefix", P, "--json")
    assert.equal(0, r.code, r.err)
    local values, epochs, names = 0, 0, {}
    for _, row in ipairs(X.json(r.out)) do
      if row.kind == "value" then
        values = values + 1
        names[#names + 1] = row.key
      elseif row.kind == "epoch" then
        epochs = epochs + 1
        assert.matches("^clic:e:{[^}]+}:1:epoch$", row.key)
      end
    end
    assert.equal(N + 6, values)
    assert.equal(3, owners(names))
    assert.is_true(epochs >= 1)
  end)

  it("get reads a key from its master", function()
    for _, i in ipairs { 1, 17, 42 } do
      local r = X.run("get", url, "k" .. i, "--prefix", P)
      assert.equal(0, r.code, r.err)
      assert.equal(i .. "\n", r.out:match("\n(.*)$"))
    end
  end)

  it("locks lists the locks held on every master", function()
    local held, keys = {}, {}
    for i = 1, 9 do
      held[i] = assert(cache:lock("l" .. i, { ttl = 60 }))
      keys[i] = held[i].key
    end
    assert.equal(3, owners(keys))
    local r = X.run("locks", url, "--prefix", P, "--json")
    assert.equal(0, r.code, r.err)
    local rows = X.json(r.out)
    assert.equal(9, #rows)
    for i, row in ipairs(rows) do assert.equal(held[i].token, row.owner) end
    for _, l in ipairs(held) do l:release() end
  end)

  it("flush-namespace deletes on every master", function()
    local other = assert(H.hicache.new { url = url, prefix = P .. "x" })
    assert(other:set("stay", 1, 300))
    local r = X.run("flush-namespace", url, "--prefix", P, "--yes")
    assert.equal(0, r.code, r.err)
    assert.matches("^deleted %d+ keys of prefix 'clic' %(value 66, ", r.out)
    for _, m in ipairs(c.masters()) do
      local out = c.cli(m.port, "--scan", "--pattern", "clic:*")
      assert.equal("", (out:gsub("%s", "")), "left on " .. m.port)
      out = c.cli(m.port, "--scan", "--pattern", "{clic:*")
      assert.equal("", (out:gsub("%s", "")), "left on " .. m.port)
    end
    assert.equal(1, other:get("stay"))
    other:close()
  end)
end)
