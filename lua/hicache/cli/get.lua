--- hicache get: one value, decoded and pretty-printed, with what hicache
-- keeps around it (format, TTL, tags and whether they are current, soft
-- expiry, the lease of a fill in flight).

local C = require "hicache.cli.common"
local L = require "hicache.cli.layout"

local type, tostring, ipairs = type, tostring, ipairs
local string_format, table_concat = string.format, table.concat

local M = {
  name = "get",
  summary = "decode and pretty-print one value (msgpack, json, zstd; encrypted with --key-file)",
  usage = "hicache get URL KEY [--prefix P] [--version N] [--raw-key] [--key-file FILE] [--serializer S] [--json]",
}

M.help = [[
Reads KEY as the cache with prefix P and version N would (the Redis key
P:N:KEY), decodes it and prints one header line, then the value:
  # app:1:user:42  msgpack  52 B  ttl 4m59s  tags users (current)  soft +1m39s
  {
    "name": "Ann",
    "roles": ["admin", "dev"]
  }
Strings are quoted with their non-UTF-8 and control bytes as \xNN; tables
are objects with sorted keys (or arrays); integers and floats stay apart
(3 and 3.0). Tags are "current" while every tag's token still matches: an
entry whose tags moved on reads as a miss (it is shown anyway).

Options:
  --version N        the key version (default 1)
  --raw-key          KEY is the whole Redis key (as inspect lists it)
  --key-file FILE    keys to open encrypted values: one "<id> <64 hex characters>"
                     per line, # comments; key material is never printed
  --serializer S     msgpack or json (default: what the value looks like), or raw
                     (the stored bytes, escaped)
  --json             one JSON object: key, ttl_ms, size, format, compressed,
                     encrypted, tags, visible, soft_expiry_ms, compute_ms, lease, value
]] .. C.CONNECT_HELP .. [[


Exit codes: 0 printed, 1 not found (a message on stderr, nothing on stdout),
cannot decode or decrypt, or Redis failed, 2 usage error.]]

local SPEC = C.merge(C.CONNECT, { version = "integer", json = "flag", ["raw-key"] = "flag", ["key-file"] = "string",
                                  serializer = "string" })

-- ---- pretty printing ----------------------------------------------------------

local function is_int(v)
  if math.type then return math.type(v) == "integer" end
  return v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 and not (v == 0 and 1 / v < 0)
end

