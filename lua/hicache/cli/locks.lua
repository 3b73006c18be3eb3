--- hicache locks: the locks held under a prefix (cache:lock), with their
-- owner, remaining TTL, last fence and pending wake-up tokens.

local C = require "hicache.cli.common"
local L = require "hicache.cli.layout"

local type, ipairs, tostring = type, ipairs, tostring

local M = {
  name = "locks",
  summary = "list held locks: owner token, remaining TTL, last fence, wake-ups",
  usage = "hicache locks URL [--prefix P] [--json]",
}

M.help = [[
Lists the locks held now under prefix P (the keys P:lock:{name}, found with
SCAN on every master), sorted by name:
  LOCK  OWNER        TTL    FENCE             WAKE
  jobs  8a2da2d4...  29.9s  1795448356334970  0
OWNER is the start of the holder's random token (cache:lock's, 32 hex); TTL
the lock's PTTL; FENCE the last fence granted (P:lock:{name}:fence: strictly
increasing per lock); WAKE the wake-up tokens not yet taken from
P:lock:{name}:wake (a release pushes one for the next waiter; waiters block
on that list, so 0 is the usual value). Locks live outside the P:N: data
namespace: --version does not apply.

Options:
  --json    one JSON array of {name, key, owner, ttl_ms, fence, wake}
]] .. C.CONNECT_HELP .. [[


Exit codes: 0 listed (also when no lock is held), 1 Redis failed, 2 usage error.]]

local SPEC = C.merge(C.CONNECT, { json = "flag" })

local reply = C.reply

function M.run(args, io)
  local o, err = C.parse(args, SPEC)
  if not o then return C.fail(io, M.name, err, C.USAGE) end
  if #o < 1 then return C.fail(io, M.name, "a Redis URL is required (usage: " .. M.usage .. ")", C.USAGE) end
  if #o > 1 then return C.fail(io, M.name, "too many arguments (usage: " .. M.usage .. ")", C.USAGE) end
  local cache, cerr, code = C.connect(o[1], o)
  if not cache then return C.fail(io, M.name, cerr, code) end
  local null = require("hicache").null
  local P = o.prefix or ""
  local locks = {}
  local ok, serr = C.scan(cache, C.glob_escape(P) .. ":lock:{*}", function(names)
    local found = {}
    for _, name in ipairs(names) do
      local c = L.classify(P, name)
      if c and c.kind == "lock" then found[#found + 1] = c end
    end
    if #found == 0 then return true end
    local cmds = {}
    for _, c in ipairs(found) do
      local key, fence, wake = L.lock_names(P, c.lock)
      cmds[#cmds + 1] = { "GET", key }
      cmds[#cmds + 1] = { "PTTL", key }
      cmds[#cmds + 1] = { "GET", fence }
      cmds[#cmds + 1] = { "LLEN", wake }
    end
    local r, perr = cache:pipeline(cmds)
    if not r then return nil, perr end
    for i, c in ipairs(found) do
      local owner, pttl, fence, wake = reply(r[4 * i - 3]), reply(r[4 * i - 2]), reply(r[4 * i - 1]), reply(r[4 * i])
      if type(owner) == "string" and pttl ~= -2 then -- released since SCAN found it: not held
        locks[#locks + 1] = {
          name = c.lock, key = c.name, owner = owner,
          ttl_ms = (type(pttl) == "number" and pttl >= 0) and pttl or null, ttl = pttl,
          fence = type(fence) == "string" and (tonumber(fence) or fence) or null, fence_text = fence,
          wake = type(wake) == "number" and wake or null,
        }
      end
    end
    return true
  end)
  cache:close()
  if not ok then return C.fail(io, M.name, serr, C.FAILED) end
  table.sort(locks, function(a, b) return a.key < b.key end)
  if o.json then
    local parts = {}
    for i, l in ipairs(locks) do
      parts[i] = C.json { name = l.name, key = l.key, owner = l.owner, ttl_ms = l.ttl_ms, fence = l.fence,
                          wake = l.wake }
    end
    io.out(#parts == 0 and "[]\n" or ("[\n" .. table.concat(parts, ",\n") .. "\n]\n"))
    return C.OK
  end
  if #locks == 0 then
    io.err(("locks: no lock held under prefix '%s'\n"):format(C.printable(P, 80)))
    return C.OK
  end
  local rows = { { "LOCK", "OWNER", "TTL", "FENCE", "WAKE" } }
  for _, l in ipairs(locks) do
    rows[#rows + 1] = { C.printable(l.name, 80), C.short(l.owner), C.ttl(l.ttl),
                        type(l.fence_text) == "string" and C.printable(l.fence_text, 30) or "-",
                        l.wake == null and "-" or tostring(l.wake) }
  end
  io.out(C.columns(rows))
  return C.OK
end

return M
