--- hicache.keyfile: encryption keys from a file, for hicache.new's
-- encrypt.keys and the hicache CLI's --key-file.
--
--   # one key per line: <id> <64 hex characters>; the first line encrypts
--   k2 6c0d...e1
--   k1 9a41...07
--
-- Errors name the file and the line, never the key material.

local io_open, string_format, tostring = io.open, string.format, tostring

local _M = {}

local function unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

--- keyfile.read(path) -> {{id =, key = <32 bytes>}, ...} | nil, err
function _M.read(path)
  if type(path) ~= "string" then
    error("bad argument #1 to 'read_keys' (path expected, got " .. type(path) .. ")", 2)
  end
  local f, err = io_open(path, "rb")
  if not f then return nil, "key file: " .. tostring(err) end
  local keys, seen, n = {}, {}, 0
  for line in f:lines() do
    n = n + 1
    line = line:gsub("\r$", "")
    if not line:match("^%s*$") and not line:match("^%s*#") then
      local id, hex = line:match("^%s*([%w_.%-]+)%s+(%x+)%s*$")
      if not id or #id > 32 or #hex ~= 64 then
        f:close()
        return nil, string_format("key file %s: line %d: expected '<id> <64 hex characters>'", path, n)
      end
      if seen[id] then
        f:close()
        return nil, string_format("key file %s: line %d: key id '%s' given twice", path, n, id)
      end
      seen[id] = true
      keys[#keys + 1] = { id = id, key = unhex(hex) }
    end
  end
  f:close()
  if #keys == 0 then return nil, string_format("key file %s: no key in it", path) end
  return keys
end

return _M
