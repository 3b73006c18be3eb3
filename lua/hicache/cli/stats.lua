--- hicache.cli.stats: `hicache stats URL [--prefix P] [--json] [--family F]`
--
-- The server's view (INFO stats and memory; summed over the masters of a
-- cluster) next to the counters processes published with stats_publish
-- (lua/hicache/publish.lua: a hash `<prefix>:stats:<host>:<pid>:<id>`
-- per cache object, rewritten every interval, expiring after three):
-- one line per process, and per key family summed over the processes,
-- sorted by traffic (hits + misses + sets + deletes).

local C = require "hicache.cli.common"
local core = require "hicache.core"

local NULL = core.null -- JSON null (a rate without lookups)
local tostring, tonumber, pairs, ipairs = tostring, tonumber, pairs, ipairs
local format, concat, sort = string.format, table.concat, table.sort

local S = {
  name = "stats",
  summary = "the server's hit rate and memory, and the counters processes published (stats_publish)",
  usage = "hicache stats URL [--prefix P] [--json] [--family F]",
}

S.help = [[
Shows the server's own view -- INFO stats (keyspace_hits, keyspace_misses,
their hit rate, evicted_keys, expired_keys) and INFO memory (used_memory,
maxmemory, maxmemory_policy), summed over the masters of a cluster -- next
to the counters that processes using hicache.new{stats_publish = ...}
published under the prefix: per process (host, pid, the age of its last
publish, hits, misses, hit rate) and per key family summed over the
processes (hit rate = hits / (hits + misses)), sorted by traffic
(hits + misses + sets + deletes). A process that stops publishing
disappears after three intervals.
  --json               the same as one JSON object
  --family F           only key family F (the part of a key before its first ':')
]] .. C.CONNECT_HELP

local SPEC = C.merge(C.CONNECT, { json = "flag", family = "string" })

-- ---- the server: INFO of every master ----------------------------------------

-- "key:value" lines of an INFO reply into t (strings).
local function parse_info(text, t)
  for line in tostring(text):gmatch("[^\r\n]+") do
    local k, v = line:match("^([%w_]+):(.*)$")
    if k then t[k] = v end
  end
  return t
end

local SUMMED = { "keyspace_hits", "keyspace_misses", "evicted_keys", "expired_keys", "used_memory" }

