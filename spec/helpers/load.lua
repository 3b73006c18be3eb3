--- spec/helpers/load.lua -- a load generator for fault injection
-- (spec/faults_spec.lua, bench/recovery.lua).
--
-- As a program (run with the interpreter of the run, $LUA):
--
--   $LUA spec/helpers/load.lua url=redis://127.0.0.1:PORT out=FILE
--        [procs=3] [seconds=15] [timeout=0.2] [keys=8] [pace=0.001]
--        [linger=1] [back=FILE] [prefix=load]
--
-- forks `procs` processes. Each loops on a small key set (v:1..keys, g:1..
-- keys, n:1..4) doing get, set, get_or_set and incr with the command
-- timeout `timeout`, pausing `pace` s between operations, until
-- `seconds` have passed or, once the server is back, `linger` s after its
-- first success. Every value written is {k = key, w = writer, s = seq,
-- c = "key/writer/seq"}: a read that returns anything else (another key's
-- value, a mangled one, a decode error) is a WRONG value, and after the
-- run a (writer, seq) that writer never wrote is one too. An error is a
-- runtime failure (nil, err; a get_or_set "bypass" counts as its cause,
-- from on_event); a raise is counted apart. A miss is neither.
--
-- "Server back": the controller writes a time (hctest's now(), the
-- monotonic clock shared by every process of the host) to the file `back`;
-- each process notes the end time of its first success at or after it.
--
-- Each process writes FILE.<i> (and FILE.<i>.ready after its first 20
-- successes); the parent waits for them and writes FILE, a Lua chunk
-- returning:
--
--   { codes = {exit code of each process (128 + signal if killed)},
--     never_written = n,
--     procs = { { ops, ok, wrong, wrong_examples = {...},
--                 ok_by_op = {get =, set =, get_or_set =, incr =},
--                 errors = { [message] = {n =, first =, last =, ops = {[op] = n}} },
--                 raised = { [message] = n },
--                 first_ok_after_back = t | nil, back = t | nil,
--                 wrote = {[writer] = last seq}, seen = {[writer] = max seq} }, ... } }
--
-- It exits 0 when every process exited 0.
--
-- As a module (require "helpers.load"), for the controller:
--   load.start(H, {url =, procs =, ...}) -> run; run:ready(), run:back(t),
--   run:finish() -> the table above (run.rc: the program's exit status).

local posix = require "hctest"

local M = {}

-- ---- serialization ----------------------------------------------------------

local function ser(v, out)
  local t = type(v)
  if t == "table" then
    out[#out + 1] = "{"
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) == type(b) then return a < b end
      return type(a) == "number"
    end)
    for _, k in ipairs(keys) do
      out[#out + 1] = "["
      ser(k, out)
      out[#out + 1] = "]="
      ser(v[k], out)
      out[#out + 1] = ","
    end
    out[#out + 1] = "}"
  elseif t == "string" then
    out[#out + 1] = ("%q"):format(v)
  elseif t == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      out[#out + 1] = "0/0"
    elseif math.type and math.type(v) == "integer" then
      out[#out + 1] = tostring(v)
    else
      out[#out + 1] = ("%.17g"):format(v)
    end
  else
    out[#out + 1] = tostring(v)
  end
end

local function write_file(path, text)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(text)
  f:close()
  assert(os.rename(tmp, path))
end

local function write_table(path, t)
  local out = { "return " }
  ser(t, out)
  write_file(path, table.concat(out))
end

local function read_number(path)
  local f = io.open(path)
  if not f then return nil end
  local v = tonumber(f:read("a") or "")
  f:close()
  return v
end

-- ---- one load process ---------------------------------------------------------

local function worker(cfg, i)
  local hicache = require "hicache"
  local me = tostring(i)
  local cause -- the cache failure behind the last get_or_set bypass
  local cache = assert(hicache.new {
    url = cfg.url, timeout = cfg.timeout, prefix = cfg.prefix,
    on_event = function(ev)
      if ev.op == "get_or_set" and ev.err then cause = ev.err end
    end,
  })
  local r = {
    ops = 0, ok = 0, wrong = 0, wrong_examples = {}, errors = {}, raised = {},
    ok_by_op = { get = 0, set = 0, get_or_set = 0, incr = 0 }, wrote = { [me] = 0 }, seen = {},
  }
  local seq = 0
  local back, next_check = nil, 0
  local oks = {} -- end times of successes since the last look at the back file

  local function wrong(what)
    r.wrong = r.wrong + 1
    if #r.wrong_examples < 5 then r.wrong_examples[#r.wrong_examples + 1] = what end
  end
  local function error_(op, msg, t)
    msg = tostring(msg)
    local e = r.errors[msg]
    if not e then
      e = { n = 0, first = t, ops = {} }
      r.errors[msg] = e
    end
    e.n, e.last = e.n + 1, t
    e.ops[op] = (e.ops[op] or 0) + 1
  end
  local function success(op, t)
    r.ok = r.ok + 1
    r.ok_by_op[op] = r.ok_by_op[op] + 1
    if back == nil then oks[#oks + 1] = t
    elseif r.first_ok_after_back == nil and t >= back then r.first_ok_after_back = t end
    if r.ok == 20 then write_file(cfg.out .. "." .. i .. ".ready", "1") end
  end
  local function new_value(key)
    seq = seq + 1
    r.wrote[me] = seq
    return { k = key, w = me, s = seq, c = key .. "/" .. me .. "/" .. seq }
  end
  -- true when v is a value some writer wrote for key (or a miss)
  local function valid(key, v)
    if v == nil then return true end
    if type(v) ~= "table" or v.k ~= key or type(v.w) ~= "string" or type(v.s) ~= "number"
        or v.c ~= key .. "/" .. v.w .. "/" .. tostring(v.s) then
      return false
    end
    if (r.seen[v.w] or 0) < v.s then r.seen[v.w] = v.s end
    return true
  end
  local function describe(v)
    if type(v) ~= "table" then return type(v) .. " " .. tostring(v) end
    return ("{k=%s w=%s s=%s c=%s}"):format(tostring(v.k), tostring(v.w), tostring(v.s), tostring(v.c))
  end

  local ops = {
    get = function(j)
      local key = "v:" .. j
      local v, err = cache:get(key)
      if err then
        if tostring(err):find("^decode error") then wrong("get " .. key .. ": " .. tostring(err)); return true end
        return false, err
      end
      if not valid(key, v) then wrong("get " .. key .. ": " .. describe(v)) end
      return true
    end,
    set = function(j)
      local key = "v:" .. j
      local ok, err = cache:set(key, new_value(key), 30)
      if ok == nil then return false, err end
      return true
    end,
    get_or_set = function(j)
      local key = "g:" .. j
      cause = nil
      local v, err, st = cache:get_or_set(key, function() return new_value(key) end,
        { ttl = 2, lease_ttl = 2, wait = 0.5 })
      if err then return false, err end
      if not valid(key, v) then wrong("get_or_set " .. key .. ": " .. describe(v)) end
      if st == "bypass" then return false, "bypass: " .. tostring(cause) end
      return true
    end,
    incr = function(j)
      local key = "n:" .. (j % 4 + 1)
      local n, err = cache:incr(key)
      if err == "not found" then -- new, or lost with the server's data
        local ok, serr = cache:set(key, 0, 0)
        if ok == nil then return false, serr end
        return true
      end
      if err then return false, err end
      if type(n) ~= "number" or (math.type and math.type(n) ~= "integer") or n < 1 or n % 1 ~= 0 then
        wrong("incr " .. key .. ": " .. describe(n))
      end
      return true
    end,
  }
  local MIX = { "get", "set", "get", "get_or_set", "incr", "get", "set", "get_or_set" }

  local t_end = posix.now() + cfg.seconds
  local n = 0
  while true do
    local t = posix.now()
    if t >= t_end then break end
    if r.first_ok_after_back and t >= r.first_ok_after_back + cfg.linger then break end
    if back == nil and t >= next_check then
      next_check = t + 0.01
      back = read_number(cfg.back)
      if back then
        r.back = back
        for _, ts in ipairs(oks) do
          if ts >= back then r.first_ok_after_back = ts; break end
        end
      end
      oks = {}
    end
    n = n + 1
    local op = MIX[n % #MIX + 1]
    local j = math.random(cfg.keys)
    r.ops = r.ops + 1
    local ok, done, err = pcall(ops[op], j)
    local t1 = posix.now()
    if not ok then
      local msg = tostring(done)
      r.raised[msg] = (r.raised[msg] or 0) + 1
    elseif done then
      success(op, t1)
    else
      error_(op, err, t1)
    end
    if cfg.pace > 0 then posix.sleep(cfg.pace) end
  end
  write_table(cfg.out .. "." .. i, r)
end

-- ---- the program: fork, wait, aggregate -----------------------------------------

local function parse_args(args)
  local cfg = { procs = 3, seconds = 15, timeout = 0.2, keys = 8, pace = 0.001, linger = 1, prefix = "load" }
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    assert(k, "load.lua: argument key=value expected, got " .. a)
    cfg[k] = tonumber(v) or v
  end
  assert(cfg.url and cfg.out, "load.lua: url= and out= are required")
  cfg.back = cfg.back or cfg.out .. ".back"
  cfg.prefix = tostring(cfg.prefix)
  return cfg
end

local function main(args)
  local cfg = parse_args(args)
  local pids = {}
  for i = 1, cfg.procs do
    local pid = posix.fork()
    if pid == 0 then
      math.randomseed(posix.getpid() + math.floor(posix.now() * 1000))
      local ok, err = pcall(worker, cfg, i)
      if not ok then io.stderr:write("load ", i, ": ", tostring(err), "\n") end
      posix._exit(ok and 0 or 1)
    end
    pids[i] = pid
  end
  local res = { codes = {}, procs = {}, never_written = 0 }
  for i, pid in ipairs(pids) do
    res.codes[i] = posix.waitpid(pid)
    local chunk = loadfile(cfg.out .. "." .. i)
    res.procs[i] = chunk and chunk() or { missing = true }
    os.remove(cfg.out .. "." .. i)
    os.remove(cfg.out .. "." .. i .. ".ready")
  end
  -- a (writer, seq) read somewhere that its writer never wrote
  local wrote = {}
  for _, p in ipairs(res.procs) do
    for w, s in pairs(p.wrote or {}) do wrote[w] = s end
  end
  for _, p in ipairs(res.procs) do
    for w, s in pairs(p.seen or {}) do
      if wrote[w] == nil or s > wrote[w] then
        res.never_written = res.never_written + 1
        p.wrong = p.wrong + 1
        p.wrong_examples[#p.wrong_examples + 1] = ("seen %s/%s, written up to %s"):format(w, s, tostring(wrote[w]))
      end
    end
  end
  write_table(cfg.out, res)
  for _, code in ipairs(res.codes) do
    if code ~= 0 then return 1 end
  end
  return 0
end

-- ---- the controller side ---------------------------------------------------------

local Run = {}
Run.__index = Run

--- load.start(H, opts) -> run: starts the program in the background with
-- the interpreter of the run (H.lua_bin); opts as the program's arguments
-- (url required; out defaults to a file in H.dir).
function M.start(H, opts)
  local reg = debug.getregistry()
  reg.hicache_load_runs = (reg.hicache_load_runs or 0) + 1
  local out = opts.out or ("%s/load-%d-%d"):format(H.dir, posix.getpid(), reg.hicache_load_runs)
  local args = { "out=" .. out }
  for k, v in pairs(opts) do
    if k ~= "out" then args[#args + 1] = k .. "=" .. tostring(v) end
  end
  os.remove(out)
  os.remove(out .. ".rc")
  os.remove(out .. ".back")
  local cmd = ("(%s spec/helpers/load.lua %s >%s.log 2>&1; echo $? >%s.rc.tmp; mv %s.rc.tmp %s.rc) &"):format(
    H.lua_bin, table.concat(args, " "), out, out, out, out)
  assert(os.execute(cmd))
  return setmetatable({ out = out, procs = opts.procs or 3, seconds = opts.seconds or 15 }, Run)
end

--- run:ready(): waits until every process had 20 successes (at most 10 s).
function Run:ready()
  for _ = 1, 1000 do
    local n = 0
    for i = 1, self.procs do
      if io.open(self.out .. "." .. i .. ".ready") then n = n + 1 end
    end
    if n == self.procs then return true end
    posix.sleep(0.01)
  end
  error("load: the processes never got going (see " .. self.out .. ".log)")
end

--- run:back(t): tells the processes the server is back since t (now()).
function Run:back(t)
  write_file(self.out .. ".back", ("%.6f"):format(t or posix.now()))
end

--- run:finish() -> the program's table (with .rc and .log): waits for it.
function Run:finish()
  local deadline = posix.now() + self.seconds + 30
  local rc
  while posix.now() < deadline do
    rc = read_number(self.out .. ".rc")
    if rc then break end
    posix.sleep(0.02)
  end
  assert(rc, "load: the program did not finish (see " .. self.out .. ".log)")
  local f = io.open(self.out .. ".log")
  local log = f and f:read("a") or ""
  if f then f:close() end
  local chunk = loadfile(self.out)
  local res = chunk and chunk() or { procs = {}, codes = {} }
  res.rc, res.log = rc, log
  return res
end

if ... == "helpers.load" or ... == "spec.helpers.load" then return M end
os.exit(main({ ... }))
