local H = require "helper"

-- Builds a pristine copy of the sources (so the module under test is not
-- overwritten), installs it, and loads it from the installed tree only.
local root = assert(os.getenv("PWD"))
local clean_env = "env -u LD_PRELOAD -u MAKEFLAGS -u MAKELEVEL -u LUA_PATH -u LUA_CPATH "
-- The Lua the specs run under: Lua 5.4, or LuaJIT (the Lua 5.1 API and
-- directories; `make install LUA=luajit`, luarocks for 5.1 with LuaJIT's
-- headers)
local V = H.luajit and "5.1" or "5.4"
local MAKE_LUA = H.luajit and " LUA=luajit" or ""
local ROCKS_LUA = ""
if H.luajit then
  local inc = H.shell("pkg-config --variable=includedir luajit"):match("^%s*(.-)%s*$")
  ROCKS_LUA = (" LUA_INCDIR=%q"):format(inc)
end

local function copy_sources()
  local dir = H.dir .. "/install-" .. tostring(math.random(1e9))
  local out, code = H.shell(("mkdir -p %s && cp -r %s/src %s/lua %s/rockspec %s/Makefile %s/"):format(
    dir, root, root, root, root, dir))
  assert.equal(0, code, out)
  return dir
end

local probe = [[
local hicache = require "hicache"
for _, m in ipairs { "hicache.keys", "hicache.testing", "hicache.argerror" } do require(m) end
local core_path = package.searchpath("hicache.core", package.cpath)
local c = assert(hicache.new{host = %q, port = %d})
print(core_path, package.searchpath("hicache", package.path), c:command("PING"))
]]

local function run_installed(lua_path, lua_cpath)
  local script = H.dir .. "/probe.lua"
  local f = assert(io.open(script, "w"))
  f:write(probe:format(H.host, H.port))
  f:close()
  return H.shell(("%s LUA_PATH=%q LUA_CPATH=%q %s %s"):format(clean_env, lua_path, lua_cpath, H.interpreter, script))
end

describe("installation", function()
  it("the rockspec lists every Lua module of lua/hicache", function()
    local f = assert(io.open(root .. "/rockspec/hicache-scm-1.rockspec"))
    local rockspec = f:read("a")
    f:close()
    local listed = 0
    for file in io.popen("ls " .. root .. "/lua/hicache"):lines() do
      local name = file:match("^(.-)%.lua$")
      local module = name == "init" and "hicache" or "hicache." .. name
      assert.truthy(rockspec:find(('["%s"] = "lua/hicache/%s"'):format(module, file), 1, true),
        module .. " is missing from the rockspec")
      listed = listed + 1
    end
    assert.is_true(listed >= 9)
  end)

  it("luarocks make builds offline and require 'hicache' works from the tree", function()
    local dir = copy_sources()
    local tree = dir .. "/tree"
    local out, code = H.shell(("cd %s && %s luarocks --lua-version %s --tree %s make %s%s"):format(
      dir, clean_env, V, tree, "rockspec/hicache-scm-1.rockspec", ROCKS_LUA))
    assert.equal(0, code, out)
    local share, lib = tree .. "/share/lua/" .. V, tree .. "/lib/lua/" .. V
    out, code = run_installed(share .. "/?.lua;" .. share .. "/?/init.lua", lib .. "/?.so")
    assert.equal(0, code, out)
    assert.equal(lib .. "/hicache/core.so\t" .. share .. "/hicache/init.lua\tPONG\n", out)
  end)

  it("make install honours PREFIX and DESTDIR", function()
    local dir = copy_sources()
    local dest = dir .. "/dest"
    local out, code = H.shell(("cd %s && %s make -s install%s PREFIX=/opt/hc DESTDIR=%s BUILD=%s/b"):format(
      dir, clean_env, MAKE_LUA, dest, dir))
    assert.equal(0, code, out)
    local share, lib = dest .. "/opt/hc/share/lua/" .. V, dest .. "/opt/hc/lib/lua/" .. V
    out, code = run_installed(share .. "/?.lua;" .. share .. "/?/init.lua", lib .. "/?.so")
    assert.equal(0, code, out)
    assert.equal(lib .. "/hicache/core.so\t" .. share .. "/hicache/init.lua\tPONG\n", out)
  end)
end)
