-- cache:stats_text() is valid Prometheus text: read back with the
-- official parser (Debian's python3-prometheus-client), each family once,
-- the samples equal to cache:stats(), latency a summary in seconds.
local H = require "helper"
local keys = require "hicache.keys"

local PYTHON = "/usr/bin/python3"

-- Parses text with prometheus_client; returns the families as
-- { {name =, type =, samples = { {name, labels, value}, ... }}, ... }.
local function parse(text)
  local path = H.dir .. "/metrics-" .. tostring(math.random(1e9)) .. ".txt"
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local out, code = H.shell(PYTHON .. [[ -c '
import sys, json
from prometheus_client.parser import text_string_to_metric_families
fams = []
for fam in text_string_to_metric_families(open(sys.argv[1], encoding="utf-8").read()):
    fams.append({"name": fam.name, "type": fam.type,
                 "samples": [[s.name, s.labels, s.value] for s in fam.samples]})
print(json.dumps(fams))' ]] .. path)
  os.remove(path)
  assert(code == 0, out)
  return require("cjson").decode(out)
end

describe("cache:stats_text()", function()
  it("parses with the Prometheus parser: each family once, values equal to stats()", function()
    local c = H.cache { prefix = 'pro"m\\e\nx' }
    local profile = keys.define("profile", { "id" })
    c:set(profile { id = 1 }, "a")
    c:get(profile { id = 1 })
    c:get(profile { id = 2 })
    c:get('odd"fam\\ily\n:1')
    c:set("plain", 1)
    c:incr("plain")
    c:get_or_set("gos:1", function() return 1 end)
    c:get_or_set("gos:1", function() return 1 end)
    c:delete("plain")
    local st = assert(c:stats())
    local fams = parse(assert(c:stats_text()))
    local seen = {}
    for _, fam in ipairs(fams) do
      assert.is_nil(seen[fam.name], "family " .. fam.name .. " appears twice")
      seen[fam.name] = fam
    end
    assert.equal("counter", seen.hicache_hits.type)
    assert.equal("gauge", seen.hicache_hit_rate.type)
    assert.equal("summary", seen.hicache_latency_seconds.type)
    assert.equal(15, #fams)
    local function sample(fam, name, want)
      for _, s in ipairs(seen[fam].samples) do
        local ok = s[1] == name
        for k, v in pairs(want) do ok = ok and s[2][k] == v end
        for k in pairs(s[2]) do ok = ok and want[k] ~= nil end
        if ok then return s[3] end
      end
      error(("no sample %s %s"):format(name, require("pl.pretty").write(want)))
    end
    local prefix = 'pro"m\\e\nx'
    assert.equal(st.hits, sample("hicache_hits", "hicache_hits_total", { prefix = prefix }))
    assert.equal(st.misses, sample("hicache_misses", "hicache_misses_total", { prefix = prefix }))
    assert.equal(st.families.profile.hits,
      sample("hicache_hits", "hicache_hits_total", { prefix = prefix, family = "profile" }))
    assert.equal(st.families['odd"fam\\ily\n'].misses,
      sample("hicache_misses", "hicache_misses_total", { prefix = prefix, family = 'odd"fam\\ily\n' }))
    assert.equal(st.ops.get.count,
      sample("hicache_operations", "hicache_operations_total", { prefix = prefix, op = "get" }))
    assert.equal(st.ops.get.count,
      sample("hicache_latency_seconds", "hicache_latency_seconds_count", { prefix = prefix, op = "get" }))
    local sum = sample("hicache_latency_seconds", "hicache_latency_seconds_sum", { prefix = prefix, op = "get" })
    assert.near(st.ops.get.sum_ms / 1000, sum, 1e-9)
    assert.is_true(sum > 0 and sum < 60)
    assert.equal(st.ops.get.p99 / 1000,
      sample("hicache_latency_seconds", "hicache_latency_seconds", { prefix = prefix, op = "get", quantile = "0.99" }))
  end)

  it("every sample, in every key family and operation, equals stats(); nothing else is there", function()
    local c = H.cache { prefix = "pr2" }
    local events = 0
    c:set("user:1", ("u"):rep(40))
    c:get("user:1")
    c:get("user:2")
    c:get_many { "user:1", "order:9", "plain" }
    c:set_many { ["order:1"] = 1, ["order:2"] = 2 }
    c:incr("order:1", 5)
    c:delete("order:2")
    c:invalidate("user:1")
    c:get_or_set("report:x", function() events = events + 1; return { 1, 2 } end)
    c:get_or_set("report:x", function() events = events + 1; return { 1, 2 } end)
    assert(c:lock("mutex")):release()
    c:set("bin\xff:1", 1)                 -- a key family that is not UTF-8
    c:get('q"u\\o\nte:1')                -- quote, backslash, newline in a family
    local st = assert(c:stats())
    local fams = parse(assert(c:stats_text()))
    -- the label a family gets: invalid UTF-8 bytes become U+FFFD
    local raw_family = { ["bin\u{FFFD}"] = "bin\xff" }
    local want_samples = 0
    local scopes = { st }
    for _, f in pairs(st.families) do scopes[#scopes + 1] = f end
    for _, scope in ipairs(scopes) do
      want_samples = want_samples + 13 -- 12 counters and the hit rate
      for _ in pairs(scope.ops) do want_samples = want_samples + 6 end -- count, 3 quantiles, _sum, _count
    end
    assert.is_truthy(st.families.user and st.families.order and st.families.report and st.families["bin\xff"]
      and st.families['q"u\\o\nte'])
    local seen, nsamples = {}, 0
    for _, fam in ipairs(fams) do
      assert.is_nil(seen[fam.name], "family " .. fam.name .. " appears twice")
      seen[fam.name] = true
      for _, s in ipairs(fam.samples) do
        nsamples = nsamples + 1
        local name, labels, value = s[1], s[2], s[3]
        assert.equal("pr2", labels.prefix)
        local scope = st
        if labels.family then
          scope = st.families[raw_family[labels.family] or labels.family]
          assert.is_table(scope, "unknown family label " .. labels.family)
        end
        local want
        local counter = name:match("^hicache_(.+)_total$")
        if name == "hicache_hit_rate" then
          want = scope.hit_rate
        elseif name == "hicache_operations_total" then
          want = scope.ops[labels.op].count
        elseif name == "hicache_latency_seconds" then
          want = scope.ops[labels.op]["p" .. tostring(tonumber(labels.quantile) * 100):gsub("%.0$", "")] / 1000
        elseif name == "hicache_latency_seconds_sum" then
          want = scope.ops[labels.op].sum_ms / 1000
          assert.is_true(value > 0, "a latency sum of 0 for " .. labels.op)
        elseif name == "hicache_latency_seconds_count" then
          want = scope.ops[labels.op].count
        elseif counter then
          want = scope[counter]
        end
        assert.is_number(want, "unexpected sample " .. name)
        assert.equal(want, value, name .. " " .. require("pl.pretty").write(labels, ""))
      end
    end
    assert.equal(want_samples, nsamples)
    assert.is_true(st.ops.get_or_set.count == 2 and st.ops.lock.count == 1 and events == 1)
    c:clear()
  end)

  it("returns nil, err when stats are off", function()
    assert.same({ nil, "stats are off" }, { H.cache { stats = false }:stats_text() })
  end)
end)
