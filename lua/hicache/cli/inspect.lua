--- hicache inspect: the keys hicache wrote for a prefix, with their TTL,
-- size, format, tags, soft expiry and lease holder (SCAN, never KEYS).

local C = require "hicache.cli.common"
local L = require "hicache.cli.layout"

local ipairs, type, tostring = ipairs, type, tostring

local M = {
  name = "inspect",
  summary = "list the keys of a namespace: TTL, size, format, tags, soft expiry, leases, locks",
  usage = "hicache inspect URL [--prefix P] [--version N] [--json] [--limit N] [--progress] [pattern]",
}

M.help = [[
Lists what hicache keeps in Redis for prefix P and key version N (default 1):
  value       a value key P:N:k: TTL, size, format (msgpack, json, integer, zstd
              when compressed, encrypted(<key id>)), tags, soft expiry and
              compute time (get_or_set with stale/early), the lease holder
  lease, wake a get_or_set fill in flight on k and the list its waiters wait on
  epoch       the namespace epoch (moved on by clear/delete_pattern), its wake-up lists
  tag         a tag's current token          lock, fence, lock_wake   a lock's keys
  stats       counters a process published (stats_publish)
Without a pattern every such key of the prefix is listed; with a glob pattern
(as cache:keys: *, ?, [abc]) only value keys k matching it and their leases
and wake-up lists. Keys are found with SCAN (COUNT 1000) on every master, never
KEYS; a key may show twice if Redis resized its table meanwhile.

Options:
  --version N   the key version (default 1)
  --json        one JSON array of objects (see README) instead of the table
  --limit N     stop after N keys
  --progress    a progress line on stderr even when stderr is not a terminal
                (it is shown on a terminal; the final count goes to stderr for
                more than 1000 keys)
]] .. C.CONNECT_HELP .. [[


Exit codes: 0 listed (also when nothing matches), 1 Redis failed, 2 usage error.]]

local SPEC = C.merge(C.CONNECT, { version = "integer", json = "flag", limit = "count", progress = "flag" })

local BLOCK = 1000 -- rows sorted and aligned together
local PROBE = 4095 -- GETRANGE 0 4095: the envelope header of nearly every entry

-- A reply of a pipeline: the value, or nil, err for {false, "ERR ..."}.
local reply = C.reply

-- The commands that describe a name of each kind (after PTTL).
local function commands(P, c)
  local k = c.name
  local kind = c.kind
  if kind == "value" then
    return { { "STRLEN", k }, { "GETRANGE", k, 0, PROBE }, { "GET", L.companion_name(P, k, "lease") } }
  elseif kind == "wake" or kind == "epoch_wake" or kind == "lock_wake" then
    return { { "LLEN", k } }
  elseif kind == "stats" then
    return { { "HMGET", k, "host", "pid", "updated" } }
  end
  return { { "STRLEN", k }, { "GET", k } }
end

-- "<epoch>:<token>" -> token, epoch
local function lease_parts(v)
  if type(v) ~= "string" then return nil end
  local e, t = v:match("^([^:]*):(.*)$")
  if not e then return v end
  return t, e
end