local function number(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  if is_int(v) then return string_format("%d", v) end
  local s = string_format("%.14g", v)
  if tonumber(s) ~= v then s = string_format("%.17g", v) end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

-- A string: JSON-like quotes; control and non-UTF-8 bytes as \xNN.
local QUOTE = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function quote_ascii(ch) return QUOTE[ch] or C.printable(ch) end
local function quote_bad(c) return string_format("\\x%02x", c) end
local function quote(s)
  return '"' .. C.escape(s, quote_ascii, quote_bad) .. '"'
end

local scalar
local function key_text(k)
  if type(k) == "string" then return quote(k) end
  return scalar(k)
end

function scalar(v, null)
  local t = type(v)
  if v == nil or v == null then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then return number(v) end
  if t == "string" then return quote(v) end
  return nil
end

local INLINE = 72

local function pretty(v, null, indent, out)
  local s = scalar(v, null)
  if s then
    out[#out + 1] = s
    return
  end
  if type(v) ~= "table" then
    out[#out + 1] = "<" .. type(v) .. ">"
    return
  end
  local list = C.is_list(v)
  local keys = list and nil or C.sorted_keys(v)
  if not list and #keys == 0 then
    out[#out + 1] = "{}"
    return
  end
  -- short tables of scalars on one line
  local parts, inline = {}, true
  local n = list and #v or #keys
  for i = 1, n do
    local k = list and i or keys[i]
    local e = scalar(v[k], null)
    if not e then inline = false break end
    parts[i] = list and e or (key_text(k) .. ": " .. e)
  end
  if inline then
    local one = list and ("[" .. table_concat(parts, ", ") .. "]") or ("{" .. table_concat(parts, ", ") .. "}")
    if #one + #indent <= INLINE then
      out[#out + 1] = one
      return
    end
  end
  local inner = indent .. "  "
  out[#out + 1] = list and "[\n" or "{\n"
  for i = 1, n do
    local k = list and i or keys[i]
    out[#out + 1] = inner
    if not list then out[#out + 1] = key_text(k) .. ": " end
    pretty(v[k], null, inner, out)
    out[#out + 1] = i < n and ",\n" or "\n"
  end
  out[#out + 1] = indent .. (list and "]" or "}")
end

--- M.pretty(value, null) -> text (indented, JSON-like, sorted keys)
function M.pretty(v, null)
  local out = {}
  pretty(v, null, "", out)
  return table_concat(out)
end

-- ---- the command ----------------------------------------------------------------

local reply = C.reply

function M.run(args, io)
  local o, err = C.parse(args, SPEC)
  if not o then return C.fail(io, M.name, err, C.USAGE) end
  if #o < 2 then return C.fail(io, M.name, "a Redis URL and a KEY are required (usage: " .. M.usage .. ")", C.USAGE) end
  if #o > 2 then return C.fail(io, M.name, "too many arguments (usage: " .. M.usage .. ")", C.USAGE) end
  local ser = o.serializer
  if ser ~= nil and ser ~= "msgpack" and ser ~= "json" and ser ~= "raw" then
    return C.fail(io, M.name, "--serializer must be msgpack, json or raw", C.USAGE)
  end
  local keys
  if o.key_file then
    local kerr
    keys, kerr = require("hicache.keyfile").read(o.key_file)
    if not keys then return C.fail(io, M.name, kerr, C.USAGE) end
  end
  local url, key = o[1], o[2]
  local cache, cerr, code = C.connect(url, o)
  if not cache then return C.fail(io, M.name, cerr, code) end
  local hicache = require "hicache"
  local null = hicache.null
  local P = o.prefix or ""
  local full = key
  if not o.raw_key then
    local ok, k = pcall(cache._key, cache, key)
    if not ok then
      cache:close()
      return C.fail(io, M.name, "bad KEY: " .. C.strip_where(k), C.USAGE)
    end
    full = k
  end
  local function done(rc, msg)
    cache:close()
    if msg then return C.fail(io, M.name, msg, rc) end
    return rc
  end
  local r, perr = cache:pipeline { { "GET", full }, { "PTTL", full }, { "GET", L.companion_name(P, full, "lease") } }
  if not r then return done(C.FAILED, perr) end
  local bytes, gerr = reply(r[1])
  if gerr then return done(C.FAILED, gerr) end
  if bytes == null or bytes == nil then return done(C.FAILED, "not found: " .. C.printable(full, 200)) end
  local pttl = reply(r[2])
  local lease = reply(r[3])
  local info = C.entry_info(bytes)
  info = info or { format = "unknown" }
  -- tags: current, or moved on (the entry then reads as a miss); only for
  -- a key of this prefix (the tag keys are named after it)
  local visible
  local c = L.classify(P, full)
  if info.tags and #info.tags > 0 and c and c.kind == "value" then
    local vis = cache:_visible { full }
    if vis then visible = #vis == 1 end
  end
  -- decode with the serializer the bytes are in, and the keys only for a
  -- sealed value (a cache with keys refuses plain ones): a cache of its
  -- own, the codec is per cache
  local decoder = cache
  ser = ser or (info.format == "json" and "json") or nil
  local sealed = info.encrypted ~= nil and keys ~= nil
  if ser ~= "raw" and (ser or sealed) then
    local dc, derr, dcode = C.open(url, o, { serializer = ser, encrypt = sealed and { keys = keys } or nil })
    if not dc then return done(dcode, derr) end
    decoder = dc
  end
  local value, verr
  if ser == "raw" then
    value = bytes
  else
    -- _decode_at: the bytes as stored at the full key (what an encrypted
    -- value is sealed to)
    local ok, v, e
    if decoder._decode_at then ok, v, e = pcall(decoder._decode_at, decoder, bytes, full)
    else ok, v, e = pcall(decoder.decode, decoder, bytes) end
    if ok then value, verr = v, e else verr = C.strip_where(v) end
    if ok and v == nil and e == nil then value = null end
  end
  if decoder ~= cache then decoder:close() end
  local soft_text
  if info.soft_ms then
    local left = info.soft_ms - require("hicache.core").time_ms()
    soft_text = left >= 0 and ("soft +" .. C.duration(left)) or ("stale for " .. C.duration(-left))
  end
  local holder = type(lease) == "string" and (lease:match("^[^:]*:(.*)$") or lease) or nil
  local size = #bytes
  if o.json then
    local obj = {
      key = full, ttl_ms = (type(pttl) == "number" and pttl >= 0) and pttl or null, size = size,
      format = info.format or "unknown", compressed = info.compressed == nil and null or info.compressed,
      encrypted = info.encrypted or null, tags = C.array(info.tags or {}),
      visible = visible == nil and null or visible,
      soft_expiry_ms = info.soft_ms or null, compute_ms = info.delta_ms or null, lease = holder or null,
    }
    if verr == nil then obj.value = value == nil and null or value end
    if verr then obj.error = verr end
    io.out(C.json(obj) .. "\n")
  else
    local h = { "# " .. C.printable(full, 200), C.format_word(info), C.size(size), "ttl " .. C.ttl(pttl) }
    if info.tags and #info.tags > 0 then
      local names = {}
      for i, t in ipairs(info.tags) do names[i] = C.printable(t, 60) end
      h[#h + 1] = "tags " .. table_concat(names, ",") .. (visible == true and " (current)" or visible == false
        and " (moved on: reads as a miss)" or "")
    end
    if soft_text then h[#h + 1] = soft_text end
    if holder then h[#h + 1] = "lease " .. C.short(holder) .. " (a fill in flight)" end
    io.out(table_concat(h, "  ") .. "\n")
    if verr == nil then io.out(M.pretty(value, null) .. "\n") end
  end
  if verr then
    if info.encrypted and not o.key_file then
      return done(C.FAILED, ("the value is encrypted (key id %s): give --key-file"):format(
        C.printable(info.encrypted, 40)))
    end
    return done(C.FAILED, "cannot decode: " .. tostring(verr))
  end
  return done(C.OK)
end

return M
