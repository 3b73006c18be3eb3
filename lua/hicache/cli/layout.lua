--- hicache.cli.layout: which Redis names hicache writes for a prefix, read
-- back from a name (for the `hicache` tool: inspect, locks,
-- flush-namespace). The names are built in C (src/core/hc_names.c,
-- src/lua/hc_cache.c); docs/FORMAT.md "Every key hicache writes" lists
-- them. For prefix P, version n, value key V = P:n:k:
--
--   P:n:k                          value          (n: a decimal integer)
--   {V}:lease, {V}:wake            lease, wake    (V without braces)
--   P:h:V:lease, P:h:V:wake        lease, wake    (V with a brace)
--   {P:n:}:epoch[:<token>]         epoch, epoch_wake (P:h:P:n::epoch... with braces)
--   P:e:{<slot tag>}:n:epoch[:<token>]   epoch, epoch_wake on a cluster
--   P:tag:{t}                      tag
--   P:lock:{l}, ...:fence, ...:wake   lock, fence, lock_wake
--   P:stats:<host>:<pid>:<id>      stats          (published counters)
--
-- L.classify(P, name) -> the kind and the parts of the name, or nil when
-- hicache does not write that name for prefix P. A name cannot say which
-- prefix wrote it: a prefix that starts with "P:<integer>" or
-- "{P:<integer>" writes names of P's layout (prefix "a:1", version 2 and
-- prefix "a", version 1 share "a:1:2:k"; prefix "{" writes "{:1:x}:lease",
-- key "x}:lease", the lease of key "x" of prefix "").

local type, tonumber = type, tonumber

local L = {}

local function starts(s, p) return s:sub(1, #p) == p end
local function ends(s, p) return #s >= #p and s:sub(-#p) == p end

-- "<integer>:<rest>" as hc_name_namespace prints a version (%lld)
local function version_and_rest(s)
  local v, rest = s:match("^(%-?%d+):(.*)$")
  if not v or v == "-0" or v:match("^%-?0%d") then return nil end
  return tonumber(v), rest
end

-- The companions of V = P:n:k: what is "lease", "wake", "epoch" or
-- "epoch:<hex token>" (the epoch ones only for k == "").
local function companion(P, V, what)
  if not starts(V, P .. ":") then return nil end
  local n, k = version_and_rest(V:sub(#P + 2))
  if not n then return nil end
  if what == "lease" or what == "wake" then
    return { kind = what, version = n, user_key = k, value_key = V }
  end
  if k ~= "" then return nil end
  if what == "epoch" then return { kind = "epoch", version = n } end
  local tok = what:match("^epoch:(%x+)$")
  if tok then return { kind = "epoch_wake", version = n, epoch = tok } end
  return nil
end

-- P:h:V:<what>: find <what> at the end (V may hold any byte)
local function braced_companion(P, rest)
  local V, what
  for _, w in ipairs { "lease", "wake" } do
    if ends(rest, ":" .. w) then V, what = rest:sub(1, -#w - 2), w end
  end
  if not V then
    if ends(rest, "::epoch") then
      V, what = rest:sub(1, -7), "epoch"
    else
      local v, tok = rest:match("^(.*:):epoch:(%x+)$")
      if v then V, what = v, "epoch:" .. tok end
    end
  end
  if not V or not V:find("[{}]") then return nil end -- a brace-free V has the {V}: form
  return companion(P, V, what)
end

local function lock_name(P, name)
  local inner = name:sub(#P + 8) -- after "P:lock:{"
  if ends(inner, "}:fence") then return { kind = "fence", lock = inner:sub(1, -8) } end
  if ends(inner, "}:wake") then return { kind = "lock_wake", lock = inner:sub(1, -7) } end
  if ends(inner, "}") and #inner > 1 then return { kind = "lock", lock = inner:sub(1, -2) } end
  return nil
end

--- L.classify(P, name) -> { kind =, version =, user_key =, value_key =,
-- tag =, lock =, epoch =, host =, pid = } | nil
-- kind: "value", "lease", "wake", "epoch", "epoch_wake", "tag", "lock",
-- "fence", "lock_wake", "stats".
function L.classify(P, name)
  if type(name) ~= "string" then return nil end
  local c
  if starts(name, P .. ":") then
    local r = name:sub(#P + 2)
    local n, k = version_and_rest(r)
    if n then
      c = { kind = "value", version = n, user_key = k, value_key = name }
    elseif starts(r, "h:") then
      c = braced_companion(P, r:sub(3))
    elseif starts(r, "e:{") then
      local tag, v, what = r:match("^e:{([^{}]+)}:(%-?%d+):(epoch.*)$")
      if tag and #tag <= 4 then
        c = companion(P, P .. ":" .. v .. ":", what)
        if c then c.slot_tag = tag end
      end
    elseif starts(r, "tag:{") and ends(r, "}") and #r > 6 then
      c = { kind = "tag", tag = r:sub(6, -2) }
    elseif starts(r, "lock:{") then
      c = lock_name(P, name)
    else
      local host, pid, id = r:match("^stats:(.+):(%d+):(%x+)$")
      if host then c = { kind = "stats", host = host, pid = tonumber(pid), id = id } end
    end
  elseif not P:find("[{}]") and starts(name, "{" .. P .. ":") then
    local close = name:find("}", 2, true)
    if close and name:sub(close + 1, close + 1) == ":" then
      local V = name:sub(2, close - 1)
      if not V:find("{", 1, true) then c = companion(P, V, name:sub(close + 2)) end
    end
  end
  if c then c.name = name end
  return c
end

--- L.companion_name(P, V, what) -> the name of V's companion ("lease",
-- "wake"), as hc_name_companion builds it
function L.companion_name(P, V, what)
  if V:find("[{}]") then return P .. ":h:" .. V .. ":" .. what end
  return "{" .. V .. "}:" .. what
end

--- L.lock_names(P, l) -> lock key, fence key, wake-up list
function L.lock_names(P, l)
  local key = P .. ":lock:{" .. l .. "}"
  return key, key .. ":fence", key .. ":wake"
end

--- L.tag_name(P, t) -> the tag's key
function L.tag_name(P, t)
  return P .. ":tag:{" .. t .. "}"
end

--- L.patterns(P) -> the SCAN MATCH patterns that find every name hicache
-- writes for prefix P (all versions): "P:*" and, when P has no brace,
-- "{P:*" (the companions of brace-free value keys).
function L.patterns(P, escape)
  local list = { escape(P) .. ":*" }
  if not P:find("[{}]") then list[2] = "{" .. escape(P) .. ":*" end
  return list
end

return L
