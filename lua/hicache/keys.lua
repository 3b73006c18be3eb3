--- hicache.keys: context-aware cache key builders.
--
--   local keys = require "hicache.keys"
--   local dashboard_key = keys.define("dashboard",
--     { "user_id", { "locale", "string" }, keys.set("permissions") })
--   dashboard_key{ user_id = 42, locale = "en", permissions = { "read", "admin" } }
--   --> "dashboard:user_id=42:locale=en:permissions=#<blake2b-128 hex>"
--
-- A builder raises (at the caller's line) on a missing field, an unknown
-- field, nil or NaN, or a value of a kind the field does not declare: a key
-- that does not encode its declared context cannot be built. The building
-- runs in C (src/lua/hc_keys.c); this module only checks the declaration.

local core = require "hicache.core"
local argerror = require "hicache.argerror"
local raise, non_list_key = argerror.raise, argerror.non_list_key

local type, setmetatable, ipairs, pairs, tostring = type, setmetatable, ipairs, pairs, tostring

local _M = { hash = core.hash }

local SCALAR_KINDS = { scalar = true, string = true, integer = true, boolean = true }

--- keys.set(name): an unordered collection (e.g. permissions): canonical
-- (sorted, de-duplicated) and hashed.
function _M.set(name) return { name, "set" } end

--- keys.list(name): an ordered collection, hashed.
function _M.list(name) return { name, "list" } end

--- keys.hashed(name): an opaque long value (a token, a query), hashed.
function _M.hashed(name) return { name, "hashed" } end

--- keys.define(family, fields, opts) -> builder
-- fields: a list of field names (any scalar: string, integer or boolean),
-- {name, kind} with kind "string" | "integer" | "boolean" | "scalar", or
-- keys.set / keys.list / keys.hashed. opts.max_length (default 200): longer
-- keys keep their head and end in "#" .. hash of the whole key.
-- opts.encrypt = true: the family's values are encrypted by every cache
-- (process-wide); a cache without encrypt keys cannot write them.
function _M.define(family, fields, opts)
  if type(family) ~= "string" or not family:match("^[%w_.%-]+$") then
    raise("family name must be a non-empty string of letters, digits, '_', '.' or '-'")
  end
  if type(fields) ~= "table" then raise("fields must be a list") end
  local stray = non_list_key(fields)
  if stray ~= nil then
    raise(("fields must be a list: the entry at %s is not in it (write keys.set(\"perms\"), not perms = ...)")
      :format(type(stray) == "string" and ("'" .. stray .. "'") or tostring(stray)))
  end
  opts = opts or {}
  if type(opts) ~= "table" then raise("opts must be a table") end
  for k in pairs(opts) do
    if k ~= "max_length" and k ~= "encrypt" then raise(("unknown keys.define option '%s'"):format(tostring(k))) end
  end
  if opts.encrypt ~= nil and type(opts.encrypt) ~= "boolean" then raise("opts.encrypt must be a boolean") end
  if opts.encrypt and #family > 63 then raise("an encrypted family name is at most 63 characters") end
  local max_length = opts.max_length or 200
  if type(max_length) ~= "number" or max_length % 1 ~= 0 or max_length < 64 then
    raise("opts.max_length must be an integer >= 64")
  end
  local spec, seen, names = {}, {}, {}
  for i, f in ipairs(fields) do
    local name, kind
    if type(f) == "string" then
      name, kind = f, "scalar"
    elseif type(f) == "table" then
      name, kind = f[1], f[2] or "scalar"
    end
    if type(name) ~= "string" or not name:match("^[%a_][%w_]*$") then
      raise(("field #%d: a field name must be an identifier"):format(i))
    end
    if not (SCALAR_KINDS[kind] or kind == "set" or kind == "list" or kind == "hashed") then
      raise(("field '%s': unknown kind '%s'"):format(name, tostring(kind)))
    end
    if seen[name] then raise(("field '%s' declared twice"):format(name)) end
    seen[name] = true
    spec[i] = { name, kind }
    names[i] = name
  end
  if #spec ~= #fields or #spec == 0 then raise("fields must be a non-empty list") end
  -- encrypt: every cache of this process seals the family's values and
  -- refuses plaintext ones (a cache without keys cannot write them)
  if opts.encrypt then
    local ok, err = pcall(core.seal_family, family)
    if not ok then raise(argerror.strip(err)) end
  end
  local shown = "hicache.keys builder '" .. family .. "'" .. (opts.encrypt and " (encrypted)" or "")
  return setmetatable({ family = family, fields = names, encrypt = opts.encrypt == true }, {
    __call = core.key_builder(family, spec, max_length),
    __tostring = function() return shown end,
  })
end

return _M
