--- hicache: Redis caching for Lua.
-- require "hicache" -> this module. The C core (hicache.core) does the
-- work; this layer validates options and adds the Lua-side methods to the
-- client class that the core defines.

local core = require "hicache.core"
local config = require "hicache.config"

local _M = {
  _VERSION = core._VERSION,
  null = core.null, -- what a Redis nil reply maps to (like ngx.null)
}

--- hicache.new(opts) -> cache | nil, err
-- Argument errors raise at the caller's line; a rediss:// URL returns
-- nil, "tls not available: ...". No connection is opened until first use.
function _M.new(opts)
  local settings, err, kind = config.settings(opts)
  if not settings then
    if kind == "tls" then return nil, err end
    error(err, 2)
  end
  return core.new(settings)
end

_M.parse_url = config.parse_url

return _M
