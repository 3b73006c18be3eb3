/*
 * hc_keys.c -- context-aware key builders (hicache.keys), in C because a
 * builder runs on every request.
 *
 *   family:field1=value1:field2=value2
 *
 * Fields appear in declared order. Scalar values are percent-escaped
 * (':', '=', '%', ',', '#', '{', '}', and bytes < 0x20), so the encoding is
 * injective and user data cannot forge a field or a Cluster hash tag.
 * Sets are canonical (escaped, sorted, de-duplicated) and hashed; lists are
 * hashed in order; "hashed" values are hashed. Hashes are BLAKE2b-128
 * (libsodium), hex. A key longer than the builder's max_length keeps a
 * readable head and replaces the rest with "#" + the hash of the whole key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "compat.h"

#define HASH_BYTES 16
#define MAX_FIELDS 32

enum kind { K_SCALAR, K_STRING, K_INTEGER, K_BOOLEAN, K_SET, K_LIST, K_HASHED };
static const char *const kind_names[] = {"scalar", "string", "integer", "boolean", "set", "list", "hashed", NULL};

typedef struct builder {
    int nfields;
    int max_length;
    enum kind kinds[MAX_FIELDS];
} builder;

/* Raises "msg" at the line that called the builder. */
static int fail(lua_State *L, const char *fmt, const char *a, const char *b)
{
    luaL_where(L, 1);
    lua_pushfstring(L, fmt, a, b);
    lua_concat(L, 2);
    return lua_error(L);
}

static void hash_hex(const void *data, size_t n, char out[2 * HASH_BYTES + 1])
{
    unsigned char h[HASH_BYTES];
    crypto_generichash(h, sizeof h, (const unsigned char *)data, n, NULL, 0);
    sodium_bin2hex(out, 2 * HASH_BYTES + 1, h, sizeof h);
}

static int needs_escape(unsigned char c)
{
    return c < 0x20 || c == ':' || c == '=' || c == '%' || c == ',' || c == '#' || c == '{' || c == '}' || c == 0x7f;
}

static void add_escaped(luaL_Buffer *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (needs_escape(c)) {
            luaL_addchar(b, '%');
            luaL_addchar(b, hex[c >> 4]);
            luaL_addchar(b, hex[c & 15]);
        } else {
            luaL_addchar(b, (char)c);
        }
    }
}

/* Pushes the escaped text of a scalar at idx, checking it against kind.
 * Returns 0, or raises naming the field. */
static void push_scalar(lua_State *L, int idx, enum kind kind, const char *field)
{
    luaL_Buffer b;
    int t = lua_type(L, idx);
    char num[32];
    const char *s;
    size_t n;
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    switch (t) {
    case LUA_TSTRING:
        if (kind != K_SCALAR && kind != K_STRING && kind != K_SET && kind != K_LIST)
            fail(L, "key field '%s': %s expected, got string", field, kind_names[kind]);
        s = lua_tolstring(L, idx, &n);
        break;
    case LUA_TNUMBER:
        if (kind != K_SCALAR && kind != K_INTEGER && kind != K_SET && kind != K_LIST)
            fail(L, "key field '%s': %s expected, got number", field, kind_names[kind]);
        if (!hc_isinteger(L, idx)) {
            lua_Number x = lua_tonumber(L, idx);
            fail(L, "key field '%s': %s", field, x != x ? "NaN is not a key value" : "number must be an integer");
        }
        n = (size_t)snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
        s = num;
        break;
    case LUA_TBOOLEAN:
        if (kind != K_SCALAR && kind != K_BOOLEAN && kind != K_SET && kind != K_LIST)
            fail(L, "key field '%s': %s expected, got boolean", field, kind_names[kind]);
        s = lua_toboolean(L, idx) ? "true" : "false";
        n = strlen(s);
        break;
    case LUA_TNIL:
        fail(L, "key field '%s': nil is not a key value", field, NULL);
        return;
    default:
        fail(L, "key field '%s': cannot use a %s", field, lua_typename(L, t));
        return;
    }
    luaL_buffinit(L, &b);
    add_escaped(&b, s, n);
    luaL_pushresult(&b);
}

typedef struct piece {
    const char *s;
    size_t n;
} piece;

