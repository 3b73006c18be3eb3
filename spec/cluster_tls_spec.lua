-- A Redis Cluster over TLS (issue 13: "the same auth, TLS, timeout and
-- pool options as a single server"): 3 masters + 3 replicas whose only
-- port is a TLS port (tls-cluster yes: the bus and replication are TLS
-- too). The slot map's addresses are the nodes' TLS ports, and every
-- node's pool verifies the node's certificate (the test CA, the node's
-- IP address in the certificate).
local H = require "helper"
local T = require "helpers.topology"
local hicache = H.hicache

describe("a cache on a Redis Cluster over TLS", function()
  local c

  lazy_setup(function()
    c = T.start_cluster { tls = true }
  end)
  lazy_teardown(function()
    if c then c.stop() end
  end)

  local function tls_cache(extra)
    local o = { cluster = c.seeds, prefix = "tls", timeout = 2,
                tls = { ca_file = H.tls_dir .. "/ca.crt" } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return hicache.new(o)
  end

  it("routes every operation to its node over verified TLS connections", function()
    local cache = assert(tls_cache())
    assert.equal(3, #assert(cache:nodes()))
    local keys = {}
    for i = 1, 60 do keys[i] = "k" .. i end
    local values = {}
    for i, k in ipairs(keys) do values[k] = { i = i } end
    assert.same({}, assert(cache:set_many(values)))
    local got = assert(cache:get_many(keys))
    for i, k in ipairs(keys) do assert.same({ i = i }, got[k]) end
    local v, err, status = cache:get_or_set("cold", function() return "computed" end)
    assert.equal("computed", v, err)
    assert.equal("miss", status)
    assert.equal(61, cache:clear())
    local ps = assert(cache:pool_stats())
    assert.equal(3, ps.cluster.masters)
    assert.is_true(ps.created >= 3) -- a connection to each master at least
  end)

  it("refuses a node whose certificate is not signed by the CA given", function()
    local cache, err = tls_cache { tls = { ca_file = H.tls_dir .. "/other-ca.crt" } }
    assert.is_nil(cache)
    assert.matches("^no cluster seed answered: ", err)
    assert.matches("certificate", err)
  end)

  it("refuses plain connections to TLS-only nodes", function()
    local cache, err = hicache.new { cluster = c.seeds, timeout = 0.5, connect_timeout = 0.5 }
    assert.is_nil(cache)
    assert.matches("^no cluster seed answered: ", err)
  end)
end)
