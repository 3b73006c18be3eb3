--- hicache flush-namespace: deletes every key hicache wrote under a
-- prefix (all versions), with SCAN + UNLINK in batches, never FLUSHDB.

local C = require "hicache.cli.common"
local L = require "hicache.cli.layout"

local ipairs, type, tostring = ipairs, type, tostring

local M = {
  name = "flush-namespace",
  summary = "delete every key hicache wrote under a prefix (SCAN + UNLINK, never FLUSHDB)",
  usage = "hicache flush-namespace URL --prefix P (--yes | --dry-run) [--list] [--empty-prefix]",
}

M.help = [[
Deletes what hicache keeps in Redis for prefix P, every key version: value
keys P:<n>:k, get_or_set leases and wake-up lists ({P:<n>:k}:lease and the
P:h:... forms), namespace epochs, tags P:tag:{t}, locks with their fences and
wake-up lists, published stats P:stats:... . It SCANs "P:*" and "{P:*" on
every master and UNLINKs, in batches of 500, only the names that are
hicache's for P (docs/FORMAT.md); any other key stays, and is counted.
A name cannot say which prefix wrote it: a prefix that starts with
"P:<integer>" or "{P:<integer>" writes names of P's layout (prefix "app:1",
version 2 writes "app:1:2:k", the key "2:k" of "app"), and they go too.
Locks are deleted too: their holders lose them.

Entries written while it runs (an application still using the prefix) may
stay: stop the writers first, or run it again.

Options:
  --prefix P         required: the prefix to delete (glob characters are literal)
  --yes              required to delete anything
  --dry-run          delete nothing: count (and with --list print) what would go
  --list             print each deleted (or, with --dry-run, each matching) key
  --empty-prefix     allow --prefix "" (keys like ":1:k", ":tag:{t}"): needed on
                     purpose, because an empty prefix is the default of hicache.new
]] .. C.CONNECT_HELP .. [[


Exit codes: 0 done (also when nothing matched), 1 Redis failed (what was
deleted before stays deleted; the count is printed), 2 usage error (also
without --yes).]]

local SPEC = C.merge(C.CONNECT, { yes = "flag", ["dry-run"] = "flag", list = "flag", ["empty-prefix"] = "flag" })

local BATCH = 500

local KIND_ORDER = { "value", "lease", "wake", "epoch", "epoch_wake", "tag", "lock", "fence", "lock_wake", "stats" }

local function summary(by_kind)
  local parts = {}
  for _, k in ipairs(KIND_ORDER) do
    if by_kind[k] then parts[#parts + 1] = ("%s %d"):format(k, by_kind[k]) end
  end
  return #parts > 0 and (" (" .. table.concat(parts, ", ") .. ")") or ""
end

function M.run(args, io)
  local o, err = C.parse(args, SPEC)
  if not o then return C.fail(io, M.name, err, C.USAGE) end
  if #o < 1 then return C.fail(io, M.name, "a Redis URL is required (usage: " .. M.usage .. ")", C.USAGE) end
  if #o > 1 then return C.fail(io, M.name, "too many arguments (usage: " .. M.usage .. ")", C.USAGE) end
  if o.prefix == nil then
    return C.fail(io, M.name, "--prefix is required (the prefix whose keys to delete)", C.USAGE)
  end
  local P = o.prefix
  if P == "" and not o.empty_prefix then
    return C.fail(io, M.name, "refusing the empty prefix without --empty-prefix", C.USAGE)
  end
  if not o.yes and not o.dry_run then
    return C.fail(io, M.name, "refusing to delete without --yes (--dry-run counts what would go)", C.USAGE)
  end
  local dry = o.dry_run
  local cache, cerr, code = C.connect(o[1], o)
  if not cache then return C.fail(io, M.name, cerr, code) end
  local deleted, matched, others, by_kind = 0, 0, 0, {}
  local function unlink(names)
    for from = 1, #names, BATCH do
      local batch = {}
      for i = from, math.min(from + BATCH - 1, #names) do batch[#batch + 1] = names[i] end
      local n, uerr = cache:command("UNLINK", (table.unpack or unpack)(batch)) -- luacheck: ignore 113
      if type(n) ~= "number" then return nil, uerr or tostring(n) end
      deleted = deleted + n
    end
    return true
  end
  local serr
  for _, match in ipairs(L.patterns(P, C.glob_escape)) do
    local ok
    ok, serr = C.scan(cache, match, function(names)
      local mine = {}
      for _, name in ipairs(names) do
        local c = L.classify(P, name)
        if c then
          mine[#mine + 1] = name
          by_kind[c.kind] = (by_kind[c.kind] or 0) + 1
        else
          others = others + 1
        end
      end
      matched = matched + #mine
      if o.list then
        for _, name in ipairs(mine) do io.out(C.printable(name) .. "\n") end
      end
      if dry or #mine == 0 then return true end
      return unlink(mine)
    end)
    if not ok then break end
  end
  cache:close()
  local what = ("prefix '%s'"):format(C.printable(P, 80))
  if serr then
    io.err(("flush-namespace: deleted %d keys of %s before the error\n"):format(deleted, what))
    return C.fail(io, M.name, serr, C.FAILED)
  end
  local report = io.out
  if o.list then report = io.err end -- stdout holds the names
  if dry then
    report(("dry run: would delete %d keys of %s%s\n"):format(matched, what, summary(by_kind)))
  else
    report(("deleted %d keys of %s%s\n"):format(deleted, what, summary(by_kind)))
  end
  if others > 0 then
    io.err(("flush-namespace: left %d other keys under '%s:' that are not hicache's names for this prefix\n")
      :format(others, C.printable(P, 80)))
  end
  return C.OK
end

return M