local function value_row(cache, row, c, r, null, now_ms)
  local size, probe, lease = reply(r[1]), reply(r[2]), reply(r[3])
  row.size = type(size) == "number" and size or null
  local info, err
  if type(probe) == "string" then
    info, err = C.entry_info(probe)
    -- a header longer than the probe (many long tag names): read it all
    local short = not info or (not info.envelope and probe:byte(1) == 0xc9)
    if short and type(size) == "number" and size > #probe then
      local all = cache:command("GET", c.name)
      if type(all) == "string" then info, err = C.entry_info(all) end
    end
  end
  local text = {}
  if info then
    row.format = info.format or "unknown"
    row.compressed = info.compressed == nil and null or info.compressed
    row.encrypted = info.encrypted or null
    row.envelope = info.envelope and true or false
    text[1] = C.format_word(info)
    if info.tags then
      row.tags = C.array(info.tags)
      local names = {}
      for i, t in ipairs(info.tags) do names[i] = C.printable(t, 40) end
      text[#text + 1] = "tags=" .. table.concat(names, ",")
    else
      row.tags = C.array {}
    end
    if info.soft_ms then
      row.soft_expiry_ms, row.compute_ms = info.soft_ms, info.delta_ms
      local left = info.soft_ms - now_ms
      text[#text + 1] = left >= 0 and ("soft=+" .. C.duration(left)) or ("stale=" .. C.duration(-left))
    end
  else
    row.format = "unknown"
    row.error = err or "unreadable"
    text[1] = "unreadable" .. (err and (" (" .. C.printable(err, 60) .. ")") or "")
  end
  local holder, epoch = lease_parts(lease)
  if holder then
    row.lease, row.lease_epoch = holder, epoch or null
    text[#text + 1] = "lease=" .. C.short(holder)
  else
    row.lease = null
  end
  row.text = table.concat(text, " ")
end

local function other_row(row, c, r, null)
  local kind = c.kind
  if kind == "wake" or kind == "epoch_wake" or kind == "lock_wake" then
    local n = reply(r[1])
    row.length = type(n) == "number" and n or null
    row.text = ("waiting tokens=%s"):format(tostring(n or "?"))
  elseif kind == "stats" then
    local h = reply(r[1]) or {}
    local host = type(h[1]) == "string" and h[1] or c.host
    local pid = type(h[2]) == "string" and h[2] or tostring(c.pid)
    row.host, row.pid, row.updated_ms = host, tonumber(pid) or pid, tonumber(h[3] or "") or null
    row.text = ("host=%s pid=%s"):format(C.printable(host, 60), C.printable(pid, 20))
  else
    local size, v = reply(r[1]), reply(r[2])
    row.size = type(size) == "number" and size or null
    v = type(v) == "string" and v or nil
    if kind == "lease" then
      local holder, epoch = lease_parts(v)
      row.lease, row.lease_epoch = holder or null, epoch or null
      row.text = holder and ("holder=" .. C.short(holder) .. " of " .. C.printable(c.value_key, 80)) or "-"
    elseif kind == "epoch" then
      row.epoch = v or null
      row.text = "epoch=" .. C.printable(v or "-", 40)
    elseif kind == "tag" then
      row.token = v or null
      row.text = "tag " .. C.printable(c.tag, 60) .. " token=" .. C.printable(v or "-", 40)
    elseif kind == "lock" then
      row.owner = v or null
      row.text = "lock " .. C.printable(c.lock, 60) .. " owner=" .. (v and C.short(v) or "-")
    elseif kind == "fence" then
      row.fence = v and (tonumber(v) or v) or null
      row.text = "lock " .. C.printable(c.lock, 60) .. " last fence=" .. C.printable(v or "-", 30)
    end
  end
end

-- Details of the classified names cs in one pipeline; rows (gone names
-- left out) or nil, err.
local function describe(cache, P, cs, null, now_ms)
  local cmds, at = {}, {}
  for i, c in ipairs(cs) do
    at[i] = #cmds + 1
    cmds[#cmds + 1] = { "PTTL", c.name }
    for _, cmd in ipairs(commands(P, c)) do cmds[#cmds + 1] = cmd end
  end
  if #cmds == 0 then return {} end
  local r, err = cache:pipeline(cmds)
  if not r then return nil, err end
  local rows = {}
  for i, c in ipairs(cs) do
    local pttl = reply(r[at[i]])
    if pttl ~= -2 then -- -2: gone since SCAN found it
      local row = { key = c.name, kind = c.kind, version = c.version, user_key = c.user_key,
                    tag = c.tag, lock = c.lock }
      row.ttl_ms = (type(pttl) == "number" and pttl >= 0) and pttl or null
      local rest = {}
      for j = at[i] + 1, (at[i + 1] or #r + 1) - 1 do rest[#rest + 1] = r[j] end
      if c.kind == "value" then value_row(cache, row, c, rest, null, now_ms)
      else other_row(row, c, rest, null) end
      row.ttl_text = C.ttl(pttl)
      rows[#rows + 1] = row
    end
  end
  return rows
end

local function text_rows(rows, header)
  local t = {}
  if header then t[1] = { "KIND", "TTL", "SIZE", "KEY", "DETAILS" } end
  for _, row in ipairs(rows) do
    local size = type(row.size) == "number" and C.size(row.size) or (type(row.length) == "number"
      and (row.length == 1 and "1 item" or ("%d items"):format(row.length)) or "-")
    t[#t + 1] = { row.kind, row.ttl_text, size, C.printable(row.key, 120), row.text or "" }
  end
  return C.columns(t)
end

-- The JSON object of a row (without the text-only fields).
local function json_row(row)
  local o = {}
  for k, v in pairs(row) do
    if k ~= "text" and k ~= "ttl_text" then o[k] = v end
  end
  return C.json(o)
end

function M.run(args, io)
  local o, err = C.parse(args, SPEC)
  if not o then return C.fail(io, M.name, err, C.USAGE) end
  if #o < 1 then return C.fail(io, M.name, "a Redis URL is required (usage: " .. M.usage .. ")", C.USAGE) end
  if #o > 2 then return C.fail(io, M.name, "too many arguments (usage: " .. M.usage .. ")", C.USAGE) end
  local pattern = o[2]
  local cache, cerr, code = C.connect(o[1], o)
  if not cache then return C.fail(io, M.name, cerr, code) end
  local null = require("hicache").null
  local now_ms = require("hicache.core").time_ms()
  local P, N = o.prefix or "", o.version or 1
  local ns = P .. ":" .. N .. ":"
  local esc = C.glob_escape
  local passes
  if pattern then
    passes = { esc(ns) .. pattern, esc(P) .. ":h:" .. esc(ns) .. pattern .. ":*" }
    if not P:find("[{}]") then passes[3] = "{" .. esc(ns) .. pattern .. "}:*" end
  else
    passes = { esc(P) .. ":*" }
    if not P:find("[{}]") then passes[2] = "{" .. esc(ns) .. "*" end
  end
  local progress = o.progress or C.is_tty(2)
  local scanned, listed, other_versions, foreign = 0, 0, 0, 0
  local limit = o.limit
  local first, shown, pending = true, 0, {}
  if o.json then io.out("[") end
  -- rows go out sorted by name in blocks of up to BLOCK (one block for
  -- most namespaces), the text table aligned per block
  local function flush()
    if #pending == 0 then return end
    if shown > 0 then -- the progress line off before the table (both may be on the terminal)
      io.err("\r" .. string.rep(" ", shown) .. "\r")
      shown = 0
    end
    table.sort(pending, function(a, b) return a.key < b.key end)
    if o.json then
      local parts = {}
      for i, row in ipairs(pending) do parts[i] = json_row(row) end
      io.out((first and "\n" or ",\n") .. table.concat(parts, ",\n"))
    else
      io.out(text_rows(pending, first))
    end
    first, pending = false, {}
  end
  local function each(names)
    scanned = scanned + #names
    local cs = {}
    for _, name in ipairs(names) do
      local c = L.classify(P, name)
      if not c then
        foreign = foreign + 1
      elseif c.version ~= nil and c.version ~= N then
        other_versions = other_versions + 1
      elseif not pattern or c.kind == "value" or c.kind == "lease" or c.kind == "wake" then
        if limit and listed + #cs >= limit then break end
        cs[#cs + 1] = c
      end
    end
    local rows, derr = describe(cache, P, cs, null, now_ms)
    if not rows then return nil, derr end
    for _, row in ipairs(rows) do pending[#pending + 1] = row end
    if #pending >= BLOCK then flush() end
    listed = listed + #rows
    if progress then
      local line = ("inspect: %d names scanned, %d keys listed"):format(scanned, listed)
      io.err("\r" .. line)
      shown = #line
    end
    if limit and listed >= limit then return false end
    return true
  end
  local serr
  for _, match in ipairs(passes) do
    local ok
    ok, serr = C.scan(cache, match, each)
    if not ok then break end
    if limit and listed >= limit then break end
  end
  flush()
  if o.json then io.out(first and "]\n" or "\n]\n") end
  if shown > 0 then io.err("\r" .. string.rep(" ", shown) .. "\r") end -- the progress line off
  if serr then
    cache:close()
    return C.fail(io, M.name, serr, C.FAILED)
  end
  if progress or listed > 1000 then
    io.err(("inspect: %d keys listed (%d names scanned)\n"):format(listed, scanned))
  end
  if not o.json and listed == 0 then
    io.err(("inspect: no keys of prefix '%s' version %d%s\n"):format(C.printable(P, 80), N,
      pattern and (" matching '" .. C.printable(pattern, 80) .. "'") or ""))
  end
  if foreign > 0 then
    io.err(("inspect: %d other names under '%s:' are not hicache's names for this prefix\n"):format(foreign,
      C.printable(P, 80)))
  end
  if other_versions > 0 then
    io.err(("inspect: %d keys of other versions not listed (--version)\n"):format(other_versions))
  end
  if limit and listed >= limit then io.err(("inspect: stopped at --limit %d\n"):format(limit)) end
  cache:close()
  return C.OK
end

return M
