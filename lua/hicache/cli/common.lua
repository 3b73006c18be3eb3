--- hicache.cli.common: what the commands of the `hicache` tool share.
--
-- * options: C.parse(args, spec) -> o | nil, err (usage errors, exit 2);
--   `--name value`, `--name=value`, flags, `--` ends the options, -h/--help
-- * connecting: C.CONNECT (option spec), C.connect(url, o, extra) -> cache |
--   nil, err, exit code; the URL is anything hicache.new{url =} takes
-- * SCAN over every master: C.scan(cache, match, fn)
-- * values: C.entry_info(bytes), C.format_word(info)
-- * output: C.json(value) (a JSON writer with sorted object keys; no JSON
--   library needed), C.array(t), C.size(n), C.ttl(ms), C.printable(s),
--   C.columns(rows), C.short(token)
--
-- Nothing here writes to stdout or stderr: commands write through the io
-- table they get ({ out = fn(s), err = fn(s) }), so tests can capture it.
-- Runs on Lua 5.4 and LuaJIT.

local type, tostring, tonumber, pairs, ipairs, pcall = type, tostring, tonumber, pairs, ipairs, pcall
local string_format, string_byte, table_concat, table_sort = string.format, string.byte, table.concat, table.sort
local math_floor, math_huge = math.floor, math.huge

local C = {}

-- Exit codes (the contract of every command).
C.OK, C.FAILED, C.USAGE = 0, 1, 2

-- ---- options ------------------------------------------------------------

-- Option types: "flag" (no value), "string", "integer" (-1e15..1e15),
-- "count" (a non-negative integer), "seconds" (a positive number).
local function convert(kind, name, v)
  if kind == "string" then return v end
  if kind == "integer" or kind == "count" then
    local n = v:match("^%-?%d+$") and tonumber(v)
    if not n or n < -1e15 or n > 1e15 or (kind == "count" and n < 0) then
      return nil, ("--%s needs %s, got '%s'"):format(name,
        kind == "count" and "a non-negative integer" or "an integer", C.printable(v, 40))
    end
    return n
  end
  if kind == "seconds" then
    local n = tonumber(v)
    if not n or n ~= n or n <= 0 or n > 86400 then
      return nil, ("--%s needs a number of seconds (0 to 86400), got '%s'"):format(name, C.printable(v, 40))
    end
    return n
  end
  error("unknown option kind " .. tostring(kind))
end

