local H = require "helper"

describe("threads", function()
  it("8 threads, each with its own Lua state, share one pool safely", function()
    local bin = H.build .. "/hc_threads"
    local iters = H.valgrind and 200 or 2000
    local out, code = H.shell(("%s 8 %d 3"):format(bin, iters))
    assert.equal(0, code, out)
    local threads, ops, created, size = out:match("ok threads=(%d+) ops=(%d+) created=(%d+) size=(%d+)")
    assert.equal("8", threads, out)
    assert.equal(tostring(8 * iters * 2), ops)
    assert.is_true(tonumber(created) >= 1 and tonumber(created) <= 3, out)
    assert.equal("3", size)
    assert.equal(tostring(math.floor(8 * iters / 10)), H.admin():command("GET", "thr:count"))
    H.admin():command("DEL", "thr:count")
  end)
end)
