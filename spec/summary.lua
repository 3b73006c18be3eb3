-- busted output handler for hicache: one line per spec file, failure
-- details, and a last line "N passed, N failed" (errors count as failed).
local io_write, io_flush, string_format = io.write, io.flush, string.format

return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.base"()
  local current_file, line_open

  local function report(kind, t)
    local msg = t.message
    if type(msg) ~= "string" then msg = require("pl.pretty").write(msg) end
    -- where the message says it was raised (errors raised for the
    -- caller's line, e.g. argument errors), else where busted caught it
    local where = msg and msg:match("^([^\n]-:%d+): ") or t.trace and t.trace.short_src and
      (t.trace.short_src .. ":" .. tostring(t.trace.currentline)) or "?"
    io_write(string_format("\n%s: %s\n  at %s\n  %s\n", kind, t.name or "?", where,
      (msg or ""):gsub("\n", "\n  ")))
  end

  handler.fileStart = function(file)
    current_file, line_open = file.name, true
    io_write(string_format("%-36s ", current_file))
    io_flush()
    return nil, true
  end

  handler.fileEnd = function()
    line_open = false
    io_write("\n")
    io_flush()
    return nil, true
  end

  handler.testEnd = function(element, parent, status)
    io_write(({ success = ".", failure = "F", error = "E", pending = "P" })[status] or "?")
    io_flush()
    return nil, true
  end

  -- An error outside a test (a spec file that does not load, a failing
  -- setup or hook) is an E too: on its file's line, or on a line of its own.
  handler.otherError = function(element)
    if element.descriptor == "it" then return nil, true end -- testEnd marks it
    if line_open then io_write("E")
    else io_write(string_format("%-36s E\n", element.name or element.descriptor or "?")) end
    io_flush()
    return nil, true
  end

  handler.suiteEnd = function()
    for _, t in ipairs(handler.failures) do report("FAILED", t) end
    for _, t in ipairs(handler.errors) do report("ERROR", t) end
    local pending = #handler.pendings
    if pending > 0 then io_write(string_format("%d pending\n", pending)) end
    io_write(string_format("%d passed, %d failed\n", #handler.successes,
      #handler.failures + #handler.errors))
    io_flush()
    -- spec/run.sh adds up the counts of its runs (Lua 5.4, LuaJIT)
    local out = os.getenv("HICACHE_SUMMARY_FILE")
    if out then
      local f = io.open(out, "a")
      if f then
        f:write(string_format("%d %d %d\n", #handler.successes, #handler.failures + #handler.errors, pending))
        f:close()
      end
    end
    return nil, true
  end

  busted.subscribe({ "file", "start" }, handler.fileStart)
  busted.subscribe({ "file", "end" }, handler.fileEnd)
  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "error" }, handler.otherError)
  busted.subscribe({ "failure" }, handler.otherError)
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)
  return handler
end
