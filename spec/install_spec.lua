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
  local out, code = H.shell(("mkdir -p %s && cp -r %s/src %s/lua %s/rockspec %s/bin %s/Makefile %s/"):format(
    dir, root, root, root, root, root, dir))
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

-- The installed `hicache` tool, run by its #! line: --version, and a get
-- against the test server (the installed Lua layer and module).
local function run_installed_bin(bin, env)
  local f = assert(io.open(bin))
  local first = f:read("l")
  f:close()
  assert.equal("#!/usr/bin/env " .. H.interpreter, first)
  H.admin():command("SET", "inst:1:k", "7")
  local out, code = H.shell(("%s %s %s get redis://%s:%d k --prefix inst"):format(clean_env, env, bin, H.host,
    H.port))
  assert.equal(0, code, out)
  assert.equal("# inst:1:k  integer  1 B  ttl none\n7\n", out)
  out, code = H.shell(("%s %s %s --help"):format(clean_env, env, bin))
  assert.equal(0, code, out)
  assert.matches("^usage: hicache COMMAND URL", out)
  H.admin():command("DEL", "inst:1:k")
end

describe("installation", function()
  it("the rockspec lists every Lua module of lua/hicache (and lua/hicache/cli) and bin/hicache", function()
    local f = assert(io.open(root .. "/rockspec/hicache-scm-1.rockspec"))
    local rockspec = f:read("a")
    f:close()
    local listed = 0
    for _, dir in ipairs { "hicache", "hicache/cli" } do
      for file in io.popen("ls " .. root .. "/lua/" .. dir .. "/*.lua"):lines() do
        file = file:match("([^/]+)$")
        local name = file:match("^(.-)%.lua$")
        local module = (dir:gsub("/", ".")) .. "." .. name
        if module == "hicache.init" then module = "hicache" end
        assert.truthy(rockspec:find(('["%s"] = "lua/%s/%s"'):format(module, dir, file), 1, true),
          module .. " is missing from the rockspec")
        listed = listed + 1
      end
    end
    assert.is_true(listed >= 15)
    assert.truthy(rockspec:find('bin = { hicache = "bin/hicache" }', 1, true))
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
    -- luarocks wraps bin/hicache in a script that sets the tree's paths
    out, code = H.shell(("%s %s/bin/hicache --help"):format(clean_env, tree))
    assert.equal(0, code, out)
    assert.matches("^usage: hicache COMMAND URL", out)
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
    -- the tool, with the CLI modules; installed for PREFIX, found here under DESTDIR
    local bin = dest .. "/opt/hc/bin/hicache"
    local f = assert(io.open(bin))
    assert.truthy(f:read("a"):find(('local installed = { "/opt/hc/share/lua/%s", "/opt/hc/lib/lua/%s" }'):format(V, V),
      1, true))
    f:close()
    run_installed_bin(bin, ("LUA_PATH=%q LUA_CPATH=%q"):format(share .. "/?.lua;" .. share .. "/?/init.lua",
      lib .. "/?.so"))
    -- uninstall removes what install put there
    out, code = H.shell(("cd %s && %s make -s uninstall%s PREFIX=/opt/hc DESTDIR=%s"):format(dir, clean_env,
      MAKE_LUA, dest))
    assert.equal(0, code, out)
    out = H.shell(("find %s -type f"):format(dest))
    assert.equal("", out)
  end)

  it("make install into a PREFIX Lua does not search: the tool finds its modules by itself", function()
    local dir = copy_sources()
    local dest = dir .. "/real"
    -- PREFIX is the real location here (no DESTDIR): the paths baked into the tool
    local out, code = H.shell(("cd %s && %s make -s install%s PREFIX=%s BUILD=%s/b"):format(
      dir, clean_env, MAKE_LUA, dest, dir))
    assert.equal(0, code, out)
    run_installed_bin(dest .. "/bin/hicache", "")
  end)
end)
