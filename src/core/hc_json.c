/*
 * hc_json.c -- the "json" serializer, on jansson (Debian libjansson-dev).
 * Integers stay integers and floats keep a fraction or exponent ("3.0"),
 * so 3 and 3.0 stay distinct; NaN and infinities cannot be JSON and are
 * refused; object keys must be strings (docs/FORMAT.md).
 */
#include "hc_codec.h"
#include "compat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

typedef struct jenc {
    lua_State *L;
    const hc_codec *c;
    hc_path path;
    char *err;
    size_t errlen;
} jenc;

static json_t *jfail(jenc *e, const char *why)
{
    hc_path_error(e->L, &e->path, why, e->err, e->errlen);
    return NULL;
}

static json_t *jvalue(jenc *e, int idx);

static json_t *jtable(jenc *e, int idx)
{
    lua_State *L = e->L;
    json_t *out;
    size_t n, i;
    int d;
    if (hc_path_enter(L, &e->path, idx, e->c->max_depth, e->err, e->errlen) != 0) return NULL;
    d = ++e->path.depth;
    if (hc_table_is_array(L, idx, &n)) {
        out = json_array();
        if (out == NULL) return jfail(e, "out of memory");
        for (i = 1; i <= n; i++) {
            json_t *v;
            e->path.key_idx[d] = 0;
            e->path.index[d] = (long long)i;
            lua_rawgeti(L, idx, (lua_Integer)i);
            v = jvalue(e, lua_gettop(L));
            lua_pop(L, 1);
            if (v == NULL || json_array_append_new(out, v) != 0) goto fail;
        }
    } else {
        out = json_object();
        if (out == NULL) return jfail(e, "out of memory");
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            int k = lua_gettop(L) - 1;
            json_t *v;
            size_t kn;
            const char *ks;
            e->path.key_idx[d] = k;
            if (lua_type(L, k) != LUA_TSTRING) {
                jfail(e, "JSON object keys must be strings");
                lua_pop(L, 2);
                goto fail;
            }
            ks = lua_tolstring(L, k, &kn);
            if (memchr(ks, '\0', kn) != NULL) { /* jansson could not read it back */
                jfail(e, "JSON object keys must not contain NUL bytes");
                lua_pop(L, 2);
                goto fail;
            }
            if (!hc_utf8_valid((const unsigned char *)ks, kn)) {
                jfail(e, "JSON strings must be UTF-8");
                lua_pop(L, 2);
                goto fail;
            }
            v = jvalue(e, k + 1);
            if (v == NULL) { lua_pop(L, 2); goto fail; }
            if (json_object_setn_new(out, ks, kn, v) != 0) {
                jfail(e, "out of memory");
                lua_pop(L, 2);
                goto fail;
            }
            lua_pop(L, 1);
        }
    }
    e->path.depth--;
    return out;
fail:
    json_decref(out);
    return NULL;
}

static json_t *jvalue(jenc *e, int idx)
{
    lua_State *L = e->L;
    json_t *v = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        v = json_null();
        break;
    case LUA_TBOOLEAN:
        v = json_boolean(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (hc_isinteger(L, idx)) {
            v = json_integer((json_int_t)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (isnan(d) || isinf(d)) return jfail(e, "NaN and infinity cannot be stored as JSON");
            v = json_real(d);
        }
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (!hc_utf8_valid((const unsigned char *)s, n))
            return jfail(e, "JSON strings must be UTF-8 (use msgpack for binary)");
        v = json_stringn_nocheck(s, n);
        break;
    }
    case LUA_TTABLE:
        return jtable(e, idx);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) { v = json_null(); break; }
        return jfail(e, "cannot cache a light userdata");
    default: {
        char why[64];
        snprintf(why, sizeof why, "cannot cache a %s", lua_typename(L, lua_type(L, idx)));
        return jfail(e, why);
    }
    }
    if (v == NULL) return jfail(e, "out of memory");
    return v;
}

int hc_json_encode(lua_State *L, int idx, const hc_codec *c, hc_buf *out, char *err, size_t errlen)
{
    jenc e;
    json_t *v;
    char *s;
    int top = lua_gettop(L), rc = 0;
    e.L = L;
    e.c = c;
    e.err = err;
    e.errlen = errlen;
    e.path.depth = 0;
    v = jvalue(&e, idx);
    lua_settop(L, top);
    if (v == NULL) return -1;
    s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(v);
    if (s == NULL) {
        snprintf(err, errlen, "value: out of memory");
        return -1;
    }
    if (hc_buf_append(out, s, strlen(s)) != 0) rc = -1;
    free(s);
    if (rc) snprintf(err, errlen, "value: larger than the size limit, or out of memory");
    return rc;
}

/* ---- decode: the tree is owned by the hc_decoding (freed by _done) ------ */

static int jpush(lua_State *L, json_t *v, int depth, const hc_codec *c, size_t *elements)
{
    luaL_checkstack(L, 4, "decode: nested too deeply");
    /* the same rule as the encoder and the msgpack decoder: containers
     * may sit at depths 0 .. max_depth-1 */
    if ((json_is_array(v) || json_is_object(v)) && depth >= c->max_depth) return -1;
    switch (json_typeof(v)) {
    case JSON_NULL:
        if (depth == 0) lua_pushnil(L);
        else lua_pushlightuserdata(L, NULL);
        return 0;
    case JSON_TRUE: lua_pushboolean(L, 1); return 0;
    case JSON_FALSE: lua_pushboolean(L, 0); return 0;
    case JSON_INTEGER: hc_push_int64(L, (long long)json_integer_value(v)); return 0;
    case JSON_REAL: lua_pushnumber(L, (lua_Number)json_real_value(v)); return 0;
    case JSON_STRING: lua_pushlstring(L, json_string_value(v), json_string_length(v)); return 0;
    case JSON_ARRAY: {
        size_t i, n = json_array_size(v);
        if (n > c->max_elements - *elements) return -2;
        *elements += n;
        lua_createtable(L, (int)n, 0);
        for (i = 0; i < n; i++) {
            int r = jpush(L, json_array_get(v, i), depth + 1, c, elements);
            if (r != 0) return r;
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return 0;
    }
    case JSON_OBJECT: {
        const char *k;
        size_t n = json_object_size(v);
        json_t *x;
        if (n > c->max_elements - *elements) return -2;
        *elements += n;
        lua_createtable(L, 0, (int)n);
        json_object_foreach(v, k, x) {
            int r;
            lua_pushstring(L, k);
            r = jpush(L, x, depth + 1, c, elements);
            if (r != 0) return r;
            lua_rawset(L, -3);
        }
        return 0;
    }
    }
    return -1;
}

int hc_json_decode(lua_State *L, hc_decoding *d, const char *p, size_t n)
{
    json_error_t je;
    size_t elements = 0;
    int top = lua_gettop(L), r;
    json_t *v = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (v == NULL) {
        snprintf(d->err, sizeof d->err, "invalid JSON: %s", je.text);
        return -1;
    }
    d->json = v; /* freed by hc_decoding_done even if a push below raises */
    r = jpush(L, v, 0, d->c, &elements);
    if (r != 0) {
        lua_settop(L, top);
        snprintf(d->err, sizeof d->err, r == -2 ? "too many elements" : "nested too deeply");
        return -1;
    }
    return 0;
}
