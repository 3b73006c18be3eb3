-- The CLI's reading of key names (lua/hicache/cli/layout.lua) against the
-- names the C core builds (src/core/hc_names.c): every name of a prefix is
-- recognized with its kind and parts, no name of another prefix is taken
-- for one of P's (but the documented P:<integer> overlap), and the SCAN
-- patterns find them all. flush-namespace deletes only what this accepts.
local H = require "helper"
local L = require "hicache.cli.layout"
local C = require "hicache.cli.common"

local PREFIXES = { "", "app", "{app}", "{", "}", "{}", "a:1", "x{y}z", "{a:1:b}", "a}b{", ":", "1", "-1",
                   "{a", "lock", "tag", "h", "app:h", "{{", "a:tag", "a*b", "a?[c]\\" }
local KEYS = { "", "x", "a:lease", "rec:wake", "{k}", "}", "{", "u:{42}:p", "a}:lease", ":", "1:2", "lease",
               "wake", "epoch", "x:epoch:00ff", "h:x", "}:lease", "{x}:lease", "::epoch", "k:" }
local VERSIONS = { 1, -3, 12 }

-- Every name hicache writes for prefix p: { name, expected classification }.
local function names_of(p)
  local out = {}
  for _, ver in ipairs(VERSIONS) do
    local c = H.cache { prefix = p, version = ver }
    for _, k in ipairs(KEYS) do
      local n = c:_names(k)
      out[#out + 1] = { n.value, { kind = "value", version = ver, user_key = k, value_key = n.value } }
      out[#out + 1] = { n.lease, { kind = "lease", version = ver, user_key = k, value_key = n.value } }
      out[#out + 1] = { n.wake, { kind = "wake", version = ver, user_key = k, value_key = n.value } }
      out[#out + 1] = { n.epoch, { kind = "epoch", version = ver } }
      out[#out + 1] = { n.epoch_wake("00ff"), { kind = "epoch_wake", version = ver, epoch = "00ff" } }
      local t = k ~= "" and k or "t"
      out[#out + 1] = { c:_tag_name(t), { kind = "tag", tag = t } }
      local lock, fence, wake = c:_lock_names(t)
      out[#out + 1] = { lock, { kind = "lock", lock = t } }
      out[#out + 1] = { fence, { kind = "fence", lock = t } }
      out[#out + 1] = { wake, { kind = "lock_wake", lock = t } }
    end
    -- the per-slot epoch of a cluster (src/lua/hc_cache.c hc_epoch_slot_name)
    out[#out + 1] = { p .. ":e:{a3}:" .. ver .. ":epoch", { kind = "epoch", version = ver, slot_tag = "a3" } }
    out[#out + 1] = { p .. ":e:{a3}:" .. ver .. ":epoch:00ff",
                      { kind = "epoch_wake", version = ver, epoch = "00ff", slot_tag = "a3" } }
    c:close()
  end
  -- published counters (hicache.new{stats_publish = ...})
  out[#out + 1] = { p .. ":stats:web-1.example:4242:0a1b2c3d", { kind = "stats", host = "web-1.example", pid = 4242,
                                                                  id = "0a1b2c3d" } }
  return out
end

describe("the CLI's key layout", function()
  it("recognizes every name the core builds, with its kind and parts", function()
    for _, p in ipairs(PREFIXES) do
      for _, case in ipairs(names_of(p)) do
        local name, want = case[1], case[2]
        local got = L.classify(p, name)
        assert.is_table(got, ("prefix %q: %q not recognized"):format(p, name))
        want.name = name
        assert.same(want, got, ("prefix %q: %q"):format(p, name))
      end
    end
  end)

  it("builds the lease, wake-up, tag and lock names the core builds", function()
    for _, p in ipairs(PREFIXES) do
      local c = H.cache { prefix = p }
      for _, k in ipairs(KEYS) do
        local n = c:_names(k)
        assert.equal(n.lease, L.companion_name(p, n.value, "lease"))
        assert.equal(n.wake, L.companion_name(p, n.value, "wake"))
        local t = k ~= "" and k or "t"
        assert.equal(c:_tag_name(t), L.tag_name(p, t))
        assert.same({ c:_lock_names(t) }, { L.lock_names(p, t) })
      end
      c:close()
    end
  end)

  it("takes a name of another prefix only where the layouts meet: P:<integer>: and {P:<integer>:", function()
    -- A name cannot say which prefix wrote it: prefix "a:1", version 2 writes
    -- "a:1:2:k", the value key "2:k" of prefix "a"; prefix "{" writes
    -- "{:1:x}:lease" (key "x}:lease"), the lease of key "x" of prefix "".
    -- Everything else of another prefix -- its tags, locks, h-forms, epochs,
    -- stats -- is never taken for one of P's.
    local all, overlaps = {}, 0
    for _, p in ipairs(PREFIXES) do all[p] = names_of(p) end
    for _, p in ipairs(PREFIXES) do
      local lp = p:gsub("%p", "%%%0")
      for _, q in ipairs(PREFIXES) do
        if p ~= q then
          for _, case in ipairs(all[q]) do
            local name = case[1]
            local got = L.classify(p, name)
            if got then
              overlaps = overlaps + 1
              local ok = (got.kind == "value" and name:find("^" .. lp .. ":%-?%d+:") ~= nil)
                or ((got.kind == "lease" or got.kind == "wake" or got.kind == "epoch")
                    and name:find("^{" .. lp .. ":%-?%d+:") ~= nil)
              assert.is_true(ok, ("%q (prefix %q, %s) taken as %s of prefix %q"):format(name, q, case[2].kind,
                got.kind, p))
            end
          end
        end
      end
    end
    assert.is_true(overlaps > 0) -- the list of prefixes has such pairs ("a:1" and "{a", "" and "{")
  end)

  it("takes no name that is not hicache's", function()
    for _, name in ipairs { "app", "app:", "app:x", "app:1", "app:01:x", "app:-0:x", "app:+1:x", "app:1x:y",
                            "app:tag:{", "app:tag:{}", "app:tag:x", "app:lock:{", "app:lock:{}", "app:lock:x",
                            "app:stats:x", "app:stats:h:p:1", "app:h:app:1:x", "app:h:app:1:x:lease",
                            "{app:1:x}", "{app:1:x}:other", "{app:x}:lease", "{app:1:x}lease",
                            "{app:1:x}:epoch", "{app:1:}:epoch:", "{app:1:}:epoch:zz", "app:e:{a}:1:other",
                            "app:e:{abcde}:1:epoch", "app:h:app:1::epoch:", "apple:1:x", "xapp:1:x" } do
      assert.is_nil(L.classify("app", name), name)
    end
  end)

  it("SCAN with L.patterns finds every name of P, glob characters of P literal", function()
    local admin = H.admin()
    for _, p in ipairs(PREFIXES) do
      local p2 = "clilayout" .. p -- out of the way of other specs' keys
      local want, set = {}, { "MSET" }
      for _, case in ipairs(names_of(p2)) do
        want[case[1]] = true
        set[#set + 1] = case[1]
        set[#set + 1] = "1"
      end
      assert(admin:command(H.unpack(set)))
      local found = {}
      for _, match in ipairs(L.patterns(p2, C.glob_escape)) do
        assert(C.scan(admin, match, function(names)
          for _, n in ipairs(names) do found[n] = true end
          return true
        end))
      end
      local del = { "DEL" }
      for name in pairs(want) do
        assert.is_true(found[name] or false, ("prefix %q: %q not found"):format(p2, name))
        del[#del + 1] = name
      end
      admin:command(H.unpack(del))
    end
  end)
end)