static int cmp_piece(const void *a, const void *b)
{
    const piece *x = (const piece *)a, *y = (const piece *)b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Pushes "#<hash>" of a collection (set: canonical; list: ordered). */
static void push_collection(lua_State *L, int idx, enum kind kind, const char *field)
{
    int n, i;
    piece *ps;
    luaL_Buffer b;
    char hex[2 * HASH_BYTES + 1];
    int base;
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    if (lua_type(L, idx) != LUA_TTABLE)
        fail(L, "key field '%s': a %s (table) expected", field, kind_names[kind]);
    n = (int)lua_rawlen(L, idx);
    {   /* every key must be 1..n: a set or list is a sequence */
        int count = 0;
        lua_pushnil(L);
        while (lua_next(L, idx)) { count++; lua_pop(L, 1); }
        if (count != n) fail(L, "key field '%s': a %s must be a sequence (1..n)", field, kind_names[kind]);
    }
    base = lua_gettop(L);
    luaL_checkstack(L, n + 4, "key: collection too large");
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        push_scalar(L, -1, kind, field);
        lua_remove(L, -2);
    }
    ps = (piece *)lua_newuserdata(L, (size_t)(n > 0 ? n : 1) * sizeof *ps);
    for (i = 0; i < n; i++) ps[i].s = lua_tolstring(L, base + 1 + i, &ps[i].n);
    if (kind == K_SET) qsort(ps, (size_t)n, sizeof *ps, cmp_piece);
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++) {
        if (kind == K_SET && i > 0 && cmp_piece(&ps[i], &ps[i - 1]) == 0) continue; /* de-duplicate */
        luaL_addlstring(&b, ps[i].s, ps[i].n);
        luaL_addchar(&b, ','); /* a terminator: {} and {""} differ */
    }
    luaL_pushresult(&b);
    {
        size_t len;
        const char *all = lua_tolstring(L, -1, &len);
        hash_hex(all, len, hex);
    }
    lua_settop(L, base);
    lua_pushfstring(L, "#%s", hex);
}

/* The builder: a C closure with upvalues 1 = names table ([0] family,
 * [i] field name, [name] i), 2 = the builder struct. Called as the
 * __call metamethod of the Lua builder object: (self, fields). */
static int builder_call(lua_State *L)
{
    builder *bd = (builder *)lua_touserdata(L, lua_upvalueindex(2));
    int names = lua_upvalueindex(1);
    int i, top;
    size_t len;
    const char *key;

    if (lua_type(L, 2) != LUA_TTABLE) {
        lua_rawgeti(L, names, 0);
        return fail(L, "key '%s': a table of fields expected", lua_tostring(L, -1), NULL);
    }
    lua_settop(L, 2);
    /* no field that the family does not declare */
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawget(L, names);
        if (lua_isnil(L, -1) || lua_type(L, -2) != LUA_TSTRING) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : lua_typename(L, lua_type(L, -2));
            lua_rawgeti(L, names, 0);
            return fail(L, "key '%s': unknown field '%s'", lua_tostring(L, -1), k);
        }
        lua_pop(L, 1);
    }
    luaL_checkstack(L, bd->nfields + 8, "key: too many fields");
    top = lua_gettop(L);
    lua_rawgeti(L, names, 0); /* family */
    for (i = 1; i <= bd->nfields; i++) {
        const char *field;
        lua_rawgeti(L, names, i);                 /* field name */
        field = lua_tostring(L, -1);
        lua_pushvalue(L, -1);
        lua_rawget(L, 2);                         /* its value */
        if (lua_isnil(L, -1)) {
            lua_rawgeti(L, names, 0);
            return fail(L, "key '%s': missing field '%s'", lua_tostring(L, -1), field);
        }
        switch (bd->kinds[i - 1]) {
        case K_SET: case K_LIST:
            push_collection(L, -1, bd->kinds[i - 1], field);
            break;
        case K_HASHED: {
            char hex[2 * HASH_BYTES + 1];
            size_t n;
            const char *s;
            if (lua_type(L, -1) == LUA_TSTRING) lua_pushvalue(L, -1);
            else push_scalar(L, -1, K_SCALAR, field);
            s = lua_tolstring(L, -1, &n);
            hash_hex(s, n, hex);
            lua_pop(L, 1);
            lua_pushfstring(L, "#%s", hex);
            break;
        }
        default:
            push_scalar(L, -1, bd->kinds[i - 1], field);
            break;
        }
        /* stack: name, value, encoded -> ":name=encoded" */
        lua_pushfstring(L, ":%s=%s", field, lua_tostring(L, -1));
        lua_replace(L, -4);
        lua_pop(L, 2);
    }
    lua_concat(L, lua_gettop(L) - top);
    key = lua_tolstring(L, -1, &len);
    if ((int)len > bd->max_length) {
        char hex[2 * HASH_BYTES + 1];
        int head = bd->max_length - (2 * HASH_BYTES + 1);
        hash_hex(key, len, hex);
        lua_pushlstring(L, key, (size_t)head);
        lua_pushfstring(L, "#%s", hex);
        lua_concat(L, 2);
    }
    return 1;
}

