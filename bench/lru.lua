-- bench/lru.lua: the stand-in for lua-resty-lrucache in the L1 benchmark:
-- a pure-Lua LRU of decoded values with a TTL per entry, the same shape
-- as lrucache (a hash to nodes of a doubly linked list; a hit moves its
-- node to the front; a set evicts the tail when full). lrucache reads its
-- clock with ngx.now() (a cached time); plain Lua has no such clock, so
-- this one takes `now` from the caller (the bench passes os.time).
local M = {}
M.__index = M

function M.new(size, now)
  local head = {}
  head.prev, head.next = head, head
  return setmetatable({ size = size, count = 0, map = {}, head = head, now = now or os.time }, M)
end

local function unlink(n)
  n.prev.next, n.next.prev = n.next, n.prev
end

local function push_front(self, n)
  local h = self.head
  n.next, n.prev = h.next, h
  h.next.prev = n
  h.next = n
end

function M:get(key)
  local n = self.map[key]
  if not n then return nil end
  if n.expires and n.expires < self.now() then
    unlink(n)
    self.map[key] = nil
    self.count = self.count - 1
    return nil
  end
  unlink(n)
  push_front(self, n)
  return n.value
end

function M:set(key, value, ttl)
  local n = self.map[key]
  if n then
    unlink(n)
  else
    if self.count >= self.size then
      local tail = self.head.prev
      unlink(tail)
      self.map[tail.key] = nil
      self.count = self.count - 1
    end
    n = { key = key }
    self.map[key] = n
    self.count = self.count + 1
  end
  n.value, n.expires = value, ttl and self.now() + ttl or nil
  push_front(self, n)
end

return M
