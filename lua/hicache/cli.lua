--- hicache.cli: the `hicache` command-line tool (bin/hicache calls main).
--
--   hicache COMMAND URL [options]    run a command
--   hicache --help | help [COMMAND]  help (on stdout, exit 0)
--   hicache --version                hicache's version
--
-- Each command is a module hicache.cli.<name> returning { name, summary,
-- usage, help, run = function(args, io) -> exit code }. Exit codes: 0 ok,
-- 1 a runtime failure (cannot connect, a Redis error, `get` of a missing
-- key), 2 a usage error. Errors are one line on stderr:
-- "hicache: <command>: <message>".

local pcall, require, type, tostring, ipairs = pcall, require, type, tostring, ipairs

local _M = {}

-- The commands in the order help lists them, and their modules.
_M.COMMANDS = {
  { name = "inspect", module = "hicache.cli.inspect" },
  { name = "get", module = "hicache.cli.get" },
  { name = "stats", module = "hicache.cli.stats" },
  { name = "locks", module = "hicache.cli.locks" },
  { name = "flush-namespace", module = "hicache.cli.flush_namespace" },
}

local function find(name)
  for _, c in ipairs(_M.COMMANDS) do
    if c.name == name then return c end
  end
end

-- The command's module, or nil, err.
local function load(c)
  local ok, m = pcall(require, c.module)
  if not ok then return nil, ("cannot load %s: %s"):format(c.module, tostring(m)) end
  if type(m) ~= "table" or type(m.run) ~= "function" then return nil, c.module .. " is not a command module" end
  return m
end

local function usage()
  local lines = {
    "usage: hicache COMMAND URL [options]",
    "",
    "Look into the Redis keys an application wrote with hicache. Commands:",
  }
  for _, c in ipairs(_M.COMMANDS) do
    local m = load(c)
    lines[#lines + 1] = ("  %-16s %s"):format(c.name, m and m.summary or "(not available)")
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "hicache help COMMAND (or hicache COMMAND --help) shows a command's options."
  lines[#lines + 1] = "Exit codes: 0 ok, 1 failure (cannot connect, Redis error, key not found), 2 usage error."
  return table.concat(lines, "\n") .. "\n"
end

local function command_help(m)
  return ("usage: %s\n\n%s\n"):format(m.usage, (m.help or m.summary or ""):gsub("\n+$", ""))
end

-- The default io: stdout and stderr. A write to a closed pipe (`| head`)
-- stops the command quietly.
local PIPE = {}
local function default_io()
  return {
    out = function(s)
      local ok = io.stdout:write(s)
      if not ok then error(PIPE, 0) end
    end,
    err = function(s) io.stderr:write(s) end,
  }
end

--- main(argv[, io]) -> exit code. argv: the arguments after the program
-- name (a script's `arg`); io: { out = fn(s), err = fn(s) }.
function _M.main(argv, io_)
  local cio = io_ or default_io()
  local args = {}
  for i = 1, #(argv or {}) do args[i] = tostring(argv[i]) end
  local first = args[1]
  if first == nil then
    cio.err(usage())
    return 2
  end
  if first == "-h" or first == "--help" or (first == "help" and args[2] == nil) then
    cio.out(usage())
    return 0
  end
  if first == "--version" then
    local ok, core = pcall(require, "hicache.core")
    cio.out(("hicache %s\n"):format(ok and tostring(core._VERSION) or "(hicache.core not found)"))
    return ok and 0 or 1
  end
  -- the module of command `name`, or nil and the exit code (after the message)
  local function command(name)
    local c = find(name)
    if not c then
      cio.err(("hicache: unknown command '%s'\n\n"):format(name) .. usage())
      return nil, 2
    end
    local m, err = load(c)
    if not m then
      cio.err(("hicache: %s: %s\n"):format(c.name, err))
      return nil, 1
    end
    return m
  end
  if first == "help" then
    local m, code = command(args[2])
    if not m then return code end
    cio.out(command_help(m))
    return 0
  end
  local m, missing = command(first)
  if not m then return missing end
  local rest = {}
  for i = 2, #args do rest[#rest + 1] = args[i] end
  for _, a in ipairs(rest) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then
      cio.out(command_help(m))
      return 0
    end
  end
  local ok, code = pcall(m.run, rest, cio)
  if not ok then
    if code == PIPE then return 1 end
    cio.err(("hicache: %s: internal error: %s\n"):format(m.name, tostring(code)))
    return 1
  end
  if type(code) ~= "number" then return 0 end
  return code
end

_M.usage = usage

return _M