/* core.key_builder(family, {{name, kind}, ...}, max_length) -> the __call
 * function of a builder */
static int new_builder(lua_State *L)
{
    builder *bd;
    int n, i;
    const char *family = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    n = (int)lua_rawlen(L, 2);
    if (n > MAX_FIELDS) return luaL_argerror(L, 2, "too many fields");
    lua_createtable(L, n, n + 1); /* upvalue 1: names */
    lua_pushstring(L, family);
    lua_rawseti(L, -2, 0);
    bd = (builder *)lua_newuserdata(L, sizeof *bd); /* upvalue 2 */
    bd->nfields = n;
    bd->max_length = (int)luaL_optinteger(L, 3, 200);
    if (bd->max_length < 64) return luaL_argerror(L, 3, "max_length must be at least 64");
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        lua_rawgeti(L, -1, 1);
        luaL_checktype(L, -1, LUA_TSTRING);
        lua_rawgeti(L, -2, 2);
        bd->kinds[i - 1] = (enum kind)luaL_checkoption(L, -1, "scalar", kind_names);
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -5, i);        /* names[i] = name */
        lua_pushinteger(L, i);
        lua_rawset(L, -5);            /* names[name] = i */
        lua_pop(L, 1);
    }
    lua_pushcclosure(L, builder_call, 2);
    return 1;
}

/* core.args_key(name, max_length, ...) -> "name:<arg>:<arg>..." where each
 * argument is typed and escaped: s<string> i<integer> f<float> b1/b0 n
 * (nil); tables, functions and the like raise (pass memoize a key). */
static int args_key(lua_State *L)
{
    int top = lua_gettop(L), i;
    size_t len;
    const char *key;
    int max_length = (int)luaL_checkinteger(L, 2);
    luaL_Buffer b;
    luaL_checkstring(L, 1);
    luaL_buffinit(L, &b);
    lua_pushvalue(L, 1);
    luaL_addvalue(&b);
    for (i = 3; i <= top; i++) {
        char num[40];
        luaL_addchar(&b, ':');
        switch (lua_type(L, i)) {
        case LUA_TNIL: luaL_addchar(&b, 'n'); break;
        case LUA_TBOOLEAN: luaL_addstring(&b, lua_toboolean(L, i) ? "b1" : "b0"); break;
        case LUA_TNUMBER:
            if (hc_isinteger(L, i)) snprintf(num, sizeof num, "i%lld", (long long)lua_tointeger(L, i));
            else snprintf(num, sizeof num, "f%.17g", (double)lua_tonumber(L, i));
            luaL_addstring(&b, num);
            break;
        case LUA_TSTRING: {
            size_t n;
            const char *s = lua_tolstring(L, i, &n);
            luaL_addchar(&b, 's');
            add_escaped(&b, s, n);
            break;
        }
        default:
            luaL_pushresult(&b);
            luaL_where(L, 2);
            lua_pushfstring(L, "memoize: cannot build a key from argument #%d (a %s): give memoize opts.key",
                            i - 2, lua_typename(L, lua_type(L, i)));
            lua_concat(L, 2);
            return lua_error(L);
        }
    }
    luaL_pushresult(&b);
    key = lua_tolstring(L, -1, &len);
    if ((int)len > max_length) {
        char hex[2 * HASH_BYTES + 1];
        hash_hex(key, len, hex);
        lua_pushlstring(L, key, (size_t)(max_length - (2 * HASH_BYTES + 1)));
        lua_pushfstring(L, "#%s", hex);
        lua_concat(L, 2);
    }
    return 1;
}

/* core.hash(bytes) -> 32 hex characters of BLAKE2b-128 */
static int core_hash(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char hex[2 * HASH_BYTES + 1];
    hash_hex(s, n, hex);
    lua_pushlstring(L, hex, 2 * HASH_BYTES);
    return 1;
}

void hc_keys_register(lua_State *L)
{
    lua_pushcfunction(L, new_builder);
    lua_setfield(L, -2, "key_builder");
    lua_pushcfunction(L, core_hash);
    lua_setfield(L, -2, "hash");
    lua_pushcfunction(L, args_key);
    lua_setfield(L, -2, "args_key");
}
