/*
 * hc_msgpack.c -- MessagePack for hicache values.
 *
 * Encoding uses msgpack-c's packer (Debian libmsgpack-dev). Decoding is
 * hand-written: msgpack-c's unpacker sizes its object tree from the
 * lengths claimed in the input before reading them and has no element
 * budget, while this decoder checks every claimed length against the bytes
 * that remain and against the depth/element limits before it allocates,
 * and builds Lua values directly with no intermediate tree (docs/FORMAT.md).
 */
#include "hc_codec.h"
#include "compat.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

/* ---- encode ---------------------------------------------------------------- */

typedef struct enc {
    lua_State *L;
    const hc_codec *c;
    msgpack_packer pk;
    hc_path path;
    char *err;
    size_t errlen;
} enc;

static int write_cb(void *data, const char *buf, size_t len)
{
    return hc_buf_append((hc_buf *)data, buf, len);
}

static int enc_value(enc *e, int idx);

static int enc_string(enc *e, int idx)
{
    size_t n;
    const char *s = lua_tolstring(e->L, idx, &n); /* only called on strings */
    if (hc_utf8_valid((const unsigned char *)s, n))
        return msgpack_pack_str_with_body(&e->pk, s, n);
    return msgpack_pack_bin_with_body(&e->pk, s, n);
}

static int fail(enc *e, const char *why)
{
    hc_path_error(e->L, &e->path, why, e->err, e->errlen);
    return -1;
}

static int enc_table(enc *e, int idx)
{
    lua_State *L = e->L;
    size_t n, i;
    int d;
    if (hc_path_enter(L, &e->path, idx, e->c->max_depth, e->err, e->errlen) != 0) return -1;
    d = ++e->path.depth;
    if (hc_table_is_array(L, idx, &n)) {
        if (msgpack_pack_array(&e->pk, n) != 0) return -1;
        for (i = 1; i <= n; i++) {
            e->path.key_idx[d] = 0;
            e->path.index[d] = (long long)i;
            lua_rawgeti(L, idx, (lua_Integer)i);
            if (enc_value(e, lua_gettop(L)) != 0) return -1;
            lua_pop(L, 1);
        }
    } else {
        if (msgpack_pack_map(&e->pk, n) != 0) return -1;
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            int k = lua_gettop(L) - 1;
            e->path.key_idx[d] = k;
            switch (lua_type(L, k)) {
            case LUA_TSTRING:
                if (enc_string(e, k) != 0) return -1;
                break;
            case LUA_TNUMBER:
                if (hc_isinteger(L, k)) {
                    if (msgpack_pack_int64(&e->pk, (int64_t)lua_tointeger(L, k)) != 0) return -1;
                } else if (msgpack_pack_double(&e->pk, (double)lua_tonumber(L, k)) != 0) {
                    return -1;
                }
                break;
            case LUA_TBOOLEAN:
                if ((lua_toboolean(L, k) ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk)) != 0)
                    return -1;
                break;
            default: {
                char why[64];
                snprintf(why, sizeof why, "cannot use a %s as a key", lua_typename(L, lua_type(L, k)));
                return fail(e, why);
            }
            }
            if (enc_value(e, k + 1) != 0) return -1;
            lua_pop(L, 1);
        }
    }
    e->path.depth--;
    return 0;
}

static int enc_value(enc *e, int idx)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return msgpack_pack_nil(&e->pk);
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk);
    case LUA_TNUMBER:
        if (hc_isinteger(L, idx)) return msgpack_pack_int64(&e->pk, (int64_t)lua_tointeger(L, idx));
        return msgpack_pack_double(&e->pk, (double)lua_tonumber(L, idx));
    case LUA_TSTRING:
        return enc_string(e, idx);
    case LUA_TTABLE:
        return enc_table(e, idx);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) return msgpack_pack_nil(&e->pk); /* hicache.null */
        return fail(e, "cannot cache a light userdata");
    default: {
        char why[64];
        snprintf(why, sizeof why, "cannot cache a %s", lua_typename(L, lua_type(L, idx)));
        return fail(e, why);
    }
    }
}

int hc_msgpack_encode(lua_State *L, int idx, const hc_codec *c, hc_buf *out, char *err, size_t errlen)
{
    enc e;
    int top = lua_gettop(L);
    e.L = L;
    e.c = c;
    e.err = err;
    e.errlen = errlen;
    e.path.depth = 0;
    err[0] = '\0';
    msgpack_packer_init(&e.pk, out, write_cb);
    if (enc_value(&e, idx) != 0) {
        lua_settop(L, top);
        if (err[0] == '\0') snprintf(err, errlen, "value: larger than the size limit, or out of memory");
        return -1;
    }
    return 0;
}

/* ---- decode --------------------------------------------------------------- */

typedef struct dec {
    const unsigned char *p, *end;
    size_t elements;
    const hc_codec *c;
    const char *why;
} dec;

#define NEED(m, n) do { if ((size_t)((m)->end - (m)->p) < (size_t)(n)) { (m)->why = "truncated"; return -1; } } while (0)

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

static int dec_value(lua_State *L, dec *m, int depth);

