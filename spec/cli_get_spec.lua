-- hicache get, run as a real process: the header line and the pretty value
-- of every format (msgpack, integer, float, binary, zstd, json, envelopes),
-- tags current or moved on, soft expiry, a lease in flight, --raw-key,
-- --json, a missing key (exit 1), and encrypted values with --key-file
-- (no key material in any output).
local H = require "helper"
local X = require "helpers.cli"

local K1 = "0123456789abcdef0123456789abcdef"       -- 32 bytes
local K2 = ("\1\2\3\4\5\6\7\8"):rep(4)
local function hex(s) return (s:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)) end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function header(r) return X.lines(r.out)[1] end
local function body(r) return (r.out:match("^[^\n]*\n(.*)$")) end

describe("hicache get", function()
  local P = "cli-get"
  local url, c, admin
  setup(function()
    url, admin = X.url(), H.admin()
    c = H.cache { prefix = P, compress = { min_size = 64 } }
  end)
  teardown(function() X.run("flush-namespace", url, "--prefix", P, "--yes") end)

  local function get(...) return X.run("get", url, "--prefix", P, ...) end

  it("pretty-prints a table: sorted keys, arrays, nesting, integers apart from floats", function()
    assert(c:set("user:42", { name = "Ann", roles = { "admin", "dev" }, age = 37, score = 3.0, ratio = 0.25,
                              nested = { deep = { list = { 1, 2, { x = true } } }, empty = {} },
                              [7] = "seven", active = false, none = H.null }, 300))
    local r = get("user:42")
    assert.equal(0, r.code, r.err)
    assert.equal("", r.err)
    assert.matches("^# cli%-get:1:user:42  msgpack  %d+ B  ttl 4m5%ds$", header(r))
    assert.equal((([[
{
  7: "seven",
  "active": false,
  "age": 37,
  "name": "Ann",
  "nested": {
    "deep": {
      "list": [
        1,
        2,
        {"x": true}
      ]
    },
    "empty": {}
  },
  "none": null,
  "ratio": 0.25,
  "roles": ["admin", "dev"],
  "score": 3.0
}
]]):gsub("3%.0", H.luajit and "3" or "3.0")), body(r)) -- LuaJIT: one number type
  end)

  it("every format: integer, string with binary bytes, zstd, json (found out from the bytes)", function()
    assert(c:set("n", -42, 300))
    assert(c:set("bin", "caf\195\169 \0\1\255 \"q\" \\ \n", 300))
    assert(c:set("big", ("abc"):rep(100), 300))
    assert(H.cache { prefix = P, serializer = "json" }:set("doc", { a = { 1.5, "x" } }, 300))
    local r = get("n")
    assert.same({ 0, "-42\n" }, { r.code, body(r) })
    assert.matches("  integer  3 B  ", header(r))
    r = get("bin")
    assert.equal('"caf\195\169 \\x00\\x01\\xff \\"q\\" \\\\ \\n"\n', body(r))
    r = get("big")
    assert.matches("  zstd  %d+ B  ", header(r))
    assert.equal('"' .. ("abc"):rep(100) .. '"\n', body(r))
    r = get("doc")
    assert.matches("  json  %d+ B  ", header(r))
    assert.equal('{\n  "a": [1.5, "x"]\n}\n', body(r))
    r = get("doc", "--serializer", "raw")
    assert.equal('"{\\"a\\":[1.5,\\"x\\"]}"\n', body(r))
  end)

  it("tags: current, then moved on (the entry reads as a miss, and is shown)", function()
    assert(c:set("t", "tagged", 300, { tags = { "b", "a" } }))
    local r = get("t")
    assert.matches("  tags a,b %(current%)$", header(r))
    assert(c:invalidate_tag("a"))
    r = get("t")
    assert.equal(0, r.code)
    assert.matches("  tags a,b %(moved on: reads as a miss%)$", header(r))
    assert.equal('"tagged"\n', body(r))
  end)

  it("soft expiry of a get_or_set entry, and a fill in flight (its lease)", function()
    assert(c:get_or_set("gs", function() return 1 end, { ttl = 100, stale = 50 }))
    local r = get("gs")
    assert.matches("  ttl 2m2%ds  soft %+1m[34]%ds$", header(r))
    assert.equal(2, (c:_lease("gs", "a-refresh-token-0123", 30000, true)))
    r = get("gs")
    assert.matches("  soft %+1m[34]%ds  lease a%-refres%.%.%. %(a fill in flight%)$", header(r))
  end)

  it("--raw-key takes the whole Redis key; --version another version", function()
    assert(H.cache { prefix = P, version = 3 }:set("k", "three", 300))
    local r = X.run("get", url, P .. ":3:k", "--raw-key")
    assert.same({ 0, '"three"\n' }, { r.code, body(r) })
    r = get("k", "--version", "3")
    assert.same({ 0, '"three"\n' }, { r.code, body(r) })
    assert.matches("^# cli%-get:3:k  ", header(r))
  end)

  it("a missing key: exit 1, 'not found' on stderr, nothing on stdout", function()
    for _, args in ipairs { { "nope" }, { "nope", "--json" } } do
      local r = get(H.unpack(args))
      assert.equal(1, r.code)
      assert.equal("", r.out)
      assert.equal("hicache: get: not found: cli-get:1:nope\n", r.err)
    end
  end)

  it("a value that does not decode: the header, then exit 1 with the decoder's message", function()
    admin:command("SET", P .. ":1:pickle", "\128\4\149\5\0")
    local r = get("pickle")
    assert.equal(1, r.code)
    assert.matches("^# cli%-get:1:pickle  msgpack  5 B  ttl none\n$", r.out)
    assert.matches("^hicache: get: cannot decode: decode error: ", r.err)
  end)

  it("--json: one object with the value and what surrounds it", function()
    assert(c:set("j", { list = { 1, 2.5, "s\255" }, flag = true }, 300, { tags = { "x" } }))
    local r = get("j", "--json")
    assert.equal(0, r.code, r.err)
    local o = X.json(r.out)
    assert.same({ "cli-get:1:j", "msgpack", false, H.null, { "x" }, true, H.null, H.null },
      { o.key, o.format, o.compressed, o.encrypted, o.tags, o.visible, o.lease, o.soft_expiry_ms })
    assert.is_true(o.ttl_ms > 290000 and o.ttl_ms <= 300000)
    assert.equal(admin:command("STRLEN", P .. ":1:j"), o.size)
    assert.same({ list = { 1, 2.5, "s\195\191" }, flag = true }, o.value) -- \255: JSON's \u00ff
    assert.equal("float", H.mtype(o.value.list[2]))
  end)

  describe("encrypted values", function()
    local enc, keyfile, wrongfile
    setup(function()
      enc = H.cache { prefix = P, encrypt = { keys = { { id = "k1", key = K1 } } } }
      assert(enc:set("card", { number = "4111 1111", exp = "12/29" }, 300))
      assert(enc:set("tcard", "sealed and tagged", 300, { tags = { "cards" } }))
      keyfile = write_file(H.dir .. "/cli-keys", "# the keys\n\nk2 " .. hex(K2) .. "\nk1 " .. hex(K1) .. "\n")
      wrongfile = write_file(H.dir .. "/cli-keys-wrong", "k2 " .. hex(K2) .. "\n")
    end)

    local function no_secret(r)
      for _, s in ipairs { K1, K2, hex(K1), hex(K2), hex(K1):sub(1, 16), hex(K2):sub(1, 16) } do
        assert.falsy((r.out .. r.err):find(s, 1, true), "key material in the output")
      end
    end

    it("without a key file: the header says encrypted(<id>), exit 1 asking for --key-file", function()
      local r = get("card")
      assert.equal(1, r.code)
      assert.matches("^# cli%-get:1:card  encrypted%(k1%)  %d+ B  ttl 4m5%ds\n$", r.out)
      assert.equal("hicache: get: the value is encrypted (key id k1): give --key-file\n", r.err)
    end)

    it("with --key-file: decrypted (also inside a tagged envelope), --json too", function()
      local r = get("card", "--key-file", keyfile)
      assert.equal(0, r.code, r.err)
      assert.equal('{"exp": "12/29", "number": "4111 1111"}\n', body(r))
      no_secret(r)
      r = get("tcard", "--key-file", keyfile)
      assert.equal(0, r.code, r.err)
      assert.matches("  encrypted%(k1%)  .*tags cards %(current%)$", header(r))
      assert.equal('"sealed and tagged"\n', body(r))
      r = get("tcard", "--key-file", keyfile, "--json")
      local o = X.json(r.out)
      assert.same({ "encrypted", "k1", "sealed and tagged" }, { o.format, o.encrypted, o.value })
      no_secret(r)
    end)

    it("with --key-file, a plain value shows as well", function()
      assert(c:set("plain", { a = 1 }, 300))
      local r = get("plain", "--key-file", keyfile)
      assert.same({ 0, '{"a": 1}\n', "" }, { r.code, body(r), r.err })
    end)

    it("a key file without the value's key: exit 1, no key material", function()
      local r = get("card", "--key-file", wrongfile)
      assert.equal(1, r.code)
      assert.matches("^hicache: get: cannot decode: decrypt error: .*k1", r.err)
      no_secret(r)
    end)

    it("a value copied under another key does not open (the key is its associated data)", function()
      admin:command("SET", P .. ":1:moved", admin:command("GET", P .. ":1:card"))
      local r = get("moved", "--key-file", keyfile)
      assert.equal(1, r.code)
      assert.matches("^hicache: get: cannot decode: decrypt error", r.err)
      assert.falsy(r.out:find("4111", 1, true))
    end)

    it("a bad key file: exit 2 naming the line, never its content", function()
      for _, text in ipairs { "k1 " .. hex(K1):sub(3) .. "\n", "k1\n", "k1 " .. hex(K1) .. "\nk1 " .. hex(K2) .. "\n",
                              "# nothing\n" } do
        local path = write_file(H.dir .. "/cli-bad-keys", text)
        local r = get("card", "--key-file", path)
        assert.equal(2, r.code, r.err)
        assert.equal("", r.out)
        assert.matches("^hicache: get: key file ", r.err)
        assert.equal(1, #X.lines(r.err))
        no_secret(r)
      end
      local r = get("card", "--key-file", H.dir .. "/no-such-file")
      assert.equal(2, r.code)
    end)
  end)
end)
