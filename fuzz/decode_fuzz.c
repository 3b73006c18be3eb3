/*
 * decode_fuzz.c -- libFuzzer target for hicache's value decoder
 * (hc_decode_push: decimal integers, zstd frames, MessagePack, JSON, raw).
 * Build and run with fuzz/run.sh; see fuzz/README.md.
 *
 * Input: one selector byte, then the bytes stored in Redis.
 *
 *   bits 0-1  serializer: 0 msgpack, 1 json, 2 raw, 3 msgpack
 *   bit  2    tight limits (max_depth 4, max_elements 64, max_bytes 4096)
 *             instead of realistic ones (64, 1e6, 64 MiB)
 *   bit  3    re-encode with zstd compression (compress_min 16, level 1)
 *   bit  4    Lua out-of-memory injection during the first decode: Lua
 *             allocations fail past a budget of (bits 5-7 + 1) * 4 KiB
 *
 * Checks, besides what ASan, UBSan and LeakSanitizer report:
 *  - the decoder is run exactly as src/lua/hc_cache.c (push_decoded) runs it:
 *    hc_decoding_init, hc_decode_push inside hc_pcall, hc_decoding_done
 *    always afterwards (so a Lua error cannot leak the C buffers);
 *  - the hc_codec.h contract: success pushes exactly one value; failure
 *    pushes nothing and sets d->err; a Lua error is raised only when Lua
 *    runs out of memory (so only under bit 4: as LUA_ERRMEM, or as the
 *    runtime error of a luaL_checkstack that could not grow the stack);
 *  - round trip: a decoded value V1 re-encodes (hc_encode, same codec)
 *    unless the only complaint is the size limit; the encoding E1 decodes
 *    to V2 structurally identical to V1 (same types, integer/float
 *    subtype, float bit patterns, string bytes, table contents); V2
 *    re-encodes to E2, and E2 == E1 byte for byte when no table in the
 *    value is a map of more than one key (only map key order, which
 *    follows Lua's table iteration, may legitimately differ); with the
 *    raw serializer E1 is the input itself.
 *  - envelopes (hc_entry.h), parsed whole and as the 1 KiB prefix a probe
 *    reads: every pointer stays inside the input; a prefix that parses
 *    gives the same header as the whole; a whole envelope that parses
 *    re-wraps (hc_entry_wrap) to exactly the input bytes.
 * A failed check prints why and calls abort(), which libFuzzer reports as
 * a crash and saves as an artifact.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "hc_buf.h"
#include "hc_codec.h"
#include "hc_entry.h"
#include "hc_reply.h"
#include "compat.h"

#define MIB ((size_t)1024 * 1024)

/* ---- Lua allocator with an optional budget ------------------------------ */

static lua_Alloc base_alloc;
static void *base_ud;
static long long mem_used;    /* relative: bytes allocated since the wrap  */
static long long mem_cap;     /* fail growth beyond this, when limiting    */
static int mem_limiting;

static void *fuzz_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    long long old = ptr ? (long long)osize : 0; /* osize is a type tag for new blocks */
    void *p;
    (void)ud;
    if (nsize == 0) {
        mem_used -= old;
        return base_alloc(base_ud, ptr, osize, 0);
    }
    /* Lua requires shrinking never to fail; only growth is refused. */
    if (mem_limiting && (long long)nsize > old && mem_used - old + (long long)nsize > mem_cap)
        return NULL;
    p = base_alloc(base_ud, ptr, osize, nsize);
    if (p != NULL) mem_used += (long long)nsize - old;
    return p;
}

/* ---- helpers ------------------------------------------------------------- */

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "decode_fuzz: CHECK FAILED: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

typedef struct job {
    hc_decoding d;
    int rc;
} job;

static int decode_cb(lua_State *L, void *ud)
{
    job *j = (job *)ud;
    int top = lua_gettop(L);
    j->rc = hc_decode_push(L, &j->d);
    if (j->rc == 0) {
        if (lua_gettop(L) != top + 1) fail("hc_decode_push succeeded but did not push exactly one value", NULL);
        return 1;
    }
    if (j->rc != -1) fail("hc_decode_push returned neither 0 nor -1", NULL);
    if (lua_gettop(L) != top) fail("hc_decode_push failed but left values on the stack", NULL);
    if (j->d.err[0] == '\0') fail("hc_decode_push failed without an error message", NULL);
    if (memchr(j->d.err, '\0', sizeof j->d.err) == NULL) fail("error message not terminated", NULL);
    return 0;
}

/* Decodes p[0..n) as push_decoded in src/lua/hc_cache.c does. Returns 1 with
 * the value pushed, 0 on a decode error (err filled, nothing pushed), or
 * -1 when Lua raised (status in *st, message in err, stack restored). */
