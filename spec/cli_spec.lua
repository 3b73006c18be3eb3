-- The `hicache` tool's dispatcher and what every command shares: help,
-- usage errors (exit 2), failures (exit 1) as one line on stderr, an
-- unreachable server, passwords never printed. Runs bin/hicache as a real
-- process (spec/helpers/cli.lua).
local H = require "helper"
local X = require "helpers.cli"

local COMMANDS = { "inspect", "get", "locks", "flush-namespace" }
-- the stats command has a spec of its own (cli_stats_spec.lua); here it is
-- checked with the others when it is there
local has_stats = pcall(require, "hicache.cli.stats")
if has_stats then COMMANDS[#COMMANDS + 1] = "stats" end

-- A loopback port nothing listens on (bound, then closed).
local function dead_port()
  local socket = require "socket"
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

-- The arguments that make each command reach the server.
local function call_args(cmd, url)
  if cmd == "get" then return { "get", url, "k" } end
  if cmd == "flush-namespace" then return { cmd, url, "--prefix", "p", "--yes" } end
  return { cmd, url }
end

describe("hicache (the dispatcher)", function()
  it("without arguments prints the usage on stderr and exits 2", function()
    local r = X.run()
    assert.equal(2, r.code)
    assert.equal("", r.out)
    assert.matches("^usage: hicache COMMAND URL", r.err)
    for _, c in ipairs(COMMANDS) do assert.truthy(r.err:find("\n  " .. c .. " ", 1, true), c) end
  end)

  it("--help, -h and help print the usage on stdout and exit 0", function()
    for _, a in ipairs { "--help", "-h", "help" } do
      local r = X.run(a)
      assert.equal(0, r.code, a)
      assert.equal("", r.err)
      assert.matches("^usage: hicache COMMAND URL", r.out)
      for _, c in ipairs(COMMANDS) do
        assert.truthy(r.out:find("\n  " .. c .. " ", 1, true), c)
        assert.falsy(r.out:find("not available", 1, true), r.out)
      end
      assert.truthy(r.out:find("Exit codes: 0 ok, 1 failure", 1, true))
    end
  end)

  it("each command has its --help and `help COMMAND` (exit 0, stdout)", function()
    for _, c in ipairs(COMMANDS) do
      local a, b, d = X.run(c, "--help"), X.run("help", c), X.run(c, X.url(), "-h")
      for _, r in ipairs { a, b, d } do
        assert.equal(0, r.code, c)
        assert.equal("", r.err, c)
        assert.matches("^usage: hicache " .. c:gsub("%-", "%%-") .. " URL", r.out)
        assert.truthy(r.out:find("--prefix P", 1, true), c)
        if c ~= "stats" then assert.truthy(r.out:find("\nExit codes: 0 ", 1, true), c) end
      end
      assert.equal(a.out, b.out)
    end
  end)

  it("an unknown command: exit 2, the usage on stderr", function()
    for _, args in ipairs { { "frob" }, { "help", "frob" } } do
      local r = X.run(H.unpack(args))
      assert.equal(2, r.code)
      assert.equal("", r.out)
      assert.matches("^hicache: unknown command 'frob'\n\nusage: hicache", r.err)
    end
  end)

  it("--version prints hicache's version", function()
    local r = X.run("--version")
    assert.equal(0, r.code)
    assert.equal("hicache " .. H.hicache._VERSION .. "\n", r.out)
  end)

  it("usage errors: one line on stderr naming the command, exit 2, nothing on stdout", function()
    local url = X.url()
    local cases = {
      { { "inspect" }, "inspect: a Redis URL is required" },
      { { "inspect", url, "--frob" }, "inspect: unknown option '--frob'" },
      { { "inspect", url, "--json=yes" }, "inspect: --json takes no value" },
      { { "inspect", url, "--version", "x" }, "inspect: --version needs an integer, got 'x'" },
      { { "inspect", url, "--limit", "-3" }, "inspect: --limit needs a non-negative integer, got '-3'" },
      { { "inspect", url, "--prefix" }, "inspect: --prefix needs a value" },
      { { "inspect", url, "a*", "b*" }, "inspect: too many arguments" },
      { { "inspect", "ftp://x" }, "inspect: invalid option 'url'" },
      { { "inspect", url, "--timeout", "0" }, "inspect: --timeout needs a number of seconds" },
      { { "get", url }, "get: a Redis URL and a KEY are required" },
      { { "get", url, "k", "--serializer", "xml" }, "get: --serializer must be msgpack, json or raw" },
      { { "get", url, ("k"):rep(2000) }, "get: bad KEY: " },
      { { "locks", url, "extra" }, "locks: too many arguments" },
      { { "flush-namespace", url, "--yes" }, "flush-namespace: --prefix is required" },
    }
    for _, case in ipairs(cases) do
      local r = X.run(H.unpack(case[1]))
      assert.equal(2, r.code, case[2] .. "\n" .. r.err)
      assert.equal("", r.out, case[2])
      assert.equal(1, #X.lines(r.err), r.err)
      assert.equal("hicache: " .. case[2], r.err:sub(1, #case[2] + 9), r.err)
    end
  end)

  it("`--` ends the options: a KEY that starts with a dash", function()
    local c = H.cache { prefix = "cli-dash" }
    assert(c:set("-x", "dashed"))
    local r = X.run("get", X.url(), "--prefix", "cli-dash", "--", "-x")
    assert.equal(0, r.code, r.err)
    assert.equal('"dashed"\n', r.out:match("\n(.*)$"))
    c:delete("-x")
  end)

  it("an unreachable server: exit 1, one line on stderr, for every command", function()
    local url = X.url(dead_port())
    for _, cmd in ipairs(COMMANDS) do
      local r = X.run(H.unpack(call_args(cmd, url)))
      assert.equal(1, r.code, cmd .. ": " .. r.err)
      assert.equal("", r.out, cmd)
      assert.equal(1, #X.lines(r.err), r.err)
      assert.matches("^hicache: " .. cmd:gsub("%-", "%%-") .. ": cannot reach redis://127%.0%.0%.1:%d+: ", r.err)
    end
  end)

  it("a password in the URL is never printed", function()
    local port = dead_port()
    for _, cmd in ipairs(COMMANDS) do
      local r = X.run(H.unpack(call_args(cmd, ("redis://user:S3cr3tPw@127.0.0.1:%d/0"):format(port))))
      assert.equal(1, r.code)
      assert.falsy((r.out .. r.err):find("S3cr3tPw", 1, true), r.err)
      assert.truthy(r.err:find("redis://user:***@127.0.0.1:", 1, true), r.err)
    end
    -- a wrong password: the server's answer, never the password
    local r = X.run("inspect", ("redis://:Wr0ngPw@%s:%d"):format(H.host, H.port))
    assert.equal(1, r.code)
    assert.falsy(r.err:find("Wr0ngPw", 1, true), r.err)
    assert.equal(1, #X.lines(r.err), r.err)
  end)

  it("connects over a unix socket URL and with TLS options (rediss://, --tls-ca)", function()
    local c = H.cache { prefix = "cli-conn" }
    assert(c:set("k", "v"))
    local r = X.run("get", "unix://" .. H.socket, "k", "--prefix", "cli-conn")
    assert.equal(0, r.code, r.err)
    r = X.run("get", ("rediss://%s:%d"):format(H.host, H.tls_port), "k", "--prefix", "cli-conn",
      "--tls-ca", H.tls_dir .. "/ca.crt", "--tls-server-name", "localhost")
    assert.equal(0, r.code, r.err)
    assert.matches('\n"v"\n$', r.out)
    -- verification on: an untrusted CA fails (exit 1), --tls-insecure does not
    r = X.run("get", ("rediss://%s:%d"):format(H.host, H.tls_port), "k", "--prefix", "cli-conn",
      "--tls-ca", H.tls_dir .. "/other-ca.crt")
    assert.equal(1, r.code, r.err)
    r = X.run("get", ("rediss://%s:%d"):format(H.host, H.tls_port), "k", "--prefix", "cli-conn", "--tls-insecure")
    assert.equal(0, r.code, r.err)
    -- a CA file that does not exist: a usage error
    r = X.run("get", ("rediss://%s:%d"):format(H.host, H.tls_port), "k", "--tls-ca", H.dir .. "/nope.crt")
    assert.equal(2, r.code, r.err)
    c:delete("k")
  end)
end)