-- The server's counters, summed over the masters: table | nil, err.
local function server_view(cache)
  local nodes, err = cache:nodes()
  if not nodes then return nil, err end
  local v = { nodes = C.array({}), maxmemory = 0 }
  for _, k in ipairs(SUMMED) do v[k] = 0 end
  local policies, unlimited = {}, false
  for _, node in ipairs(nodes) do
    local info = {}
    for _, section in ipairs { "stats", "memory" } do
      local text, ierr = cache:node_command(node, "INFO", section)
      if not text then return nil, ("INFO %s on %s: %s"):format(section, node, tostring(ierr)) end
      parse_info(text, info)
    end
    v.nodes[#v.nodes + 1] = node
    for _, k in ipairs(SUMMED) do v[k] = v[k] + (tonumber(info[k]) or 0) end
    local maxmemory = tonumber(info.maxmemory) or 0
    if maxmemory == 0 then unlimited = true end
    v.maxmemory = v.maxmemory + maxmemory
    if info.maxmemory_policy then policies[info.maxmemory_policy] = true end
    if #nodes == 1 then v.used_memory_human = info.used_memory_human end
  end
  if unlimited then v.maxmemory = 0 end -- a master without a limit: no limit in all
  v.used_memory_human = v.used_memory_human or C.size(v.used_memory)
  local names = {}
  for p in pairs(policies) do names[#names + 1] = p end
  sort(names)
  v.maxmemory_policy = concat(names, ",")
  local lookups = v.keyspace_hits + v.keyspace_misses
  v.hit_rate = lookups > 0 and v.keyspace_hits / lookups or NULL
  return v
end

-- ---- what processes published --------------------------------------------------

local META = { host = true, pid = true, started = true, updated = true, interval = true, hicache = true,
               prefix = true }

-- One published hash (HGETALL's flat list) as a process record, or nil
-- when it is not one (no pid or updated field).
local function process_of(key, flat, now_ms)
  local h = {}
  for i = 1, #flat - 1, 2 do h[flat[i]] = flat[i + 1] end
  local updated, pid = tonumber(h.updated), tonumber(h.pid)
  if not updated or not pid then return nil end
  local p = {
    key = key, host = h.host or "?", pid = pid, id = key:match(":([^:]*)$") or "",
    started = tonumber(h.started), updated = updated, interval = tonumber(h.interval),
    hicache = h.hicache, age_ms = now_ms - updated, total = {}, families = {}, ops = {},
  }
  if p.age_ms < 0 then p.age_ms = 0 end -- another machine's clock
  for field, value in pairs(h) do
    local n = tonumber(value)
    if n and not META[field] then
      local counter = field:match("^total%.([^.]+)$")
      if counter then
        p.total[counter] = n
      else
        local fam, c = field:match("^family%.(.+)%.([^.]+)$")
        if fam then
          p.families[fam] = p.families[fam] or {}
          p.families[fam][c] = n
        else
          local op, oc = field:match("^op%.(.+)%.([^.]+)$")
          if op then
            p.ops[op] = p.ops[op] or {}
            p.ops[op][oc] = n
          end
        end
      end
    end
  end
  return p
end

-- Every published process under prefix: list | nil, err.
local function published(cache, prefix, now_ms)
  local names, seen = {}, {}
  local ok, err = C.scan(cache, C.glob_escape(prefix) .. ":stats:*", function(keys)
    for _, k in ipairs(keys) do
      if not seen[k] then
        seen[k] = true
        names[#names + 1] = k
      end
    end
    return true
  end)
  if not ok then return nil, err end
  sort(names)
  local out = {}
  for _, key in ipairs(names) do
    local flat, herr = cache:command("HGETALL", key)
    if flat then
      local p = process_of(key, flat, now_ms)
      if p then out[#out + 1] = p end
    elseif not tostring(herr):find("^WRONGTYPE") then
      return nil, ("HGETALL %s: %s"):format(C.printable(key, 200), tostring(herr))
    end -- (a key of another kind under the name: not a published hash)
  end
  return out
end

local function rate(c)
  local hits, misses = c.hits or 0, c.misses or 0
  if hits + misses == 0 then return nil end
  return hits / (hits + misses)
end

local function traffic(c)
  return (c.hits or 0) + (c.misses or 0) + (c.sets or 0) + (c.deletes or 0)
end

-- The families summed over the processes (only `only`, when given),
-- sorted by traffic, then name.
local function families_of(procs, only)
  local by = {}
  for _, p in ipairs(procs) do
    for fam, c in pairs(p.families) do
      if only == nil or fam == only then
        local f = by[fam]
        if not f then
          f = { family = fam, processes = 0 }
          by[fam] = f
        end
        f.processes = f.processes + 1
        for k, n in pairs(c) do f[k] = (f[k] or 0) + n end
      end
    end
  end
  local list = {}
  for _, f in pairs(by) do
    f.hits, f.misses = f.hits or 0, f.misses or 0
    f.hit_rate = rate(f)
    list[#list + 1] = f
  end
  sort(list, function(a, b)
    local ta, tb = traffic(a), traffic(b)
    if ta ~= tb then return ta > tb end
    return a.family < b.family
  end)
  return list
end

-- ---- output ------------------------------------------------------------------

local function pct(r)
  if r == nil or r == NULL then return "-" end
  return format("%.1f%%", r * 100)
end

local function int(n)
  return format("%d", n or 0)
end

local function text_report(io, url, prefix, server, procs, fams, only)
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  add(("server %s (%d master%s)"):format(C.redact(url), #server.nodes, #server.nodes == 1 and "" or "s"))
  add(C.columns({
    { "  keyspace", ("hits %d  misses %d  hit rate %s"):format(server.keyspace_hits, server.keyspace_misses,
      pct(server.hit_rate)) },
    { "  keys", ("evicted %d  expired %d"):format(server.evicted_keys, server.expired_keys) },
    { "  memory", ("used %s  maxmemory %s  policy %s"):format(server.used_memory_human,
      server.maxmemory > 0 and C.size(server.maxmemory) or "none", server.maxmemory_policy ~= ""
        and server.maxmemory_policy or "-") },
  }):gsub("\n$", ""))
  add("")
  local what = ('prefix "%s"%s'):format(C.printable(prefix, 200),
    only and (', family "%s"'):format(C.printable(only, 200)) or "")
  if #procs == 0 then
    if only then
      add(("no published stats for %s"):format(what))
    else
      add(("no published stats under %s (processes publish with hicache.new{stats_publish = true})"):format(what))
    end
    io.out(concat(lines, "\n") .. "\n")
    return
  end
  add(("published by %d process%s (%s)"):format(#procs, #procs == 1 and "" or "es", what))
  local rows = { { "  HOST", "PID", "ID", "AGE", "HITS", "MISSES", "HIT RATE", "SETS", "ERRORS" } }
  for _, p in ipairs(procs) do
    local c = only and p.families[only] or p.total
    rows[#rows + 1] = { "  " .. C.printable(p.host, 60), int(p.pid), C.printable(p.id, 16), C.duration(p.age_ms),
      int(c.hits), int(c.misses), pct(rate(c)), int(c.sets), int(c.errors) }
  end
  add((C.columns(rows):gsub("\n$", "")))
  add("")
  if #fams == 0 then
    add("no key families (keys without ':' count in the totals only)")
  else
    add("families, summed over the processes, by traffic")
    rows = { { "  FAMILY", "PROCS", "HITS", "MISSES", "HIT RATE", "SETS", "DELETES", "ERRORS" } }
    for _, f in ipairs(fams) do
      rows[#rows + 1] = { "  " .. C.printable(f.family, 60), int(f.processes), int(f.hits), int(f.misses),
        pct(f.hit_rate), int(f.sets), int(f.deletes), int(f.errors) }
    end
    add((C.columns(rows):gsub("\n$", "")))
  end
  io.out(concat(lines, "\n") .. "\n")
end

local function json_report(io, prefix, server, procs, fams, only)
  local jprocs = C.array({})
  for _, p in ipairs(procs) do
    local c = only and p.families[only] or p.total
    jprocs[#jprocs + 1] = {
      key = p.key, host = p.host, pid = p.pid, id = p.id, started = p.started, updated = p.updated,
      age_ms = p.age_ms, interval = p.interval, hicache = p.hicache,
      hits = c.hits or 0, misses = c.misses or 0, hit_rate = rate(c) or NULL,
      total = p.total, families = p.families, ops = p.ops,
    }
  end
  local jfams = C.array({})
  for i, f in ipairs(fams) do
    jfams[i] = f
    if f.hit_rate == nil then f.hit_rate = NULL end
  end
  io.out(C.json({ prefix = prefix, family = only, server = server, processes = jprocs, families = jfams }) .. "\n")
end

--- run(args, io) -> exit code
function S.run(args, io)
  local o, err = C.parse(args, SPEC)
  if not o then return C.fail(io, S.name, err, C.USAGE) end
  if o[1] == nil then return C.fail(io, S.name, "a Redis URL is required (" .. S.usage .. ")", C.USAGE) end
  if o[2] ~= nil then return C.fail(io, S.name, ("unexpected argument '%s'"):format(C.printable(o[2], 60)), C.USAGE) end
  if o.family ~= nil and (o.family == "" or o.family:find(":", 1, true)) then
    return C.fail(io, S.name, "--family needs a key family: the text of a key before its first ':'", C.USAGE)
  end
  local cache, cerr, code = C.connect(o[1], o)
  if not cache then return C.fail(io, S.name, cerr, code) end
  local prefix = o.prefix or ""
  local server, serr = server_view(cache)
  if not server then
    cache:close()
    return C.fail(io, S.name, serr)
  end
  local now_ms = core.time_ms()
  local procs, perr = published(cache, prefix, now_ms)
  cache:close()
  if not procs then return C.fail(io, S.name, perr) end
  if o.family then
    local kept = {}
    for _, p in ipairs(procs) do
      if p.families[o.family] then kept[#kept + 1] = p end
    end
    procs = kept
  end
  sort(procs, function(a, b)
    if a.host ~= b.host then return a.host < b.host end
    if a.pid ~= b.pid then return a.pid < b.pid end
    return a.id < b.id
  end)
  local fams = families_of(procs, o.family)
  if o.json then
    json_report(io, prefix, server, procs, fams, o.family)
  else
    text_report(io, o[1], prefix, server, procs, fams, o.family)
  end
  return C.OK
end

-- for specs
S._process_of, S._parse_info = process_of, parse_info

return S