static int decode(lua_State *L, const hc_codec *c, const char *p, size_t n, char *err, int *st)
{
    job j;
    int top = lua_gettop(L);
    hc_decoding_init(&j.d, c, p, n);
    j.rc = 1; /* not run */
    *st = hc_pcall(L, decode_cb, &j, 0, LUA_MULTRET);
    hc_decoding_done(&j.d);
    hc_decoding_done(&j.d); /* documented safe more than once */
    if (j.d.owned != NULL || j.d.json != NULL) fail("hc_decoding_done left memory behind", NULL);
    if (*st != 0) {
        snprintf(err, HC_CODEC_ERRLEN, "%s",
                 *st == -1 ? "stack overflow" : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
        lua_settop(L, top);
        return -1;
    }
    if (j.rc == 0) {
        if (lua_gettop(L) != top + 1) fail("decode result count", NULL);
        return 1;
    }
    if (j.rc != -1) fail("decode callback did not run", NULL);
    if (lua_gettop(L) != top) fail("decode error left values on the stack", NULL);
    snprintf(err, HC_CODEC_ERRLEN, "%s", j.d.err);
    return 0;
}

/* Structural identity of the values at absolute indexes a and b. Sets
 * *unordered when a table is a map of more than one key (its encoding's
 * key order follows table iteration). */
static int same(lua_State *L, int a, int b, int depth, int *unordered)
{
    int t = lua_type(L, a);
    if (t != lua_type(L, b)) return 0;
    switch (t) {
    case LUA_TNIL:
        return 1;
    case LUA_TBOOLEAN:
        return lua_toboolean(L, a) == lua_toboolean(L, b);
    case LUA_TLIGHTUSERDATA:
        return lua_touserdata(L, a) == lua_touserdata(L, b);
    case LUA_TNUMBER:
        if (lua_isinteger(L, a) != lua_isinteger(L, b)) return 0;
        if (lua_isinteger(L, a)) return lua_tointeger(L, a) == lua_tointeger(L, b);
        {
            lua_Number x = lua_tonumber(L, a), y = lua_tonumber(L, b);
            return memcmp(&x, &y, sizeof x) == 0; /* NaN, -0.0: bit for bit */
        }
    case LUA_TSTRING: {
        size_t m, n;
        const char *s = lua_tolstring(L, a, &m), *u = lua_tolstring(L, b, &n);
        return m == n && memcmp(s, u, m) == 0;
    }
    case LUA_TTABLE: {
        size_t na = 0, nb = 0;
        lua_Integer max = 0;
        int array = 1;
        if (depth > 2 * HC_DEPTH_LIMIT) fail("decoded value nested beyond HC_DEPTH_LIMIT", NULL);
        if (!lua_checkstack(L, 6)) fail("lua_checkstack in comparison", NULL);
        lua_pushnil(L);
        while (lua_next(L, a) != 0) {
            int k = lua_gettop(L) - 1;
            na++;
            if (lua_isinteger(L, k) && lua_tointeger(L, k) >= 1) {
                if (lua_tointeger(L, k) > max) max = lua_tointeger(L, k);
            } else {
                array = 0;
            }
            lua_pushvalue(L, k);
            lua_rawget(L, b); /* k, a[k], b[k] */
            if (lua_isnil(L, -1) || !same(L, k + 1, k + 2, depth + 1, unordered)) {
                lua_pop(L, 3);
                return 0;
            }
            lua_pop(L, 2);
        }
        lua_pushnil(L);
        while (lua_next(L, b) != 0) {
            nb++;
            lua_pop(L, 1);
        }
        if (na != nb) return 0;
        if (na > 1 && !(array && (size_t)max == na)) *unordered = 1;
        return 1;
    }
    default:
        return 0; /* the decoder never makes functions, userdata, threads */
    }
}

static int is_size_error(const char *err)
{
    return strstr(err, "larger than the size limit") != NULL;
}

/* ---- the target ------------------------------------------------------------ */

static lua_State *state(void)
{
    static lua_State *L;
    if (L == NULL) {
        L = luaL_newstate(); /* no standard libraries: the codec needs none */
        if (L == NULL) fail("luaL_newstate", NULL);
        base_alloc = lua_getallocf(L, &base_ud);
        lua_setallocf(L, fuzz_alloc, NULL);
        hc_reply_init(L);
    }
    return L;
}

static void in_input(const char *what, const char *q, size_t len, const char *p, size_t n)
{
    if (len > 0 && (q < p || q + len > p + n)) fail("entry pointer outside the input", what);
}

static void entry_checks(const char *p, size_t n)
{
    hc_entry whole, pre;
    size_t need = 0, probe = n < 1024 ? n : 1024;
    int i, sw = hc_entry_parse(p, n, 1, &whole, NULL);
    int sp = hc_entry_parse(p, probe, probe == n, &pre, &need);
    if (sw == HC_ENTRY_SHORT) fail("a whole value parsed as short", "");
    if (sp == HC_ENTRY_SHORT && need <= probe) fail("short, but needs no more than it has", "");
    if (sw != HC_ENTRY_OK) return;
    if (whole.header_end > n || whole.value != p + whole.header_end || whole.value_len != n - whole.header_end)
        fail("value bytes misplaced", "");
    for (i = 0; i < whole.tags.n; i++) {
        in_input("tag", whole.tags.name[i], whole.tags.name_len[i], p, n);
        in_input("token", whole.tags.tok[i], whole.tags.tok_len[i], p, n);
    }
    if (sp == HC_ENTRY_OK && (pre.envelope != whole.envelope || pre.tags.n != whole.tags.n ||
                              pre.header_end != whole.header_end || pre.soft_ms != whole.soft_ms))
        fail("the probe's header differs from the whole value's", "");
    if (whole.envelope) {
        hc_buf b;
        hc_buf_init(&b, 0);
        if (hc_entry_wrap(whole.value, whole.value_len, whole.has_soft, whole.soft_ms, whole.delta_ms, &whole.tags,
                          &b) != 0)
            fail("an envelope does not re-wrap", "");
        if (b.len != n || memcmp(b.data, p, n) != 0) fail("an envelope re-wraps to other bytes", "");
        hc_buf_free(&b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = state();
    hc_codec c;
    unsigned sel;
    const char *p;
    size_t n;
    char err[HC_CODEC_ERRLEN], err2[HC_CODEC_ERRLEN];
    int st, r, unordered = 0;
    hc_buf e1, e2;

    if (size == 0) return 0;
    sel = data[0];
    p = (const char *)data + 1;
    n = size - 1;
    entry_checks(p, n);

    memset(&c, 0, sizeof c);
    c.ser = (sel & 3) == 1 ? HC_SER_JSON : (sel & 3) == 2 ? HC_SER_RAW : HC_SER_MSGPACK;
    if (sel & 4) {
        c.max_depth = 4;
        c.max_elements = 64;
        c.max_bytes = 4096;
    } else {
        c.max_depth = 64;
        c.max_elements = 1000000;
        c.max_bytes = 64 * MIB;
    }
    if (sel & 8) {
        c.compress_min = 16;
        c.compress_level = 1;
    }

    lua_settop(L, 0);
    if (sel & 16) {
        lua_gc(L, LUA_GCCOLLECT); /* same heap for every run of an input */
        mem_cap = mem_used + (long long)(((sel >> 5) + 1) * 4096);
        mem_limiting = 1;
    }
    r = decode(L, &c, p, n, err, &st);
    mem_limiting = 0;
    if (r == -1) {
        /* Under memory pressure luaL_checkstack cannot grow the stack and
         * raises a plain runtime error ("stack overflow (decode: nested too
         * deeply)"), so any status is fine here; what matters is that
         * nothing leaked and the state is still usable. */
        if (!(sel & 16)) fail("hc_decode_push raised without a memory limit", err);
        lua_settop(L, 0);
        return 0;
    }
    if (r == 0) { /* rejected input: fine, as long as nothing leaked */
        lua_settop(L, 0);
        return 0;
    }

    /* Round trip: stack is V1. */
    hc_buf_init(&e1, c.max_bytes);
    hc_buf_init(&e2, c.max_bytes);
    if (hc_encode(L, 1, &c, &e1, err, sizeof err) != 0) {
        if (!is_size_error(err)) fail("a decoded value does not re-encode", err);
        goto done;
    }
    if (lua_gettop(L) != 1) fail("hc_encode changed the stack", NULL);
    if (c.ser == HC_SER_RAW && (e1.len != n || (n && memcmp(e1.data, p, n) != 0)))
        fail("raw re-encoding differs from the input", NULL);

    r = decode(L, &c, e1.data ? e1.data : "", e1.len, err2, &st);
    if (r == -1) fail("decoding a re-encoding raised", err2);
    if (r == 0) fail("a re-encoding does not decode", err2);
    if (!same(L, 1, 2, 0, &unordered)) fail("decode(encode(V)) differs from V", NULL);
    if (lua_gettop(L) != 2) fail("comparison changed the stack", NULL);

    if (hc_encode(L, 2, &c, &e2, err, sizeof err) != 0) fail("a decoded re-encoding does not encode", err);
    if (!unordered && (e1.len != e2.len || (e1.len && memcmp(e1.data, e2.data, e1.len) != 0)))
        fail("encode(decode(encode(V))) != encode(V)", NULL);
done:
    hc_buf_free(&e1);
    hc_buf_free(&e2);
    lua_settop(L, 0);
    return 0;
}
