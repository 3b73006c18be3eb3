-- The request handler of the test apps in nginx (spec/nginx_harness.lua):
-- GET /t/<name>?args runs handlers[name](args) in the content phase and
-- answers its result as JSON; 404 for an unknown name, 500 with the error
-- and its traceback when it raises. The harness puts spec/openresty on
-- every app's lua_package_path, so each app (spec/openresty*/app.lua) ends
-- with `_M.dispatch = require("hc_dispatch")(t)`.
local cjson = require "cjson.safe"

return function(handlers)
  return function()
    local ngx = ngx -- luacheck: ignore 113
    local name = ngx.var.uri:match("^/t/(.+)$")
    local f = handlers[name]
    if not f then
      ngx.status = 404
      ngx.say(cjson.encode({ error = "no handler " .. tostring(name) }))
      return
    end
    local ok, res = xpcall(f, debug.traceback, ngx.req.get_uri_args())
    if not ok then
      ngx.status = 500
      ngx.say(cjson.encode({ error = res }))
      return
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(res))
  end
end
