-- examples/demo.lua: a tour of hicache's foundation.
-- Run with `make demo` (it starts a throwaway redis-server), or against
-- your own server: REDIS_URL=redis://127.0.0.1:6379/0 lua5.4 examples/demo.lua
local hicache = require "hicache"

local url = os.getenv("REDIS_URL") or
  ("redis://%s:%s/0"):format(os.getenv("HICACHE_TEST_HOST") or "127.0.0.1",
                             os.getenv("HICACHE_TEST_PORT") or "6379")
local cache = hicache.new { url = url, timeout = 0.5, pool = { size = 4 } }
print("cache:", tostring(cache))

-- one command: replies map to Lua values; a server error is nil, err
print("PING ->", cache:command("PING"))
print("SET  ->", cache:command("SET", "demo:visits", 0))
print("INCR ->", cache:command("INCRBY", "demo:visits", 41), "(an integer)")
print("GET missing is hicache.null:", cache:command("GET", "demo:nope") == hicache.null)
print("error ->", cache:command("HSET", "demo:visits", "f", "v"))

-- a pipeline: one round trip, replies in order, per-command errors inline
local replies = assert(cache:pipeline {
  { "INCR", "demo:visits" },
  { "LPUSH", "demo:visits", "x" },          -- WRONGTYPE: {false, msg}
  { "EXPIRE", "demo:visits", 60 },
})
for i, r in ipairs(replies) do
  print(("pipeline[%d] ->"):format(i), type(r) == "table" and ("{false, %q}"):format(r[2]) or r)
end

-- a pinned connection for MULTI/EXEC
local conn = assert(cache:reserve())
conn:command("MULTI")
conn:command("INCR", "demo:visits")
conn:command("TTL", "demo:visits")
local exec = conn:command("EXEC")
print("EXEC ->", exec[1], exec[2])
conn:release()

cache:command("DEL", "demo:visits")
local st = cache:pool_stats()
print(("pool: size=%d in_use=%d idle=%d created=%d closed=%d errors=%d"):format(
  st.size, st.in_use, st.idle, st.created, st.closed, st.errors))
cache:close()
