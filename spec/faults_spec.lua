-- Faults under load: three processes (spec/helpers/load.lua) run get, set,
-- get_or_set and incr against a private redis-server with a 0.2 s command
-- timeout while the spec breaks the server: kill -9 and a restart on the
-- same port, SIGSTOP/SIGCONT, CLIENT KILL of every client, CLIENT PAUSE,
-- DEBUG SLEEP, and a tiny maxmemory with noeviction. Each time: no
-- process crashes or raises, no value read is one that was never written
-- for that key (or cannot be decoded), errors are the README's stable
-- strings and happen only from the fault on until the server is back and
-- the load recovered, and every process succeeds again within RECOVERY
-- seconds of the server being back (a generous bound: the recovery time
-- itself is measured by bench/recovery.lua, not asserted here).
local H = require "helper"
local load = require "helpers.load"
local posix = H.posix

local RECOVERY = 5

-- README "Runtime failures"; a get_or_set bypass is recorded as "bypass: "
-- and its cause, an open circuit breaker as "circuit open: " and the
-- error that opened it.
-- An allowed entry is the whole message, or a pattern when it starts
-- with ^ (a server error inside a script also names the script).
local function stable(msg, allowed)
  msg = msg:gsub("^bypass: ", ""):gsub("^circuit open: ", "")
  for _, want in ipairs(allowed) do
    if msg == want or (want:sub(1, 1) == "^" and msg:find(want)) then return true end
  end
  return false
end

local LOST = { "connection refused", "connection closed", "connection reset", "timeout" }
local SLOW = { "timeout", "pool exhausted" }
local OOM = { "^OOM command not allowed when used memory > 'maxmemory'%." }

describe("faults under load", function()
  local srv, runs, report = nil, 0, {}

  setup(function()
    srv = H.start_redis { conf = { "enable-debug-command yes" } }
  end)
  teardown(function()
    if srv then
      pcall(H.sigcont, srv)
      srv.stop()
    end
    print("\nfault                       ops  errors  recovery (s, per process)  errors seen")
    for _, line in ipairs(report) do print(line) end
  end)
  after_each(function()
    pcall(H.sigcont, srv)
    pcall(H.maxmemory, srv, 0)
  end)

  -- Runs the load, calls fault() once every process is going; fault
  -- returns when the server is back (nil: now). Returns the load's table,
  -- the fault's start and the time the server was back.
  local function under_load(fault)
    runs = runs + 1
    local run = load.start(H, {
      url = ("redis://127.0.0.1:%d"):format(srv.port), procs = 3, seconds = 15, timeout = 0.2,
      prefix = "f" .. runs,
    })
    run:ready()
    local t0 = posix.now()
    local back = fault() or posix.now()
    run:back(back)
    return run:finish(), t0, back
  end

  -- The common claims; opts.errors: the fault must have caused errors.
  local function check(name, res, t0, back, allowed, opts)
    opts = opts or {}
    assert.equal(0, res.rc, "the load program failed:\n" .. res.log)
    assert.equal(3, #res.procs)
    local errors, ops, rec, msgs = 0, 0, {}, {}
    for i, p in ipairs(res.procs) do
      assert.equal(0, res.codes[i], ("process %d exited with %s:\n%s"):format(i, tostring(res.codes[i]), res.log))
      assert.is_nil(p.missing)
      assert.equal(0, p.wrong, ("process %d read wrong values: %s"):format(i, table.concat(p.wrong_examples, "; ")))
      assert.same({}, p.raised, ("process %d: an operation raised"):format(i))
      for msg, e in pairs(p.errors) do
        assert(stable(msg, allowed), ("process %d: unexpected error %q (%d times)"):format(i, msg, e.n))
        assert(e.first >= t0, ("process %d: %q %.3f s before the fault"):format(i, msg, t0 - e.first))
        assert(e.last <= back + RECOVERY,
          ("process %d: %q %.3f s after the server was back"):format(i, msg, e.last - back))
        errors = errors + e.n
        msgs[msg:gsub(" script: .*", " ...")] = true
      end
      assert(p.first_ok_after_back, ("process %d never succeeded after the server was back"):format(i))
      local r = p.first_ok_after_back - back
      assert(r <= RECOVERY, ("process %d recovered %.3f s after the server was back"):format(i, r))
      rec[i] = ("%.3f"):format(r)
      ops = ops + p.ops
    end
    assert.equal(0, res.never_written)
    if opts.errors then assert(errors > 0, name .. ": the fault caused no error at all") end
    local seen = {}
    for m in pairs(msgs) do seen[#seen + 1] = ("%q"):format(m) end
    table.sort(seen)
    report[#report + 1] = ("%-24s %6d  %6d  %s  %s"):format(name, ops, errors, table.concat(rec, " "),
      table.concat(seen, ", "))
    return res
  end

  it("kill -9, then a restart on the same port (the data is lost)", function()
    local res, t0, back = under_load(function()
      H.kill9(srv)
      posix.sleep(0.5)
      H.restart(srv)
    end)
    check("kill -9 + restart", res, t0, back, LOST, { errors = true })
  end)

  it("SIGSTOP for 1 s, then SIGCONT", function()
    local res, t0, back = under_load(function()
      H.sigstop(srv)
      posix.sleep(1)
      H.sigcont(srv)
    end)
    check("SIGSTOP 1 s", res, t0, back, SLOW, { errors = true })
  end)

  it("CLIENT KILL of every client", function()
    local killed
    local res, t0, back = under_load(function()
      killed = H.client_kill(srv, { type = "normal" })
    end)
    assert.is_true(killed >= 3, "connections killed: " .. tostring(killed))
    check("CLIENT KILL TYPE normal", res, t0, back, { "connection closed", "connection reset" })
  end)

  it("CLIENT PAUSE 500", function()
    local res, t0, back = under_load(function()
      H.client_pause(srv, 500)
      posix.sleep(0.5)
    end)
    check("CLIENT PAUSE 500", res, t0, back, SLOW, { errors = true })
  end)

  it("DEBUG SLEEP 0.5", function()
    local res, t0, back = under_load(function()
      H.debug_sleep(srv, 0.5)
    end)
    check("DEBUG SLEEP 0.5", res, t0, back, SLOW, { errors = true })
  end)

  it("maxmemory 1 byte with noeviction: writes fail, reads go on", function()
    local res, t0, back = under_load(function()
      H.maxmemory(srv, 1)
      posix.sleep(1)
      H.maxmemory(srv, 0)
    end)
    check("maxmemory + noeviction", res, t0, back, OOM, { errors = true })
    for i, p in ipairs(res.procs) do
      for msg, e in pairs(p.errors) do
        assert.is_nil(e.ops.get, ("process %d: a get failed with %q"):format(i, msg))
      end
      assert.is_true(p.ok_by_op.get > 0)
    end
  end)
end)