--- C.parse(args, spec) -> o | nil, err
-- spec maps option names (without "--") to their kind. o holds the
-- positional arguments in o[1..n] and each option given under its name
-- with "-" replaced by "_" (o.key_file for --key-file); o.help for -h,
-- --help. An option given twice keeps its last value.
function C.parse(args, spec)
  local o, i, only_positional = {}, 1, false
  while args[i] ~= nil do
    local a = args[i]
    if only_positional or a == "-" or a:sub(1, 1) ~= "-" then
      o[#o + 1] = a
    elseif a == "--" then
      only_positional = true
    elseif a == "-h" or a == "--help" then
      o.help = true
    else
      local name, value = a:match("^%-%-([%w][%w%-]*)=(.*)$")
      if not name then name = a:match("^%-%-([%w][%w%-]*)$") end
      local kind = name and spec[name]
      if not kind then return nil, ("unknown option '%s'"):format(C.printable(a, 60)) end
      if kind == "flag" then
        if value ~= nil then return nil, ("--%s takes no value"):format(name) end
        value = true
      else
        if value == nil then
          i = i + 1
          value = args[i]
          if value == nil then return nil, ("--%s needs a value"):format(name) end
        end
        local err
        value, err = convert(kind, name, value)
        if value == nil then return nil, err end
      end
      o[(name:gsub("%-", "_"))] = value
    end
    i = i + 1
  end
  return o
end

--- C.merge(a, b, ...) -> a new spec with the options of every table.
function C.merge(...)
  local t = {}
  for i = 1, select("#", ...) do
    for k, v in pairs((select(i, ...))) do t[k] = v end
  end
  return t
end

-- ---- connecting ---------------------------------------------------------

--- The options of every command that connects.
C.CONNECT = {
  prefix = "string", timeout = "seconds",
  ["tls-ca"] = "string", ["tls-cert"] = "string", ["tls-key"] = "string",
  ["tls-server-name"] = "string", ["tls-insecure"] = "flag",
}

--- Their help lines (after an empty line).
C.CONNECT_HELP = [[

URL is anything hicache.new{url = ...} takes: redis://[user:password@]host[:port][/db],
rediss://... (TLS), unix:///path/to/socket, redis+cluster://host:port[,host:port...],
redis+sentinel://host:port[,...]/master_name[/db]. A password in the URL is never printed.
  --prefix P           the cache's key prefix (default "", as hicache.new)
  --timeout S          connect and command timeout in seconds (default 5)
  --tls-ca FILE        CA certificates (PEM) to verify the server with (implies TLS)
  --tls-cert FILE, --tls-key FILE   a client certificate and its key (implies TLS)
  --tls-server-name N  the name the server's certificate must carry
  --tls-insecure       do not verify the server's certificate]]

-- "file.lua:12: msg" -> "msg" (where an argument error was raised)
local function strip_where(msg)
  msg = tostring(msg)
  return (msg:gsub("^[^%s:]+:%d+: ", ""))
end
C.strip_where = strip_where

--- C.redact(url) -> url without its password (for messages)
function C.redact(url)
  url = tostring(url)
  return (url:gsub("^(%a[%w+.-]*://)([^@/]*)@", function(scheme, auth)
    local user = auth:match("^([^:]*):") or auth
    return scheme .. (user ~= "" and user .. ":" or ":") .. "***@"
  end))
end

--- C.open(url, o, extra) -> cache | nil, err, exit code
-- o: the parsed options (prefix, version, timeout, tls-*); extra: more
-- hicache.new options (serializer, encrypt, ...). Opens no connection;
-- bad options or URL: exit code 2.
function C.open(url, o, extra)
  if type(url) ~= "string" or url == "" then return nil, "a Redis URL is required", C.USAGE end
  local ok, hicache = pcall(require, "hicache")
  if not ok then return nil, "cannot load hicache: " .. strip_where(hicache), C.FAILED end
  local opts = {
    url = url, prefix = o.prefix or "", version = o.version or 1,
    timeout = o.timeout or 5, connect_timeout = o.timeout or 5, stats = false,
    pool = { size = 4 },
  }
  if o.tls_ca or o.tls_cert or o.tls_key or o.tls_server_name or o.tls_insecure then
    opts.tls = { ca_file = o.tls_ca, cert_file = o.tls_cert, key_file = o.tls_key,
                 server_name = o.tls_server_name, verify = not o.tls_insecure }
  end
  for k, v in pairs(extra or {}) do opts[k] = v end
  local made, cache, err = pcall(hicache.new, opts)
  if not made then return nil, strip_where(cache), C.USAGE end
  if not cache then return nil, tostring(err), C.USAGE end -- a TLS file that cannot be used
  return cache
end

--- C.connect(url, o, extra) -> cache | nil, err, exit code
-- C.open, then one PING: an unreachable server fails here (exit code 1).
function C.connect(url, o, extra)
  local cache, err, code = C.open(url, o, extra)
  if not cache then return nil, err, code end
  local pong, perr = cache:command("PING")
  if not pong then
    cache:close()
    return nil, ("cannot reach %s: %s"):format(C.redact(url), tostring(perr)), C.FAILED
  end
  return cache
end

--- C.fail(io, command, msg, code) -> code: "hicache: command: msg" on stderr
function C.fail(io, command, msg, code)
  io.err(("hicache: %s: %s\n"):format(command, C.printable(strip_where(msg), 2000, true)))
  return code or C.FAILED
end

-- ---- SCAN over every master ----------------------------------------------

C.SCAN_COUNT = 1000

--- C.scan(cache, match, fn) -> true | nil, err
-- SCAN MATCH match COUNT 1000 on every master (a cluster's, Sentinel's
-- current master, or the one server); fn(keys, node) per reply, with the
-- list of names (possibly empty). fn returning false stops the scan
-- (C.scan then returns true); fn returning nil, err stops with that error.
-- A name may come twice (SCAN's guarantee), never missing if it existed
-- during the whole scan.
function C.scan(cache, match, fn)
  local nodes = { false }
  if cache:_is_cluster() then
    local err
    nodes, err = cache:nodes()
    if not nodes then return nil, err end
  end
  for _, node in ipairs(nodes) do
    local cursor = "0"
    repeat
      local r, err
      if node then
        r, err = cache:node_command(node, "SCAN", cursor, "MATCH", match, "COUNT", C.SCAN_COUNT)
      else
        r, err = cache:command("SCAN", cursor, "MATCH", match, "COUNT", C.SCAN_COUNT)
      end
      if not r then return nil, err end
      cursor = r[1]
      local go, ferr = fn(r[2], node or nil)
      if go == false then return true end
      if go == nil and ferr ~= nil then return nil, ferr end
    until cursor == "0"
  end
  return true
end

--- C.glob_escape(s) -> s with the glob characters of SCAN MATCH escaped
function C.glob_escape(s)
  return (s:gsub("[%*%?%[%]\\]", "\\%0"))
end

-- ---- values ----------------------------------------------------------------

--- C.entry_info(bytes) -> core.entry_info(bytes) (what a stored value is:
-- envelope, soft_ms, delta_ms, tags, encrypted, compressed, format,
-- value_size; bytes may be a GETRANGE prefix) | nil, err
function C.entry_info(bytes)
  local ok, core = pcall(require, "hicache.core")
  if not ok then return nil, tostring(core) end
  local done, info = pcall(core.entry_info, bytes)
  if not done then return nil, strip_where(info) end
  return info
end

--- C.format_word(info) -> "msgpack", "zstd", "encrypted(k1)", ... in a word
function C.format_word(info)
  if not info then return "?" end
  if info.encrypted then return "encrypted(" .. C.printable(info.encrypted, 40) .. ")" end
  return C.printable(info.format or "unknown", 40)
end

-- ---- output ----------------------------------------------------------------

--- C.printable(s, max, keep_newlines) -> s with control and non-UTF-8
-- bytes as \xNN (and \ as \\), cut to max bytes with "..." after.
local function utf8_len(s, i)
  local c = string_byte(s, i)
  local n = c >= 0xF0 and c <= 0xF4 and 4 or c >= 0xE0 and c <= 0xEF and 3 or c >= 0xC2 and c <= 0xDF and 2 or nil
  if not n then return nil end
  for k = 1, n - 1 do
    local b = string_byte(s, i + k)
    if not b or b < 0x80 or b > 0xBF then return nil end
  end
  return n
end
C.utf8_len = utf8_len -- the length of the valid UTF-8 sequence at s[i], or nil

function C.printable(s, max, keep_newlines)
  s = tostring(s)
  local out, i, n, width = {}, 1, #s, 0
  max = max or math_huge
  while i <= n do
    if width >= max then
      out[#out + 1] = "..."
      break
    end
    local c = string_byte(s, i)
    local piece, len
    if c == 92 then piece, len = "\\\\", 1
    elseif c == 10 and keep_newlines then piece, len = "\n", 1
    elseif c < 32 or c == 127 then piece, len = string_format("\\x%02x", c), 1
    elseif c < 128 then piece, len = s:sub(i, i), 1
    else
      len = utf8_len(s, i)
      if len then piece = s:sub(i, i + len - 1) else piece, len = string_format("\\x%02x", c), 1 end
    end
    out[#out + 1] = piece
    width = width + 1
    i = i + len
  end
  return table_concat(out)
end

--- C.short(token) -> its first 8 characters and "..." (for owner tokens)
function C.short(token)
  token = tostring(token)
  if #token <= 10 then return C.printable(token) end
  return C.printable(token:sub(1, 8)) .. "..."
end

--- C.size(bytes) -> "123 B", "1.5 KiB", "12.0 MiB", ...
function C.size(n)
  if type(n) ~= "number" then return "-" end
  if n < 1024 then return string_format("%d B", n) end
  local units = { "KiB", "MiB", "GiB", "TiB" }
  local i = 0
  repeat
    n = n / 1024
    i = i + 1
  until n < 1024 or i == #units
  return string_format("%.1f %s", n, units[i])
end

--- C.ttl(ms) -> a duration for a PTTL reply: "none" (-1: no expiry),
-- "gone" (-2), "850ms", "12.5s", "4m05s", "3h20m", "2d04h"
function C.ttl(ms)
  if type(ms) ~= "number" then return "-" end
  if ms == -1 then return "none" end
  if ms < 0 then return "gone" end
  return C.duration(ms)
end

--- C.duration(ms) -> "850ms", "12.5s", "4m05s", "3h20m", "2d04h"
function C.duration(ms)
  if ms < 1000 then return string_format("%dms", math_floor(ms)) end
  local s = ms / 1000
  if s < 60 then return string_format("%.1fs", math_floor(s * 10) / 10) end
  s = math_floor(s)
  if s < 3600 then return string_format("%dm%02ds", math_floor(s / 60), s % 60) end
  if s < 86400 then return string_format("%dh%02dm", math_floor(s / 3600), math_floor(s % 3600 / 60)) end
  return string_format("%dd%02dh", math_floor(s / 86400), math_floor(s % 86400 / 3600))
end

--- C.columns(rows, right) -> text: rows (lists of strings) aligned in
-- columns two spaces apart; the last column is not padded. right[i]:
-- column i is aligned right.
function C.columns(rows, right)
  right = right or {}
  local width = {}
  for _, row in ipairs(rows) do
    for i = 1, #row - 1 do
      local w = C.width(row[i])
      if w > (width[i] or 0) then width[i] = w end
    end
  end
  local out = {}
  for _, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      local pad = i < #row and string.rep(" ", width[i] - C.width(cell)) or ""
      cells[i] = right[i] and pad .. cell or cell .. pad
    end
    out[#out + 1] = (table_concat(cells, "  "):gsub("%s+$", ""))
  end
  return table_concat(out, "\n") .. (#out > 0 and "\n" or "")
end

--- C.width(s) -> the number of UTF-8 characters of s (its display width
-- for the text hicache prints)
function C.width(s)
  local _, n = tostring(s):gsub("[^\128-\191]", "")
  return n
end

-- ---- JSON ------------------------------------------------------------------

local ARRAY = { __jsontype = "array" }

--- C.array(t) -> t, marked to be written as a JSON array (also when empty)
function C.array(t)
  return setmetatable(t or {}, ARRAY)
end

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
              ["\t"] = "\\t" }

--- C.escape(s, ascii, bad) -> s with valid UTF-8 sequences kept, each
-- ASCII character replaced by ascii(ch, byte) and each byte that does not
-- start valid UTF-8 by bad(byte): the walk JSON strings and quoted values share.
function C.escape(s, ascii, bad)
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = string_byte(s, i)
    local len = c >= 128 and utf8_len(s, i)
    if c < 128 then
      out[#out + 1] = ascii(s:sub(i, i), c)
      i = i + 1
    elseif len then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = bad(c)
      i = i + 1
    end
  end
  return table_concat(out)
end

-- A JSON string: valid UTF-8 passes; control characters are escaped; a
-- byte that does not start valid UTF-8 is written as \u00XX (its Latin-1
-- reading, so binary survives as a string).
local function json_ascii(ch, c) return ESC[ch] or ((c < 32 or c == 127) and string_format("\\u%04x", c) or ch) end
local function json_bad(c) return string_format("\\u%04x", c) end
local function json_string(s)
  return '"' .. C.escape(s, json_ascii, json_bad) .. '"'
end
C.json_string = json_string

local function is_int(v)
  if math.type then return math.type(v) == "integer" end
  return v == math_floor(v) and v > -2 ^ 53 and v < 2 ^ 53
end

local function json_number(v)
  if v ~= v or v == math_huge or v == -math_huge then return "null" end
  if is_int(v) then return string_format("%d", v) end
  local s = string_format("%.14g", v)
  if tonumber(s) ~= v then s = string_format("%.17g", v) end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

-- true when t's keys are exactly 1..n (n >= 1)
local function is_list(t)
  local n = #t
  if n == 0 then return false end
  local count = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
    count = count + 1
  end
  return count == n
end
C.is_list = is_list

--- C.sorted_keys(t) -> t's keys: numbers first (ascending), then strings
-- (bytewise), then the rest by their tostring
function C.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  local rank = { number = 1, string = 2 }
  table_sort(keys, function(a, b)
    local ra, rb = rank[type(a)] or 3, rank[type(b)] or 3
    if ra ~= rb then return ra < rb end
    if ra == 3 then return tostring(a) < tostring(b) end
    return a < b
  end)
  return keys
end

local function json_value(v, out, depth)
  local t = type(v)
  if depth > 100 then error("json: nesting too deep", 0) end
  if v == nil then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = v and "true" or "false"
  elseif t == "number" then out[#out + 1] = json_number(v)
  elseif t == "string" then out[#out + 1] = json_string(v)
  elseif t == "table" then
    if getmetatable(v) == ARRAY or is_list(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        json_value(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      for i, k in ipairs(C.sorted_keys(v)) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = json_string(type(k) == "string" and k or tostring(k))
        out[#out + 1] = ":"
        json_value(v[k], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    -- hicache.null (a light userdata) and anything else JSON lacks
    out[#out + 1] = "null"
  end
end

--- C.json(value) -> compact JSON text: objects with their keys sorted,
-- tables whose keys are 1..n (or marked by C.array) as arrays, NaN and
-- infinities as null, hicache.null as null.
function C.json(v)
  local out = {}
  json_value(v, out, 0)
  return table_concat(out)
end

--- C.is_tty(fd) -> true when file descriptor fd (2: stderr) is a terminal
function C.is_tty(fd)
  local r = os.execute(("[ -t %d ]"):format(fd))
  return r == true or r == 0
end

--- C.reply(r) -> r | nil, err: one reply of cache:pipeline ({false, err}
-- for a command Redis refused).
function C.reply(r)
  if type(r) == "table" and r[1] == false then return nil, r[2] end
  return r
end

return C
