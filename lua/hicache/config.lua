--- hicache.config: validates hicache.new() options and parses Redis URLs.
-- Produces the flat, complete settings table that hicache.core.new takes.
-- Error messages name the option and never contain the URL or a password.

local tonumber, tostring, type, pairs, ipairs = tonumber, tostring, type, pairs, ipairs
local string_format, string_char = string.format, string.char
local huge = math.huge
-- defines cache:stats_publish(); its tick is the publisher core.new keeps
local publish = require "hicache.publish"

local _M = {}

_M.defaults = {
  prefix = "",
  version = 1,
  ttl = 300,
  serializer = "msgpack",
  compress = { min_size = 1024, level = 3 },  -- used when compress = true
  limits = { depth = 64, elements = 10000000, bytes = 512 * 1024 * 1024 },
  connect_timeout = 1,
  timeout = 1,
  keepalive = 60,
  pool = { size = 16, wait = 1, idle_check = 30, idle_poll = 1, lifetime = 0,
           backoff_base = 0.05, backoff_max = 2 },
  l1 = { max_bytes = 16 * 1024 * 1024, max_items = 0, ttl = 10, stale_if_error = 0, local_ttl = 1 },
  breaker = { failures = 3, probe = 0.25 },
  memory = { max_bytes = 64 * 1024 * 1024, max_items = 0, name = "default" },
}
local known_l1 = { max_bytes = true, max_items = true, ttl = true, stale_if_error = true, local_ttl = true,
                   families = true, prefixes = true, bcast = true }

local connection_fields = { "host", "port", "path", "db", "username", "password" }
local known = {
  url = true, host = true, port = true, path = true, db = true, username = true,
  password = true, connect_timeout = true, timeout = true, keepalive = true, pool = true,
  prefix = true, version = true, ttl = true, serializer = true, compress = true, limits = true,
  stats = true, on_event = true, logger = true, tls = true, transport = true,
  l1 = true, breaker = true, backend = true, max_bytes = true, max_items = true, name = true,
  cluster = true, sentinels = true, master_name = true, sentinel_username = true, sentinel_password = true,
  encrypt = true,
}
local serializers = { msgpack = true, json = true, raw = true }
local known_pool = { size = true, wait = true, idle_check = true, idle_poll = true, lifetime = true,
                     backoff_base = true, backoff_max = true }
local tls_files = { "ca_file", "ca_path", "cert_file", "key_file", "server_name" }
local known_tls = { verify = true }
for _, k in ipairs(tls_files) do known_tls[k] = true end

local function bad(name, what)
  return string_format("invalid option '%s': %s", name, what)
end

