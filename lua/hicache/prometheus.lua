--- hicache.prometheus: cache:stats() as the Prometheus text exposition
-- format (version 0.0.4). Each metric family appears once, its # HELP and
-- # TYPE lines right before all of its samples: the cache's totals carry
-- the label prefix=, the per-key-family ones also family=, the
-- per-operation ones op=. Latency is a summary in seconds (quantiles from
-- the C histogram, _sum and _count exact).

local concat, sort, format, tostring, pairs, ipairs = table.concat, table.sort, string.format, tostring, pairs, ipairs

local _M = {}

local COUNTERS = {
  { "hits", "Reads that found a value." },
  { "misses", "Reads that found nothing." },
  { "sets", "Values stored (set, add, set_many, get_or_set fills)." },
  { "deletes", "Entries deleted." },
  { "invalidations", "Keys and tags invalidated." },
  { "errors", "Operations that failed (connection, timeout, server or decode errors)." },
  { "stale", "Stale values served." },
  { "waits", "get_or_set calls that waited for another caller's computation." },
  { "computes", "Computations run by get_or_set and memoize." },
  { "lock_waits", "Lock acquisitions that had to wait." },
  { "bytes_in", "Bytes of values read." },
  { "bytes_out", "Bytes of values written." },
}

local QUANTILES = { { "0.5", "p50" }, { "0.9", "p90" }, { "0.99", "p99" } }

-- The exposition is UTF-8 and a scraper rejects the whole page for one
-- invalid byte; keys (so key families) are binary-safe: each byte that
-- does not belong to a valid UTF-8 sequence becomes U+FFFD.
local utf8_valid = require("hicache.compat").utf8_valid

-- A label value, escaped as the exposition format wants.
local function esc(v)
  return (utf8_valid(tostring(v)):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

-- A sample value: integers as integers, floats with full precision.
local function num(v)
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%d", v) end
  return format("%.17g", v)
end

--- text(st, prefix) -> the exposition text of st (a cache:stats() table)
function _M.text(st, prefix)
  local out = {}
  local function line(s) out[#out + 1] = s end
  local base = 'prefix="' .. esc(prefix) .. '"'
  -- the scopes: the whole cache, then each key family, sorted
  local scopes = { { labels = base, c = st } }
  local fams = {}
  for f in pairs(st.families or {}) do fams[#fams + 1] = f end
  sort(fams)
  for _, f in ipairs(fams) do
    scopes[#scopes + 1] = { labels = base .. ',family="' .. esc(f) .. '"', c = st.families[f] }
  end
  local function ops_of(c)
    local names = {}
    for op in pairs(c.ops or {}) do names[#names + 1] = op end
    sort(names)
    return names
  end

  for _, counter in ipairs(COUNTERS) do
    local name = "hicache_" .. counter[1] .. "_total"
    line("# HELP " .. name .. " " .. counter[2])
    line("# TYPE " .. name .. " counter")
    for _, s in ipairs(scopes) do line(format("%s{%s} %s", name, s.labels, num(s.c[counter[1]]))) end
  end

  line("# HELP hicache_hit_rate Hits / (hits + misses); 0 before the first read.")
  line("# TYPE hicache_hit_rate gauge")
  for _, s in ipairs(scopes) do line(format("hicache_hit_rate{%s} %s", s.labels, num(s.c.hit_rate))) end

  line("# HELP hicache_operations_total Operations by kind.")
  line("# TYPE hicache_operations_total counter")
  for _, s in ipairs(scopes) do
    for _, op in ipairs(ops_of(s.c)) do
      line(format('hicache_operations_total{%s,op="%s"} %s', s.labels, esc(op), num(s.c.ops[op].count)))
    end
  end

  line("# HELP hicache_latency_seconds Operation latency (quantiles: upper bounds of 2^(1/4) buckets).")
  line("# TYPE hicache_latency_seconds summary")
  for _, s in ipairs(scopes) do
    for _, op in ipairs(ops_of(s.c)) do
      local q = s.c.ops[op]
      local labels = format('%s,op="%s"', s.labels, esc(op))
      for _, p in ipairs(QUANTILES) do
        line(format('hicache_latency_seconds{%s,quantile="%s"} %s', labels, p[1], num(q[p[2]] / 1000)))
      end
      line(format("hicache_latency_seconds_sum{%s} %s", labels, num((q.sum_ms or 0) / 1000)))
      line(format("hicache_latency_seconds_count{%s} %s", labels, num(q.count)))
    end
  end
  return concat(out, "\n") .. "\n"
end

return _M
