-- Encrypted values (src/core/hc_seal.c, src/lua/hc_lseal.c; README
-- "Encrypted values"): sealed with XChaCha20-Poly1305 under the full Redis
-- key, on every write path; rotation by key id; a value that does not open
-- is a miss plus a "decrypt" error event, never garbage; no key material in
-- any error, event, log line or tostring.
local H = require "helper"
local hicache = require "hicache"
local core = require "hicache.core"
local keys = require "hicache.keys"
local testing = require "hicache.testing"

local K1 = ("\1\2\3\4\5\6\7\8"):rep(4)             -- 32 bytes
local K2 = ("secret-key-number-two-32-bytes!!")   -- 32 bytes
local K3 = ("\255"):rep(32)
assert(#K1 == 32 and #K2 == 32)

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

-- every form a key could leak in
local SECRETS = { K1, K2, K3, hex(K1), hex(K2), hex(K3), K1:sub(1, 12), K2:sub(1, 12) }
local function assert_no_secret(s, where)
  s = tostring(s)
  for _, k in ipairs(SECRETS) do
    assert(not s:find(k, 1, true), (where or "text") .. " holds key material: " .. s)
  end
end

-- A cache recording its error events (and the logger's lines).
local function sealed(opts)
  opts = opts or {}
  local evs, lines = {}, {}
  opts.prefix = opts.prefix or "enc"
  if opts.encrypt == nil then opts.encrypt = { keys = { { id = "k2", key = K2 }, { id = "k1", key = K1 } } } end
  if opts.encrypt == false then opts.encrypt = nil end
  opts.on_event = function(ev) if ev.status == "error" then evs[#evs + 1] = ev end end
  opts.logger = function(line) lines[#lines + 1] = line end
  local c = H.cache(opts)
  return c, evs, lines
end

local function stored(c, key) return H.admin():command("GET", c:_key(key)) end
local function put(c, key, bytes) assert(H.admin():command("SET", c:_key(key), bytes)) end

describe("encrypted values", function()
  local c, evs
  before_each(function() c, evs = sealed() end)
  after_each(function() c:clear() end)

  it("seals every write path and reads each back", function()
    local value = { name = "ada", n = 42, list = { 1, 2, 3 } }
    assert.is_true(c:set("s", value))
    assert.is_true(c:add("a", "added"))
    assert.same({}, c:set_many({ m1 = 1, m2 = "two" }))
    assert.equal(7, (c:get_or_set("g", function() return 7 end)))
    assert.same({ 1 }, (c:get_or_set("gs", function() return { 1 } end, { stale = 60 })))
    assert.is_true(c:set("t", "tagged", nil, { tags = { "user:1" } }))
    assert.equal("x", (c:get_or_set("gt", function() return "x" end, { tags = { "user:1" } })))
    local f = c:memoize(function(a) return a * 2 end, { name = "double" })
    assert.equal(10, f(5))
    for _, k in ipairs { "s", "a", "m1", "m2", "g", "gs", "t", "gt", f:key(5) } do
      assert.is_encrypted(c, k)
      assert.equal(core.entry_info(stored(c, k)).encrypted, "k2")
    end
    assert.same(value, c:get("s"))
    assert.equal("added", c:get("a"))
    assert.same({ m1 = 1, m2 = "two" }, c:get_many { "m1", "m2" })
    assert.equal(7, c:get("g"))
    assert.same({ 1 }, c:get("gs"))
    assert.equal("tagged", c:get("t", nil, { tags = { "user:1" } }))
    assert.equal("x", (c:get_or_set("gt", function() error("not called") end, { tags = { "user:1" } })))
    assert.equal(10, f(5))
    -- the plaintext appears nowhere in what Redis holds
    assert.is_nil(stored(c, "s"):find("ada", 1, true))
    assert.same({}, evs)
  end)

  it("keeps envelope headers readable: tags and stale metadata still work", function()
    assert.is_true(c:set("t", "v", nil, { tags = { "org:7" } }))
    local info = core.entry_info(stored(c, "t"))
    assert.is_true(info.envelope)
    assert.same({ "org:7" }, info.tags)
    assert.is_true(c:invalidate_tag("org:7"))
    assert.is_nil(c:get("t"))
    assert.equal(1, (c:get_or_set("st", function() return 1 end, { stale = 60 })))
    info = core.entry_info(stored(c, "st"))
    assert.is_true(info.envelope and info.soft_ms ~= nil and info.encrypted == "k2")
  end)

  it("with compression and the json serializer: compressed, then sealed", function()
    local z = sealed { compress = { min_size = 64 }, serializer = "json" }
    local big = ("lorem ipsum "):rep(500)
    assert.is_true(z:set("big", big))
    assert.is_encrypted(z, "big")
    assert.is_true(#stored(z, "big") < #big / 4) -- compressed before sealing (sealed bytes do not compress)
    assert.equal(big, z:get("big"))
    z:clear()
  end)

  it("rotates keys: the first key seals, every key opens; a key dropped too early is a miss", function()
    local old = sealed { encrypt = { keys = { { id = "k1", key = K1 } } } }
    assert.is_true(old:set("r", "written with k1"))
    assert.equal("k1", core.entry_info(stored(c, "r")).encrypted)
    assert.equal("written with k1", c:get("r"))       -- the new cache still reads it
    assert.is_true(c:set("r", "rewritten"))
    assert.equal("k2", core.entry_info(stored(c, "r")).encrypted)
    local new_only, nevs = sealed { encrypt = { keys = { { id = "k2", key = K2 } } } }
    assert.equal("rewritten", new_only:get("r"))
    assert.is_true(old:set("r2", "still k1"))
    assert.equal("dflt", new_only:get("r2", "dflt"))  -- k1 is gone: a miss ...
    assert.equal(1, #nevs)                               -- ... and an error event
    assert.equal("decrypt", nevs[1].op)
    assert.equal("decrypt error: unknown key id 'k1'", nevs[1].err)
    assert.equal("r2", nevs[1].key)
  end)

  it("a tampered value is a miss plus an error event, on get, get_many, get_or_set and memoize", function()
    assert.is_true(c:set("v", { secret = "data" }))
    local b = stored(c, "v")
    local function flip(bytes, at)
      return bytes:sub(1, at - 1) .. string.char((bytes:byte(at) + 1) % 256) .. bytes:sub(at + 1)
    end
    -- the last byte (the tag), a ciphertext byte, a nonce byte, the key id
    for _, at in ipairs { #b, #b - 20, 10, 6 } do
      put(c, "v", flip(b, at))
      evs[#evs + 1] = nil
      local before = #evs
      assert.equal("miss", c:get("v", "miss"))
      assert.equal(before + 1, #evs)
      assert.equal("decrypt", evs[#evs].op)
      assert.matches("^decrypt error: ", evs[#evs].err)
      local m, errs = c:get_many { "v" }
      assert.same({}, m)
      assert.is_nil(errs)
      assert.equal(before + 2, #evs)
    end
    assert.equal("decrypt error: authentication failed", evs[1].err)
    -- get_or_set computes again and overwrites the bad value with a good one
    local v, err, status = c:get_or_set("v", function() return "fresh" end)
    assert.equal("fresh", v)
    assert.is_nil(err)
    assert.equal("miss", status)
    assert.equal("fresh", c:get("v"))
    assert.is_encrypted(c, "v")
    local calls = 0
    local f = c:memoize(function() calls = calls + 1; return "m" end, { name = "fam" })
    assert.equal("m", f())
    put(c, f:key(), flip(stored(c, f:key()), 40))
    assert.equal("m", f())
    assert.equal(2, calls)
    -- counted: the op "decrypt", and as errors (a get that missed is no error of its own)
    local st = c:stats()
    assert.equal(#evs, st.ops.decrypt.count)
    assert.equal(#evs, st.errors)
  end)

  it("a value moved or copied to another key does not open (the key is authenticated)", function()
    assert.is_true(c:set("user:1", { role = "user" }))
    assert.is_true(c:set("user:2", { role = "admin" }))
    put(c, "user:1", stored(c, "user:2")) -- an attacker copies admin's value over user 1's
    assert.is_nil(c:get("user:1"))
    assert.equal("decrypt error: authentication failed", evs[#evs].err)
    assert.equal("user:1", evs[#evs].key)
    assert.equal(1, H.admin():command("COPY", c:_key("user:2"), c:with_version(5):_key("user:2")))
    assert.is_nil(c:with_version(5):get("user:2")) -- another version is another key
  end)

  it("the same id with another key, or no keys at all: a miss, never garbage", function()
    assert.is_true(c:set("w", "value"))
    local wrong, wevs = sealed { encrypt = { keys = { { id = "k2", key = K3 } } } }
    assert.is_nil(wrong:get("w"))
    assert.equal("decrypt error: authentication failed", wevs[1].err)
    local plain, pevs = sealed { encrypt = false }
    assert.is_nil(plain:get("w"))
    assert.equal("decrypt error: no encryption keys", pevs[1].err)
    assert.same({}, plain:get_many { "w" })
    -- the codec API: decode needs the key the value was stored at
    local bytes = stored(c, "w")
    local v, err = c:decode(bytes)
    assert.is_nil(v)
    assert.equal("decrypt error: an encrypted value opens only with its key", err)
    assert.equal("value", c:decode(bytes, "w"))
    v, err = c:decode(bytes, "other")
    assert.is_nil(v)
    assert.equal("decrypt error: authentication failed", err)
    assert.equal("value", c:decode(c:encode("value", "k9"), "k9"))
    assert.equal("encrypted", core.entry_info(c:encode("value", "k9")).format)
    assert.equal("msgpack", core.entry_info(c:encode("value")).format) -- no key: the codec alone
  end)

  it("incr_version moves an encrypted value to the new key, sealed again for it", function()
    assert.is_true(c:set("iv", { 1, 2 }, 100))
    assert.is_true(c:set("ivt", "t", 100, { tags = { "x" } }))
    assert.equal(2, c:incr_version("iv"))
    assert.equal(2, c:incr_version("ivt"))
    local c2 = c:with_version(2)
    assert.same({ 1, 2 }, c2:get("iv"))
    assert.equal("t", c2:get("ivt", nil, { tags = { "x" } }))
    assert.is_encrypted(c2, "iv")
    assert.is_true(c2:ttl("iv") > 90)
    assert.is_nil(c:get("iv"))
    assert.same({}, evs)
    c2:clear()
  end)

  it("counters cannot be encrypted: incr raises at the caller's line", function()
    local ok, err = pcall(function() return (c:incr("n")) end) -- not a tail call: LuaJIT names the method then
    assert.is_false(ok)
    assert.matches("encrypt_spec.lua:%d+: bad argument #1 to 'incr' %(the key's values are encrypted", err)
    local fam = sealed { encrypt = { keys = { { id = "k", key = K1 } }, families = { "secret" } } }
    assert.is_true(fam:set("count", 1))
    assert.equal(2, fam:incr("count"))
    assert.has_error(function() fam:incr("secret:n") end)
    fam:clear()
  end)
end)

describe("encrypted families", function()
  after_each(function() H.admin():command("EVAL", "for _, k in ipairs(redis.call('KEYS', 'fam*')) do redis.call('DEL', k) end", 0) end)

  it("encrypt.families: only those families are sealed; a plaintext value there is refused", function()
    local c, evs = sealed { prefix = "fam1", encrypt = { keys = { { id = "k", key = K1 } }, families = { "session" } } }
    assert.is_true(c:set("session:abc", { uid = 1 }))
    assert.is_true(c:set("page:home", "<html>"))
    assert.is_encrypted(c, "session:abc")
    assert.is_false(testing.is_encrypted(c, "page:home"))
    assert.is_not_encrypted(c, "page:home")
    assert.equal("<html>", c:get("page:home"))
    -- someone writes plaintext into the encrypted family: refused
    put(c, "session:evil", c:encode({ uid = 0 }))
    assert.is_nil(c:get("session:evil"))
    assert.equal("decrypt error: value not encrypted", evs[#evs].err)
    assert.same({}, c:get_many { "session:evil" })
    local v, _, status = c:get_or_set("session:evil", function() return { uid = 2 } end)
    assert.same({ uid = 2 }, v)
    assert.equal("miss", status)
    assert.is_encrypted(c, "session:evil")
  end)

  it("keys.define(..., {encrypt = true}) seals the family in every cache; a cache without keys cannot write it", function()
    local token_key = keys.define("fam_token", { "user_id" }, { encrypt = true })
    assert.equal("hicache.keys builder 'fam_token' (encrypted)", tostring(token_key))
    assert.is_true(token_key.encrypt)
    local c = sealed { prefix = "fam2", encrypt = { keys = { { id = "k", key = K1 } }, families = {} } }
    assert.is_true(c:set(token_key { user_id = 1 }, "tok"))
    assert.is_true(c:set("other:1", "plain"))
    assert.is_encrypted(c, token_key { user_id = 1 })
    assert.is_not_encrypted(c, "other:1")
    local nokeys = sealed { prefix = "fam2", encrypt = false }
    local ok, err = pcall(function() return (nokeys:set(token_key { user_id = 2 }, "x")) end)
    assert.is_false(ok)
    assert.matches("encrypt_spec.lua:%d+: bad argument #1 to 'set' %(key 'fam2:1:fam_token:user_id=2' is in an encrypted family", err)
    assert.has_error(function() nokeys:set_many { [token_key { user_id = 3 }] = 1 } end)
    assert.is_nil(nokeys:get(token_key { user_id = 1 })) -- sealed: this cache cannot open it
    assert.has_error(function() keys.define("fam_x", { "a" }, { encrypt = "yes" }) end, "opts.encrypt must be a boolean")
  end)

  it("memoize {encrypt = true} seals its family; refused on a cache without keys", function()
    local c = sealed { prefix = "fam3", encrypt = { keys = { { id = "k", key = K1 } }, families = {} } }
    local f = c:memoize(function(x) return { x = x } end, { name = "fam_profile", encrypt = true })
    local g = c:memoize(function(x) return x end, { name = "fam_public" })
    assert.same({ x = 1 }, f(1))
    assert.equal(1, g(1))
    assert.is_encrypted(c, f:key(1))
    assert.is_not_encrypted(c, g:key(1))
    assert.same({ x = 1 }, f:peek(1))
    local b = keys.define("fam_built", { "id" })
    local h = c:memoize(function(a) return a.id end, { name = "fam_h", key = b, encrypt = true })
    assert.equal(3, h { id = 3 })
    assert.is_encrypted(c, h:key { id = 3 }) -- the builder's family is the one sealed
    local nokeys = sealed { prefix = "fam3", encrypt = false }
    local ok, err = pcall(function() return nokeys:memoize(function() end, { name = "fam_p2", encrypt = true }) end)
    assert.is_false(ok)
    assert.matches("encrypt_spec.lua:%d+: memoize 'fam_p2': opts.encrypt: this cache has no encryption keys", err)
  end)
end)

describe("encryption options and key material", function()
  it("refuses bad keys with messages that never show a key", function()
    local function refused(enc, pattern, extra)
      local o = { host = H.host, port = H.port, encrypt = enc }
      for k, v in pairs(extra or {}) do o[k] = v end
      local ok, err = pcall(hicache.new, o)
      assert.is_false(ok)
      assert.matches(pattern, err)
      assert_no_secret(err, "option error")
    end
    refused({}, "invalid option 'encrypt.keys': must be a non%-empty list")
    refused({ keys = { { id = "k", key = K1:sub(1, 31) } } }, "invalid option 'encrypt.keys%[1%].key': must be a string of 32 bytes %(got 31 bytes%)")
    refused({ keys = { { id = "k", key = K1 .. "x" } } }, "got 33 bytes")
    refused({ keys = { { id = "k", key = K1 }, { id = "k", key = K2 } } }, "'k' is used twice")
    refused({ keys = { { id = "bad id", key = K1 } } }, "encrypt.keys%[1%].id")
    refused({ keys = { { key = K1 } } }, "encrypt.keys%[1%].id")
    refused({ keys = { { id = "k", key = K1, secret = K2 } } }, "unknown option 'encrypt.keys%[1%].secret'")
    refused({ keys = { { id = "k", key = K1 } }, families = { "a:b" } }, "encrypt.families")
    refused({ keys = { { id = "k", key = K1 } }, all = true }, "unknown option 'encrypt.all'")
    refused({ keys = { { id = "k", key = K1 } } }, "raw serializer", { serializer = "raw" })
    refused(K1, "invalid option 'encrypt': must be a table")
  end)

  it("no key material in tostring, stats, events, log lines, pool_stats or errors", function()
    local c, evs, lines = sealed { prefix = "leak" }
    assert.is_true(c:set("a", "v"))
    put(c, "b", stored(c, "a"))
    assert.is_nil(c:get("b"))
    assert.is_true(#evs > 0 and #lines > 0)
    for _, ev in ipairs(evs) do
      for k, v in pairs(ev) do assert_no_secret(k .. "=" .. tostring(v), "event") end
    end
    for _, l in ipairs(lines) do assert_no_secret(l, "log line") end
    assert_no_secret(tostring(c), "tostring")
    assert_no_secret(c:stats_text(), "stats_text")
    local function dump(t, seen)
      seen = seen or {}
      if type(t) ~= "table" or seen[t] then return tostring(t) end
      seen[t] = true
      local parts = {}
      for k, v in pairs(t) do parts[#parts + 1] = tostring(k) .. "=" .. dump(v, seen) end
      return table.concat(parts, ",")
    end
    assert_no_secret(dump(c:stats()), "stats")
    assert_no_secret(dump(c:pool_stats()), "pool_stats")
    local ok, err = pcall(function() return (c:incr("a")) end)
    assert.is_false(ok)
    assert_no_secret(err, "incr error")
    local _, derr = c:decode(stored(c, "a"), "z")
    assert_no_secret(derr, "decode error")
    -- key material in a key file: errors name the line, not its text
    local path = H.dir .. "/keys.txt"
    local f = assert(io.open(path, "w"))
    f:write("# rotation\nk2 " .. hex(K2) .. "\nk1 " .. hex(K1) .. "x\n")
    f:close()
    local ks, kerr = hicache.read_keys(path)
    assert.is_nil(ks)
    assert.matches("line 3: expected '<id> <64 hex characters>'", kerr)
    assert_no_secret(kerr, "key file error")
    f = assert(io.open(path, "w"))
    f:write("# rotation\nk2 " .. hex(K2) .. "\n\nk1 " .. hex(K1) .. "\n")
    f:close()
    ks = assert(hicache.read_keys(path))
    assert.same({ { id = "k2", key = K2 }, { id = "k1", key = K1 } }, ks)
    local fromfile = sealed { prefix = "leak", encrypt = { keys = ks } }
    assert.equal("v", fromfile:get("a"))
    c:clear()
  end)

  it("another process with the same keys reads the values; one with other keys cannot", function()
    local c = sealed { prefix = "xproc" }
    assert.is_true(c:set("shared", { n = 1 }))
    local code = [[
      package.path = %q
      package.cpath = %q
      local hicache = require "hicache"
      local c = hicache.new { host = %q, port = %d, prefix = "xproc", encrypt = { keys = { { id = "k2", key = %q } } } }
      local v = c:get("shared")
      io.write(v and tostring(v.n) or "miss")
    ]]
    local out = H.lua(code:format(package.path, package.cpath, H.host, H.port, K2))
    assert.equal("1", out)
    out = H.lua(code:format(package.path, package.cpath, H.host, H.port, K3))
    assert.equal("miss", out)
    c:clear()
  end)
end)

describe("encrypted values over a transport written in Lua", function()
  it("the same bytes on every run of an operation (the nonce is replayed)", function()
    local transport = require "hicache.transport"
    local socket = require "socket"
    local s = assert(socket.tcp())
    s:settimeout(2)
    assert(s:connect(H.host, H.port))
    local conn = {
      send = function(_, b) return s:send(b) end,
      receive = function() return s:receive(1) end, -- a byte at a time: any piece will do
      close = function() s:close() end,
    }
    local c = sealed { prefix = "xio" }
    local sends = 0
    local raw_send = conn.send
    conn.send = function(self, b) sends = sends + 1; return raw_send(self, b) end
    assert.is_true(c:set("warm", 1)) -- the write script is loaded: a set is then one round
    assert.is_true(transport.run(c, conn, "set", "k", { v = 1 }))
    assert.equal(1, sends) -- the rerun built the same request bytes and found them answered
    assert.same({ v = 1 }, c:get("k"))
    assert.is_encrypted(c, "k")
    assert.same({ v = 1 }, transport.run(c, conn, "get", "k"))
    -- a value edited while the operation waits (another light thread):
    -- the rerun seals another plaintext, which must get another nonce
    local sent, value = {}, { secret = ("A"):rep(16) }
    conn.send = function(self, b) sent[#sent + 1] = b; return raw_send(self, b) end
    local raw_receive = conn.receive
    conn.receive = function(self) value.secret = ("B"):rep(16); return raw_receive(self) end
    transport.run(c, conn, "set", "k2", value)
    local nonces = {}
    for _, req in ipairs(sent) do
      local at = req:find("\193HE\1", 1, true)
      if at then
        local idn = req:byte(at + 4)
        nonces[#nonces + 1] = req:sub(at + 5 + idn, at + 5 + idn + 23)
      end
    end
    assert.equal(2, #nonces) -- both plaintexts went out ...
    assert.are_not.equal(nonces[1], nonces[2]) -- ... never under one nonce
    c:clear()
    s:close()
  end)
end)

describe("encrypted values: the reviewer's cases", function()
  local K = { keys = { { id = "k", key = K1 } } }
  after_each(function()
    H.admin():command("EVAL", "for _, k in ipairs(redis.call('KEYS', 'rv*')) do redis.call('DEL', k) end", 0)
  end)

  it("a raw cache never returns sealed bytes, nor plaintext planted in an encrypted family", function()
    local fam = keys.define("rv_secret", { "id" }, { encrypt = true })
    local c = sealed { prefix = "rv1", encrypt = K }
    assert.is_true(c:set(fam { id = 1 }, "s"))
    local raw, evs = sealed { prefix = "rv1", encrypt = false, serializer = "raw" }
    assert.is_nil(raw:get(fam { id = 1 }))
    assert.equal("decrypt error: no encryption keys", evs[#evs].err)
    put(c, fam { id = 2 }, "planted")
    assert.is_nil(raw:get(fam { id = 2 }))
    assert.equal("decrypt error: value not encrypted", evs[#evs].err)
    assert.same({}, raw:get_many { fam { id = 1 }, fam { id = 2 } })
  end)

  it("with_version keeps the families memoize sealed", function()
    local c = sealed { prefix = "rv2", encrypt = { keys = K.keys, families = {} } }
    local f = c:memoize(function(x) return x end, { name = "rv_prof", encrypt = true })
    assert.equal(1, f(1))
    local c2 = c:with_version(2)
    assert.is_true(c2:set("rv_prof:2", "pii"))
    assert.is_encrypted(c2, "rv_prof:2")
  end)

  it("incr_version: sealed values move sealed whatever the family; one that does not open is not found", function()
    local all = sealed { prefix = "rv3", encrypt = K }                            -- seals every value
    local some = sealed { prefix = "rv3", encrypt = { keys = K.keys, families = {} } } -- seals none
    assert.is_true(all:set("x", "v"))
    assert.equal(2, some:incr_version("x"))
    assert.equal("v", some:with_version(2):get("x"))
    assert.is_encrypted(some:with_version(2), "x")
    -- a value sealed with a key this cache no longer has: a miss, so not found
    local other = sealed { prefix = "rv3", encrypt = { keys = { { id = "old", key = K2 } } } }
    local gone, evs = sealed { prefix = "rv3", encrypt = K }
    assert.is_true(other:set("y", "v"))
    local v, err = gone:incr_version("y")
    assert.is_nil(v)
    assert.equal("not found", err)
    local seen
    for _, ev in ipairs(evs) do if ev.op == "decrypt" then seen = ev.err end end
    assert.equal("decrypt error: unknown key id 'old'", seen)
    assert.equal(H.null, H.admin():command("GET", gone:_key("y"))) -- the old one went
    -- a cache without keys cannot move an encrypted family's value
    local fam = keys.define("rv_fam", { "id" }, { encrypt = true })
    local nokeys = sealed { prefix = "rv3", encrypt = false }
    assert.has_error(function() return (nokeys:incr_version(fam { id = 1 })) end)
  end)

  it("a damaged envelope header in an encrypted family is a miss plus an event", function()
    local c, evs = sealed { prefix = "rv4", encrypt = K }
    assert.is_true(c:set("t", "v", nil, { tags = { "g" } }))
    local b = stored(c, "t")
    put(c, "t", b:sub(1, 9) .. "\255" .. b:sub(11)) -- the header length
    assert.equal("miss", c:get("t", "miss"))
    assert.equal("decrypt error: corrupt hicache envelope", evs[#evs].err)
    local m, errs = c:get_many { "t" }
    assert.same({}, m)
    assert.is_nil(errs)
  end)

  it("entry_info does not call NUL bytes JSON", function()
    assert.equal("unknown", core.entry_info("\0abc").format)
  end)
end)

describe("encrypted values in the L1 near cache and the memory backend", function()
  it("L1 keeps the sealed bytes and opens them on each hit", function()
    local c = sealed { prefix = "encl1", l1 = { ttl = 60 } }
    assert.equal("PONG", c:command("PING")) -- starts the invalidation connection
    for _ = 1, 500 do -- L1 keeps copies once it is subscribed
      if c:pool_stats().l1.tracking then break end
      core.sleep(0.01)
    end
    assert.is_true(c:set("u", { n = 1 }))
    assert.same({ n = 1 }, c:get("u"))
    assert.same({ n = 1 }, c:get("u"))
    assert.is_true(c:pool_stats().l1.hits >= 1)
    assert.is_encrypted(c, "u")
    c:clear()
  end)

  it("the memory backend seals the same way", function()
    local c = assert(hicache.new { backend = "memory", name = "enc-mem", prefix = "m",
                                   encrypt = { keys = { { id = "k", key = K1 } } } })
    assert.is_true(c:set("a", "secret"))
    local bytes = c:command("GET", c:_key("a"))
    assert.equal("k", core.entry_info(bytes).encrypted)
    assert.is_nil(bytes:find("secret", 1, true))
    assert.equal("secret", c:get("a"))
    assert.equal(5, (c:get_or_set("b", function() return 5 end, { stale = 10 })))
    assert.equal("k", core.entry_info(c:command("GET", c:_key("b"))).encrypted)
    c:clear()
  end)
end)

describe("core.entry_info and opening garbage", function()
  it("reads any bytes without crashing; a sealed prefix of garbage never opens", function()
    local c = sealed { prefix = "garb" }
    local real = c:encode({ a = 1 }, "k")
    local env = c:_entry("v", 1, 1, { "t" }, { "0123456789abcdef" }, "k")
    math.randomseed(7)
    for i = 1, 3000 do
      local base = ({ real, env, "\193HE\1", "\201\0\0\0\6\72\2\2\0\0\0\0", "" })[i % 5 + 1]
      local cut = math.random(0, #base)
      local tail = {}
      for j = 1, math.random(0, 40) do tail[j] = string.char(math.random(0, 255)) end
      local bytes = base:sub(1, cut) .. table.concat(tail)
      local info = core.entry_info(bytes)
      assert.is_table(info)
      local v, err = c:decode(bytes, "k")
      if bytes ~= real and bytes:sub(1, 1) == "\193" then -- sealed-looking, not the real one: never opens
        assert.is_nil(v)
        assert.matches("^decrypt error: ", err)
      elseif bytes ~= real and bytes ~= env then
        assert.is_true(v == nil or err == nil)
      end
    end
    assert.same({ a = 1 }, c:decode(real, "k"))
    assert.equal("v", c:decode(env, "k"))
  end)
end)