-- encrypt = {keys = {{id =, key = <32 bytes>}, ...}, families = {...}}
-- into s.encrypt_keys / s.encrypt_families (nil: every value sealed).
-- Messages name a key by its id and position, never by its bytes.
local function encrypt_settings(s, enc)
  if type(enc) ~= "table" then return bad("encrypt", "must be a table {keys = {...}}") end
  for k in pairs(enc) do
    if k ~= "keys" and k ~= "families" then return string_format("unknown option 'encrypt.%s'", tostring(k)) end
  end
  if s.serializer == "raw" then
    return bad("encrypt", "cannot be used with the raw serializer (it stores bytes as they are)")
  end
  local keys = enc.keys
  if type(keys) ~= "table" or keys[1] == nil then
    return bad("encrypt.keys", "must be a non-empty list of {id = ..., key = <32 bytes>} (the first one encrypts)")
  end
  local list, ids = {}, {}
  for i, k in pairs(keys) do
    local at = string_format("encrypt.keys[%s]", tostring(i))
    if type(i) ~= "number" or i % 1 ~= 0 or i < 1 or i > #keys then return bad("encrypt.keys", "must be a list") end
    if type(k) ~= "table" then return bad(at, "must be a table {id = ..., key = ...}") end
    for f in pairs(k) do
      if f ~= "id" and f ~= "key" then return string_format("unknown option '%s.%s'", at, tostring(f)) end
    end
    if type(k.id) ~= "string" or not k.id:match("^[%w_.%-]+$") or #k.id > 32 then
      return bad(at .. ".id", "must be 1 to 32 letters, digits, '_', '.' or '-'")
    end
    if ids[k.id] then return bad(at .. ".id", "'" .. k.id .. "' is used twice") end
    ids[k.id] = true
    if type(k.key) ~= "string" or #k.key ~= 32 then
      return bad(at .. ".key", string_format("must be a string of 32 bytes (got %s)",
        type(k.key) == "string" and (#k.key .. " bytes") or type(k.key)))
    end
    list[i] = { id = k.id, key = k.key }
  end
  if #list > 16 then return bad("encrypt.keys", "holds at most 16 keys") end
  s.encrypt_keys = list
  if enc.families ~= nil then
    if type(enc.families) ~= "table" then return bad("encrypt.families", "must be a list of key families") end
    local fams = {}
    for i, f in pairs(enc.families) do
      if type(i) ~= "number" or i % 1 ~= 0 or i < 1 or i > #enc.families then
        return bad("encrypt.families", "must be a list")
      end
      if type(f) ~= "string" or f == "" or #f > 63 or f:find(":", 1, true) then
        return bad("encrypt.families", "a family is 1 to 63 characters of a key before its first ':'")
      end
      fams[i] = f
    end
    if #fams > 32 then return bad("encrypt.families", "holds at most 32 families") end
    s.encrypt_families = fams
  end
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string_char(tonumber(h, 16)) end))
end

local function parse_db(s)
  if not s:match("^%d+$") then return nil end
  return tonumber(s)
end

-- "user:password" (percent-escaped) of a URL into f.username/f.password.
local function userinfo(f, auth)
  if not auth or auth == "" then return end
  local user, pass = auth:match("^([^:]*):(.*)$")
  if not user then user = auth end
  if user ~= "" then f.username = unescape(user) end
  if pass then f.password = unescape(pass) end
end

--- Parses a Redis URL into connection fields.
-- @return fields, or nil + message (a message never echoes the URL).
-- rediss:// is redis:// with f.tls = true.
function _M.parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, bad("url", "expected redis://..., rediss://... or unix://...") end
  scheme = scheme:lower()
  local f = {}
  if scheme == "rediss" then
    scheme, f.tls = "redis", true
  end
  local query
  rest, query = rest:match("^([^?]*)%??(.*)$")
  if scheme == "unix" then
    local auth, path = rest:match("^([^/]*)@(/.*)$")
    if auth then rest = path end
    if rest:sub(1, 1) ~= "/" then return nil, bad("url", "unix:// needs an absolute socket path") end
    f.path = unescape(rest)
    rest = auth
  elseif scheme == "redis" then
    local auth, hostport, db
    if rest:find("@", 1, true) then
      auth, hostport, db = rest:match("^(.*)@([^@/]*)/?([^/]*)$")
    else
      auth = nil
      hostport, db = rest:match("^([^/]*)/?([^/]*)$")
    end
    if not hostport then return nil, bad("url", "malformed") end
    local host, port
    if hostport:sub(1, 1) == "[" then -- an IPv6 literal: [addr] or [addr]:port
      local after
      host, after = hostport:match("^%[([%x:.]+)%](.*)$")
      if host then port = after:match("^:(%d+)$") or (after == "" and "" or nil) end
      if not host or not port or not host:find(":", 1, true) then
        return nil, bad("url", "malformed IPv6 host (expected [address] or [address]:port)")
      end
    else
      host, port = hostport:match("^([^:]*):?([^:]*)$")
      if not host or not host:match("^[%w.%-_]*$") then
        return nil, bad("url", "malformed host (a name, an IPv4 address or [an IPv6 address] expected)")
      end
    end
    if host ~= "" then f.host = host end
    if port ~= "" then
      f.port = tonumber(port:match("^%d+$"))
      if not f.port or f.port < 1 or f.port > 65535 then
        return nil, bad("url", "port must be an integer from 1 to 65535")
      end
    end
    if db ~= "" then
      f.db = parse_db(db)
      if not f.db then return nil, bad("url", "database must be a non-negative integer") end
    end
    rest = auth
  else
    return nil, bad("url", "unsupported scheme (use redis://, rediss:// or unix://)")
  end
  userinfo(f, rest)
  if query ~= "" then
    for pair in query:gmatch("[^&]+") do
      local k, v = pair:match("^([^=]+)=(.*)$")
      if k == "db" then
        if f.db then return nil, bad("url", "database given twice") end
        f.db = parse_db(v)
        if not f.db then return nil, bad("url", "database must be a non-negative integer") end
      else
        return nil, bad("url", "unknown query parameter")
      end
    end
  end
  return f
end

local function check_number(name, v, min, allow_min, max)
  if type(v) ~= "number" then return bad(name, "must be a number of seconds") end
  if v ~= v or v == huge or v > max then return bad(name, "must be finite and at most " .. max) end
  if v < min or (v == min and not allow_min) then
    return bad(name, (allow_min and "must be >= " or "must be > ") .. min)
  end
end

local function check_int(name, v, min, max)
  if type(v) ~= "number" or v ~= v or v % 1 ~= 0 then
    return bad(name, "must be an integer")
  end
  if v < min or v > max then return bad(name, string_format("must be from %d to %d", min, max)) end
end

-- The tls option (nil, a boolean or a table) and a rediss:// URL, flattened
-- into s.tls, s.tls_verify and s.tls_<file option>. Returns an error message.
local function tls_settings(s, tls, from_url)
  if tls == nil then tls = from_url or false end
  if tls == false then
    if from_url then return bad("tls", "cannot be false with a rediss:// URL") end
    s.tls = false
    return
  end
  if tls == true then tls = {} end
  if type(tls) ~= "table" then return bad("tls", "must be a table or a boolean") end
  for k in pairs(tls) do
    if not known_tls[k] then return string_format("unknown option 'tls.%s'", tostring(k)) end
  end
  for _, k in ipairs(tls_files) do
    local v = tls[k]
    if v ~= nil then
      if type(v) ~= "string" then return bad("tls." .. k, "must be a string") end
      if v == "" or v:find("%z") then return bad("tls." .. k, "must be a non-empty string without NUL") end
      s["tls_" .. k] = v
    end
  end
  if tls.verify ~= nil and type(tls.verify) ~= "boolean" then
    return bad("tls.verify", "must be a boolean (verification is on unless verify = false)")
  end
  if (tls.cert_file == nil) ~= (tls.key_file == nil) then
    return bad(tls.cert_file and "tls.key_file" or "tls.cert_file",
      "tls.cert_file and tls.key_file go together (a client certificate and its key)")
  end
  s.tls = true
  s.tls_verify = tls.verify ~= false
  if s.path and s.tls_verify and not s.tls_server_name then
    return bad("tls.server_name", "is required for TLS over a unix socket (or set tls.verify = false)")
  end
end

-- Inside OpenResty (the ngx API with cosockets) or not.
local function in_openresty()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.socket) == "table" and type(ngx.get_phase) == "function"
end