static int dec_container(lua_State *L, dec *m, int depth, uint64_t n, int map)
{
    uint64_t i;
    size_t left = (size_t)(m->end - m->p);
    if (depth >= m->c->max_depth) { m->why = "nested too deeply"; return -1; }
    /* every element takes at least one byte: a claim beyond that is a lie */
    if (n > left || (map && n > left / 2)) { m->why = "truncated (length prefix beyond the input)"; return -1; }
    if (n > m->c->max_elements - m->elements) { m->why = "too many elements"; return -1; }
    m->elements += (size_t)n;
    luaL_checkstack(L, 4, "decode: nested too deeply");
    if (!map) {
        lua_createtable(L, (int)n, 0);
        for (i = 1; i <= n; i++) {
            if (dec_value(L, m, depth + 1) != 0) return -1;
            lua_rawseti(L, -2, (lua_Integer)i);
        }
        return 0;
    }
    lua_createtable(L, 0, (int)n);
    for (i = 0; i < n; i++) {
        int kt;
        if (dec_value(L, m, depth + 1) != 0) return -1;
        kt = lua_type(L, -1);
        if (kt == LUA_TLIGHTUSERDATA || kt == LUA_TTABLE ||
            (kt == LUA_TNUMBER && lua_tonumber(L, -1) != lua_tonumber(L, -1))) {
            m->why = "map key is nil, NaN or a container";
            return -1;
        }
        if (dec_value(L, m, depth + 1) != 0) return -1;
        lua_rawset(L, -3);
    }
    return 0;
}

static int dec_bytes(lua_State *L, dec *m, uint64_t n)
{
    NEED(m, n);
    lua_pushlstring(L, (const char *)m->p, (size_t)n);
    m->p += n;
    return 0;
}

static int dec_value(lua_State *L, dec *m, int depth)
{
    unsigned t;
    NEED(m, 1);
    t = *m->p++;
    if (t <= 0x7f) { lua_pushinteger(L, (lua_Integer)t); return 0; }
    if (t >= 0xe0) { lua_pushinteger(L, (lua_Integer)(int8_t)t); return 0; }
    if (t >= 0x80 && t <= 0x8f) return dec_container(L, m, depth, t & 0x0f, 1);
    if (t >= 0x90 && t <= 0x9f) return dec_container(L, m, depth, t & 0x0f, 0);
    if (t >= 0xa0 && t <= 0xbf) return dec_bytes(L, m, t & 0x1f);
    switch (t) {
    case 0xc0: /* nil: hicache.null inside containers, nil at the top */
        if (depth == 0) lua_pushnil(L);
        else lua_pushlightuserdata(L, NULL);
        return 0;
    case 0xc2: lua_pushboolean(L, 0); return 0;
    case 0xc3: lua_pushboolean(L, 1); return 0;
    case 0xc4: case 0xd9: NEED(m, 1); m->p += 1; return dec_bytes(L, m, be(m->p - 1, 1));
    case 0xc5: case 0xda: NEED(m, 2); m->p += 2; return dec_bytes(L, m, be(m->p - 2, 2));
    case 0xc6: case 0xdb: NEED(m, 4); m->p += 4; return dec_bytes(L, m, be(m->p - 4, 4));
    case 0xca: {
        uint32_t u;
        float f;
        NEED(m, 4);
        u = (uint32_t)be(m->p, 4);
        memcpy(&f, &u, 4);
        m->p += 4;
        lua_pushnumber(L, (lua_Number)f);
        return 0;
    }
    case 0xcb: {
        uint64_t u;
        double f;
        NEED(m, 8);
        u = be(m->p, 8);
        memcpy(&f, &u, 8);
        m->p += 8;
        lua_pushnumber(L, (lua_Number)f);
        return 0;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int n = 1 << (t - 0xcc);
        uint64_t u;
        NEED(m, n);
        u = be(m->p, n);
        m->p += n;
        if (u > (uint64_t)INT64_MAX) { m->why = "integer out of range"; return -1; }
        hc_push_int64(L, (long long)u);
        return 0;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int n = 1 << (t - 0xd0);
        uint64_t u;
        int64_t v;
        NEED(m, n);
        u = be(m->p, n);
        m->p += n;
        if (n < 8 && (u >> (n * 8 - 1)) & 1) u |= ~(uint64_t)0 << (n * 8); /* sign-extend */
        memcpy(&v, &u, 8);
        hc_push_int64(L, (long long)v);
        return 0;
    }
    case 0xdc: NEED(m, 2); m->p += 2; return dec_container(L, m, depth, be(m->p - 2, 2), 0);
    case 0xdd: NEED(m, 4); m->p += 4; return dec_container(L, m, depth, be(m->p - 4, 4), 0);
    case 0xde: NEED(m, 2); m->p += 2; return dec_container(L, m, depth, be(m->p - 2, 2), 1);
    case 0xdf: NEED(m, 4); m->p += 4; return dec_container(L, m, depth, be(m->p - 4, 4), 1);
    default:
        m->why = (t >= 0xc7 && t <= 0xc9) || (t >= 0xd4 && t <= 0xd8)
                     ? "unsupported MessagePack extension type"
                     : "invalid MessagePack byte";
        return -1;
    }
}

int hc_msgpack_decode(lua_State *L, const hc_codec *c, const char *p, size_t n, char *err, size_t errlen)
{
    dec m;
    int top = lua_gettop(L);
    m.p = (const unsigned char *)p;
    m.end = m.p + n;
    m.elements = 0;
    m.c = c;
    m.why = NULL;
    if (dec_value(L, &m, 0) != 0) {
        lua_settop(L, top);
        snprintf(err, errlen, "%s", m.why);
        return -1;
    }
    if (m.p != m.end) {
        lua_settop(L, top);
        snprintf(err, errlen, "trailing bytes after the value");
        return -1;
    }
    return 0;
}
