-- stats_publish inside a real nginx (spec/nginx_harness.lua, one worker,
-- the cosocket transport): operations never publish by themselves (an
-- operation there cannot do I/O of its own), cache:stats_publish() does,
-- over a cosocket, also from an ngx.timer.every callback; close() leaves
-- the key to expire.
local nginx = require "nginx_harness"
local socket = require "socket"
local hicache = require "hicache"

-- The handlers, as extra locations of the harness's nginx.conf.
local LOCATIONS = [[
    location = /publish {
      content_by_lua_block {
        local hicache = require "hicache"
        local env = package.loaded.hc_test_env
        local c = assert(hicache.new { host = env.host, port = env.port, prefix = ngx.var.arg_prefix,
                                        stats_publish = { interval = 3600 } })
        assert(c:set("user:1", 1))
        assert(c:get("user:1") == 1)
        c:get("user:2")
        local before = c:stats().ops.publish
        local ok, err = c:stats_publish()
        ngx.say(("%s %s %s %d"):format(tostring(before), tostring(ok), tostring(err), c:stats().ops.publish.count))
        c:close()
      }
    }
    location = /timer {
      content_by_lua_block {
        local hicache = require "hicache"
        local env = package.loaded.hc_test_env
        local c = assert(hicache.new { host = env.host, port = env.port, prefix = ngx.var.arg_prefix,
                                        stats_publish = { interval = 1 } })
        package.loaded.timer_cache = c -- lives with the worker
        assert(ngx.timer.every(1, function(premature)
          if not premature then c:stats_publish() end
        end))
        c:get("page:1")
        ngx.say("ok")
      }
    }
]]

local function published(prefix)
  local admin = hicache.new { host = os.getenv("HICACHE_TEST_HOST"), port = tonumber(os.getenv("HICACHE_TEST_PORT")) }
  local keys = assert(admin:command("KEYS", prefix .. ":stats:*"))
  local h
  if keys[1] then
    local flat = assert(admin:command("HGETALL", keys[1]))
    h = {}
    for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  end
  admin:close()
  return #keys, h
end

describe("OpenResty: stats_publish", function()
  local srv
  lazy_setup(function() srv = nginx.start { workers = 1, locations = LOCATIONS } end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("cache:stats_publish() publishes over a cosocket; operations do not publish by themselves", function()
    local prefix = "orpub" .. math.random(1e9)
    local body, code = srv:get("/publish?prefix=" .. prefix)
    assert.equal(200, code, body)
    assert.equal("nil true nil 1\n", body) -- no publish before the explicit call
    local n, h = published(prefix)
    assert.equal(1, n)
    assert.equal("1", h["family.user.hits"])
    assert.equal("1", h["family.user.misses"])
    assert.equal("3600", h.interval)
    assert.not_matches("%[error%]", srv:error_log())
  end)

  it("an ngx.timer.every callback keeps the hash fresh", function()
    local prefix = "ortimer" .. math.random(1e9)
    local body, code = srv:get("/timer?prefix=" .. prefix)
    assert.equal(200, code, body)
    local first
    for _ = 1, 100 do -- until two different publishes were seen (at most 10 s)
      local n, h = published(prefix)
      if n == 1 then
        first = first or h.updated
        if h.updated ~= first then break end
      end
      socket.sleep(0.1)
    end
    local n, h = published(prefix)
    assert.equal(1, n)
    assert.are_not.equal(first, h.updated)
    assert.equal("1", h["family.page.misses"])
    assert.not_matches("%[error%]", srv:error_log())
  end)
end)