-- The transport option: "auto" (the default: cosockets inside OpenResty,
-- else hicache's own blocking socket), "blocking" or "cosocket". Sets
-- s.transport; returns an error message.
local function transport_settings(s, t)
  if t == nil then t = "auto" end
  if t ~= "auto" and t ~= "blocking" and t ~= "cosocket" then
    return bad("transport", 'must be "auto", "blocking" or "cosocket"')
  end
  if t == "auto" then t = in_openresty() and "cosocket" or "blocking" end
  if t == "cosocket" then
    if not in_openresty() then return bad("transport", '"cosocket" needs OpenResty (ngx.socket.tcp)') end
    -- ngx_lua 0.10.23 (Debian 12) has no tcpsock:setclientcert
    if s.tls_cert_file then
      return bad("tls.cert_file", "client certificates (mutual TLS) are not available on cosockets"
        .. " (this ngx_lua has no setclientcert)")
    end
    -- a cosocket verifies with nginx's lua_ssl_trusted_certificate
    for _, k in ipairs { "ca_file", "ca_path" } do
      if s["tls_" .. k] then
        return bad("tls." .. k, "is not used on cosockets: set lua_ssl_trusted_certificate in nginx.conf")
      end
    end
  end
  s.transport = t
end

local function string_list(name, list)
  if type(list) ~= "table" then return nil, bad(name, "must be a list of strings") end
  local out = {}
  for k, v in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > #list or k % 1 ~= 0 then return nil, bad(name, "must be a list") end
    if type(v) ~= "string" or v == "" or #v > 63 or v:find("[%z\n]") then
      return nil, bad(name, "must hold non-empty strings of at most 63 bytes, without NUL or newline")
    end
  end
  for i = 1, #list do out[i] = list[i] end
  if #out > 16 then return nil, bad(name, "holds at most 16 entries") end
  return out
end

-- opts.l1: the L1 near cache (part of the pool's identity, except the
-- families/prefixes filter, which is the cache's). Returns an error.
local function l1_settings(s, l1)
  s.l1_max_bytes = 0
  if l1 == nil or l1 == false then return end
  if l1 == true then l1 = {} end
  if type(l1) ~= "table" then return bad("l1", "must be a table or a boolean") end
  for k in pairs(l1) do
    if not known_l1[k] then return string_format("unknown option 'l1.%s'", tostring(k)) end
  end
  if s.transport == "cosocket" and s.tls then
    -- the invalidation thread is C (blocking sockets), which cannot use
    -- nginx's lua_ssl_trusted_certificate
    return bad("l1", "is not available over TLS with the cosocket transport")
  end
  local d = _M.defaults.l1
  s.l1_max_bytes = l1.max_bytes or d.max_bytes
  local e = check_int("l1.max_bytes", s.l1_max_bytes, 64 * 1024, 2 ^ 40); if e then return e end
  s.l1_max_items = l1.max_items or d.max_items
  e = check_int("l1.max_items", s.l1_max_items, 0, 2 ^ 40); if e then return e end
  s.l1_ttl = l1.ttl or d.ttl
  e = check_number("l1.ttl", s.l1_ttl, 0, true, 86400 * 365); if e then return e end
  s.l1_stale = l1.stale_if_error or d.stale_if_error
  e = check_number("l1.stale_if_error", s.l1_stale, 0, true, 86400 * 365); if e then return e end
  s.l1_local_ttl = l1.local_ttl or d.local_ttl
  e = check_number("l1.local_ttl", s.l1_local_ttl, 0, true, 86400); if e then return e end
  if l1.families ~= nil and l1.prefixes ~= nil then
    return bad("l1.prefixes", "cannot be combined with 'l1.families'")
  end
  local match
  if l1.families ~= nil then
    local f, err = string_list("l1.families", l1.families); if not f then return err end
    for i = 1, #f do
      if f[i]:find(":", 1, true) then return bad("l1.families", "a family is a key's text before its first ':'") end
      f[i] = f[i] .. ":"
    end
    match = f
  elseif l1.prefixes ~= nil then
    local f, err = string_list("l1.prefixes", l1.prefixes); if not f then return err end
    match = f
  end
  s.l1_match = match and table.concat(match, "\n") or nil
  if l1.bcast ~= nil and type(l1.bcast) ~= "boolean" then return bad("l1.bcast", "must be a boolean") end
  -- cosocket connections close without telling hicache (setkeepalive's
  -- idle timeout): only BCAST, registered by the L1 thread's own
  -- connection, does not depend on them
  s.l1_bcast = l1.bcast == true or s.transport == "cosocket"
end

-- opts.breaker: the pool's circuit breaker, or false. Returns an error.
local function breaker_settings(s, b)
  local d = _M.defaults.breaker
  if b == false then
    s.breaker_failures, s.breaker_probe = 0, d.probe
    return
  end
  if b == nil or b == true then b = {} end
  if type(b) ~= "table" then return bad("breaker", "must be a table or a boolean") end
  for k in pairs(b) do
    if k ~= "failures" and k ~= "probe" then return string_format("unknown option 'breaker.%s'", tostring(k)) end
  end
  s.breaker_failures = b.failures or d.failures
  local e = check_int("breaker.failures", s.breaker_failures, 1, 1e6); if e then return e end
  s.breaker_probe = b.probe or d.probe
  return check_number("breaker.probe", s.breaker_probe, 0, false, 3600)
end

-- backend = "memory": the cache lives in this process (hc_mem.c), so
-- every option that names a server is an error. Returns an error message.
local memory_refused = { "url", "host", "port", "path", "db", "username", "password", "tls", "transport", "l1",
                         "cluster", "sentinels", "master_name", "sentinel_username", "sentinel_password" }
local function memory_settings(s, opts)
  for _, k in ipairs(memory_refused) do
    if opts[k] ~= nil then return bad(k, 'cannot be used with backend = "memory" (there is no server)') end
  end
  local d = _M.defaults.memory
  s.backend, s.transport, s.db = "memory", "blocking", 0
  s.mem_max_bytes = opts.max_bytes or d.max_bytes
  local e = check_int("max_bytes", s.mem_max_bytes, 64 * 1024, 2 ^ 40); if e then return e end
  s.mem_max_items = opts.max_items or d.max_items
  e = check_int("max_items", s.mem_max_items, 0, 2 ^ 40); if e then return e end
  s.mem_name = opts.name == nil and d.name or opts.name
  if type(s.mem_name) ~= "string" or s.mem_name == "" or #s.mem_name > 256 or s.mem_name:find("%z") then
    return bad("name", "must be a non-empty string of at most 256 bytes, without NUL")
  end
end

-- "host:port" or "[v6]:port" -> host, port; nil when malformed.
local function host_port(a)
  if type(a) ~= "string" then return nil end
  local host, port = a:match("^%[([%x:.]+)%]:(%d+)$")
  if not host then host, port = a:match("^([%w.%-_]+):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  return host, port
end

-- A list of "host:port" (cluster seeds, sentinels) -> "h:p\nh:p", or nil, err.
local function address_list(name, list)
  if type(list) ~= "table" or #list == 0 then
    return nil, bad(name, 'must be a non-empty list of "host:port" strings')
  end
  local out = {}
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > #list or k % 1 ~= 0 then return nil, bad(name, "must be a list") end
  end
  if #list > 64 then return nil, bad(name, "holds at most 64 addresses") end
  for i = 1, #list do
    local host, port = host_port(list[i])
    if not host then return nil, bad(name, 'entries must be "host:port" (or "[IPv6]:port")') end
    out[i] = host .. ":" .. port
  end
  return table.concat(out, "\n"), host_port(list[1])
end

-- redis+cluster://[user:pass@]h:p,h:p  and
-- redis+sentinel://[user:pass@]h:p,h:p/master_name[/db]  (rediss+...: TLS)
-- -> fields {cluster = list | sentinels = list, master_name, db, username,
-- password, tls}, or nil when url is not of these schemes, or nil, err.
function _M.parse_topology_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and scheme:lower()
  local kinds = { ["redis+cluster"] = "cluster", ["rediss+cluster"] = "cluster",
                  ["redis+sentinel"] = "sentinels", ["rediss+sentinel"] = "sentinels" }
  local kind = kinds[scheme or ""]
  if not kind then return nil end
  local f = { tls = scheme:sub(1, 6) == "rediss" or nil }
  local auth, hosts, path = rest:match("^(.*)@([^@/]*)(.*)$")
  if not auth then hosts, path = rest:match("^([^/]*)(.*)$") end
  userinfo(f, auth)
  local list = {}
  for a in (hosts or ""):gmatch("[^,]+") do list[#list + 1] = a end
  f[kind] = list
  if kind == "cluster" then
    if path ~= "" and path ~= "/" and path ~= "/0" then
      return nil, nil, bad("url", "a cluster has only database 0")
    end
  else
    local name, db = path:match("^/([^/]+)/?(%d*)$")
    if not name then return nil, nil, bad("url", "redis+sentinel:// needs /master_name after the sentinels") end
    f.master_name = unescape(name)
    if db ~= "" then f.db = tonumber(db) end
  end
  return f
end

-- cluster / sentinels: seeds or sentinels into s (placeholders in
-- s.host/s.port: the first address). Returns an error.
local function topology_settings(s, opts)
  if opts.cluster ~= nil and opts.sentinels ~= nil then return bad("sentinels", "cannot be combined with 'cluster'") end
  for _, k in ipairs { "master_name", "sentinel_username", "sentinel_password" } do
    if opts[k] ~= nil and opts.sentinels == nil then return bad(k, "is an option of 'sentinels'") end
  end
  local name = opts.cluster ~= nil and "cluster" or "sentinels"
  for _, k in ipairs { "host", "port", "path" } do
    if opts[k] ~= nil then return bad(k, "cannot be combined with '" .. name .. "'") end
  end
  local list, host, port = address_list(name, opts[name])
  if not list then return host end
  s.host, s.port = host, port
  if name == "cluster" then
    s.cluster_seeds = list
    -- a value key's companions ({V}:lease, ...) keep V's slot only when
    -- the prefix has no brace or one whole {hash tag}
    local p = opts.prefix
    if type(p) == "string" and p:find("[{}]") then
      local before, tag, after = p:match("^([^{}]*){([^{}]+)}([^{}]*)$")
      if not before or not tag or not after then
        return bad("prefix", "on a cluster, braces only as one {hash tag} (e.g. \"{app}\")")
      end
    end
    if s.db ~= 0 then return bad("db", "a cluster has only database 0") end
  else
    s.sentinel_addrs = list
    if type(opts.master_name) ~= "string" or opts.master_name == "" or #opts.master_name > 255
       or opts.master_name:find("[%z%s]") then
      return bad("master_name", "must be a non-empty string without spaces (the name the sentinels monitor)")
    end
    s.master_name = opts.master_name
    for _, k in ipairs { "sentinel_username", "sentinel_password" } do
      if opts[k] ~= nil and (type(opts[k]) ~= "string" or opts[k]:find("%z")) then
        return bad(k, "must be a string without NUL")
      end
      s[k] = opts[k]
    end
    if s.sentinel_username and not s.sentinel_password then
      return bad("sentinel_username", "needs sentinel_password")
    end
  end
  if s.transport == "cosocket" then
    return bad(name, 'is not available with the cosocket transport yet (the blocking transport only)')
  end
  if s.l1_max_bytes > 0 then return bad("l1", "is not available with '" .. name .. "' yet") end
end

-- stats_publish = true | {interval = s}: cache:stats() published as a
-- hash every interval (lua/hicache/publish.lua). Sets s.stats_publish (the
-- interval) and s.stats_publisher (what the C core calls from operations:
-- not on cosockets, where an operation cannot do I/O of its own; there
-- cache:stats_publish() is called from a timer). Returns an error.
known.stats_publish = true
_M.defaults.stats_publish = { interval = 10 }
local function publish_settings(s, p)
  if p == nil or p == false then return end
  if p == true then p = {} end
  if type(p) ~= "table" then return bad("stats_publish", "must be a table {interval = seconds} or a boolean") end
  for k in pairs(p) do
    if k ~= "interval" then return string_format("unknown option 'stats_publish.%s'", tostring(k)) end
  end
  local interval = p.interval == nil and _M.defaults.stats_publish.interval or p.interval
  local e = check_number("stats_publish.interval", interval, 1, true, 3600); if e then return e end
  if not s.stats then return bad("stats_publish", "publishes cache:stats(): it cannot be used with stats = false") end
  if s.backend == "memory" then
    return bad("stats_publish", 'cannot be used with backend = "memory" (no other process could read it)')
  end
  s.stats_publish = interval
  if s.transport ~= "cosocket" then s.stats_publisher = publish.tick end
end

--- Validates options and returns the settings for hicache.core.new.
-- @return settings, or nil + message
function _M.settings(opts)
  opts = opts or {}
  if type(opts) ~= "table" then return nil, "options must be a table" end
  for k in pairs(opts) do
    if not known[k] then return nil, string_format("unknown option '%s'", tostring(k)) end
  end
  local s, e = {}
  local backend = opts.backend == nil and "redis" or opts.backend
  if backend == "memory" then
    e = memory_settings(s, opts); if e then return nil, e end
  elseif backend ~= "redis" then
    return nil, bad("backend", 'must be "redis" or "memory"')
  else
    for _, k in ipairs { "max_bytes", "max_items", "name" } do
      if opts[k] ~= nil then return nil, bad(k, 'is an option of backend = "memory"') end
    end
    local url_tls
    if opts.url ~= nil then
      if type(opts.url) ~= "string" then return nil, bad("url", "must be a string") end
      local f, _, terr = _M.parse_topology_url(opts.url)
      local err
      if terr then return nil, terr end
      if f then
        for _, k in ipairs { "cluster", "sentinels", "master_name" } do
          if opts[k] ~= nil then return nil, bad(k, "cannot be combined with 'url'") end
        end
      else
        f, err = _M.parse_url(opts.url)
        if not f then return nil, err end
      end
      url_tls = f.tls
      for _, k in ipairs(connection_fields) do
        if opts[k] ~= nil then return nil, bad(k, "cannot be combined with 'url'") end
        s[k] = f[k]
      end
    else
      for _, k in ipairs(connection_fields) do s[k] = opts[k] end
    end

    for _, k in ipairs { "host", "path", "username", "password" } do
      if s[k] ~= nil and type(s[k]) ~= "string" then return nil, bad(k, "must be a string") end
      if s[k] and s[k]:find("%z") then return nil, bad(k, "must not contain a NUL byte") end
    end
    if s.host and s.path then return nil, bad("path", "cannot be combined with 'host'") end
    if s.path then
      if s.port ~= nil then return nil, bad("port", "cannot be combined with 'path'") end
      if s.path == "" then return nil, bad("path", "must not be empty") end
    else
      if s.host == "" then return nil, bad("host", "must not be empty") end
      s.host = s.host or "127.0.0.1"
      s.port = s.port or 6379
      e = check_int("port", s.port, 1, 65535); if e then return nil, e end
    end
    s.db = s.db or 0
    e = check_int("db", s.db, 0, 1000000); if e then return nil, e end
    if s.username and not s.password then return nil, bad("username", "needs a password") end
    e = tls_settings(s, opts.tls, url_tls); if e then return nil, e end

    e = transport_settings(s, opts.transport); if e then return nil, e end
  end

  local d = _M.defaults
  s.connect_timeout = opts.connect_timeout or d.connect_timeout
  s.timeout = opts.timeout or d.timeout
  e = check_number("connect_timeout", s.connect_timeout, 0, false, 86400); if e then return nil, e end
  e = check_number("timeout", s.timeout, 0, false, 86400); if e then return nil, e end
  s.connect_timeout = math.max(s.connect_timeout, 0.001)
  s.timeout = math.max(s.timeout, 0.001)

  local ka = opts.keepalive
  if ka == nil or ka == true then ka = d.keepalive elseif ka == false then ka = 0 end
  e = check_int("keepalive", ka, 0, 86400); if e then return nil, e end
  s.keepalive = ka

  local pool = opts.pool or {}
  if type(pool) ~= "table" then return nil, bad("pool", "must be a table") end
  for k in pairs(pool) do
    if not known_pool[k] then return nil, string_format("unknown option 'pool.%s'", tostring(k)) end
  end
  local dp = d.pool
  s.pool_size = pool.size or dp.size
  e = check_int("pool.size", s.pool_size, 1, 100000); if e then return nil, e end
  s.pool_wait = pool.wait or dp.wait
  e = check_number("pool.wait", s.pool_wait, 0, true, 86400); if e then return nil, e end
  s.idle_check = pool.idle_check or dp.idle_check
  e = check_number("pool.idle_check", s.idle_check, 0, true, 86400); if e then return nil, e end
  s.idle_poll = pool.idle_poll or dp.idle_poll
  e = check_number("pool.idle_poll", s.idle_poll, 0, true, 86400); if e then return nil, e end
  s.lifetime = pool.lifetime or dp.lifetime
  e = check_number("pool.lifetime", s.lifetime, 0, true, 86400 * 365); if e then return nil, e end
  s.backoff_base = pool.backoff_base or dp.backoff_base
  e = check_number("pool.backoff_base", s.backoff_base, 0, true, 60); if e then return nil, e end
  s.backoff_max = pool.backoff_max or dp.backoff_max
  e = check_number("pool.backoff_max", s.backoff_max, 0, true, 3600); if e then return nil, e end

  e = l1_settings(s, opts.l1); if e then return nil, e end
  e = breaker_settings(s, opts.breaker); if e then return nil, e end
  if backend == "redis" then
    local topo = opts
    if opts.url ~= nil then
      local f = _M.parse_topology_url(opts.url)
      if f then
        topo = { cluster = f.cluster, sentinels = f.sentinels, master_name = f.master_name,
                 sentinel_username = opts.sentinel_username, sentinel_password = opts.sentinel_password,
                 prefix = opts.prefix }
      end
    end
    if topo.cluster ~= nil or topo.sentinels ~= nil then
      s.host, s.port = nil, nil
      e = topology_settings(s, topo); if e then return nil, e end
    elseif opts.master_name ~= nil or opts.sentinel_username ~= nil or opts.sentinel_password ~= nil then
      for _, k in ipairs { "master_name", "sentinel_username", "sentinel_password" } do
        if opts[k] ~= nil then return nil, bad(k, "is an option of 'sentinels'") end
      end
    end
  end

  -- the cache (per handle, not part of the pool's identity)
  s.prefix = opts.prefix == nil and d.prefix or opts.prefix
  if type(s.prefix) ~= "string" then return nil, bad("prefix", "must be a string") end
  if #s.prefix > 256 or s.prefix:find("%z") then
    return nil, bad("prefix", "must be at most 256 bytes, without NUL")
  end
  if s.l1_max_bytes > 0 and s.l1_bcast and s.prefix ~= "" then
    -- every version of this cache's keys (and its tag keys) start so
    s.l1_prefixes = s.prefix .. ":"
  end
  s.version = opts.version == nil and d.version or opts.version
  e = check_int("version", s.version, -1e15, 1e15); if e then return nil, e end
  local ttl = opts.ttl == nil and d.ttl or opts.ttl
  e = check_number("ttl", ttl, 0, true, 1e11); if e then return nil, e end
  s.ttl_ms = math.ceil(ttl * 1000)
  s.serializer = opts.serializer == nil and d.serializer or opts.serializer
  if not serializers[s.serializer] then
    return nil, bad("serializer", "must be \"msgpack\", \"json\" or \"raw\"")
  end
  if opts.encrypt ~= nil then
    e = encrypt_settings(s, opts.encrypt); if e then return nil, e end
  end
  local compress = opts.compress
  if compress == nil or compress == false then
    s.compress_min, s.compress_level = 0, 3
  else
    if compress == true then compress = {} end
    if type(compress) ~= "table" then return nil, bad("compress", "must be a table or a boolean") end
    for k in pairs(compress) do
      if k ~= "min_size" and k ~= "level" then
        return nil, string_format("unknown option 'compress.%s'", tostring(k))
      end
    end
    s.compress_min = compress.min_size or d.compress.min_size
    e = check_int("compress.min_size", s.compress_min, 1, 1e9); if e then return nil, e end
    s.compress_level = compress.level or d.compress.level
    e = check_int("compress.level", s.compress_level, -7, 22); if e then return nil, e end
  end
  if opts.stats ~= nil and type(opts.stats) ~= "boolean" then return nil, bad("stats", "must be a boolean") end
  s.stats = opts.stats ~= false
  e = publish_settings(s, opts.stats_publish); if e then return nil, e end
  for _, k in ipairs { "on_event", "logger" } do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then return nil, bad(k, "must be a function") end
  end
  s.on_event = opts.on_event
  if opts.logger then
    local logger, on_event = opts.logger, opts.on_event
    s.on_event = function(ev)
      if on_event then on_event(ev) end
      if ev.status == "hit" or ev.status == "miss" or ev.status == "error" then
        logger(string_format("hicache %s %s key=%s family=%s %.3fms%s", ev.op, ev.status, tostring(ev.key),
          tostring(ev.family), ev.ms, ev.err and (" err=" .. ev.err) or ""))
      end
    end
  end
  local limits = opts.limits or {}
  if type(limits) ~= "table" then return nil, bad("limits", "must be a table") end
  for k in pairs(limits) do
    if d.limits[k] == nil then return nil, string_format("unknown option 'limits.%s'", tostring(k)) end
  end
  s.max_depth = limits.depth or d.limits.depth
  e = check_int("limits.depth", s.max_depth, 1, 128); if e then return nil, e end
  s.max_elements = limits.elements or d.limits.elements
  e = check_int("limits.elements", s.max_elements, 1, 1e9); if e then return nil, e end
  s.max_bytes = limits.bytes or d.limits.bytes
  e = check_int("limits.bytes", s.max_bytes, 1, 1024 * 1024 * 1024); if e then return nil, e end
  return s
end

return _M
